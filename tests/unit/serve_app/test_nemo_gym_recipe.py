"""configs/nemo-gym-recipe.yaml: NVIDIA's RLHF recipe values for NeMo-Gym's rule, through Ray's own schema classes;
and the rule's keys under NeMo-Gym's own names and defaults (its GenRMCompareConfig)."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.nemo_gym import NemoGymShaping
from serve_app.__main__ import main as cli
from serve_app.config import NemoGymSettings
from serve_app.config_check import validate_serve_config_file

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build")

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
RECIPE = ROOT / "configs" / "nemo-gym-recipe.yaml"

#: NVIDIA-NeMo/Nemotron, src/nemotron/recipes/super3/stage2_rl/stage3_rlhf/config/default.yaml (genrm_compare)
NVIDIA_RECIPE = {
    "reasoning_bonus": 0.5,
    "answer_bonus": 0.5,
    "top_percentile": 0.2,
    "group_reasoning_length_penalty_coeff": 0.3,
    "group_answer_length_penalty_coeff": 0.35,
    "group_style_penalty_coeff": 0.05,
    "default_score": 3.0,
    "default_ranking": 3.5,
}


def test_recipe_config_validates_and_sets_nvidias_values() -> None:
    (app,) = validate_serve_config_file(RECIPE)
    nemo_gym = app.config.router.trainers.nemo_gym
    assert nemo_gym.reward_rule == "nemo_gym" and nemo_gym.num_rollouts_per_prompt == 16
    assert nemo_gym.model_dump(include=set(NVIDIA_RECIPE)) == NVIDIA_RECIPE
    # the rule asks the pairwise judge alone, sampled as the recipe's genrm_responses_create_params
    assert app.config.principle is None and set(app.llm_configs) == {"pairwise"}
    sampling = app.config.pairwise.settings.sampling
    assert (sampling.temperature, sampling.top_p, sampling.max_tokens) == (0.6, 0.95, 16384)


def test_cli_check_config_accepts_the_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["check-config", str(RECIPE)]) == 0
    assert "OK" in capsys.readouterr().out


def test_the_terms_keep_nemo_gyms_names_and_defaults() -> None:
    app = pytest.importorskip("resources_servers.genrm_compare.app", reason="needs the nemo-gym package")
    theirs = app.GenRMCompareConfig.model_fields
    ours = NemoGymSettings.model_fields
    for name in [*NemoGymShaping.model_fields, "num_rollouts_per_prompt", "default_score", "default_ranking"]:
        assert name in theirs, name
    for name in [*NemoGymShaping.model_fields, "default_score", "default_ranking"]:
        assert ours[name].default == theirs[name].default, name
