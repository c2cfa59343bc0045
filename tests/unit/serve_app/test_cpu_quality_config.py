"""configs/cpu-quality.yaml: the Qwen2.5-Coder-1.5B config, one engine serving both judge roles."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from serve_app.config import AppConfig
from serve_app.core.judge_pool import judge_llm_configs
from serve_app.model_cache import PARTS_SCHEME, split_model

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build")

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
QUALITY = ROOT / "configs" / "cpu-quality.yaml"


def _args() -> dict:
    return yaml.safe_load(QUALITY.read_text())["applications"][0]["args"]


def test_quality_config_validates_with_ray_schemas() -> None:
    from serve_app.config_check import validate_serve_config_file

    (app,) = validate_serve_config_file(QUALITY)
    principle, pairwise = app.llm_configs["principle"], app.llm_configs["pairwise"]
    assert principle.model_loading_config.model_id == pairwise.model_loading_config.model_id
    source = principle.model_loading_config.model_source
    assert source.startswith(PARTS_SCHEME) and split_model(source).count == 22
    assert principle.placement_group_config["bundles"] == [{"CPU": 2}]
    assert principle.deployment_config["ray_actor_options"]["num_cpus"] == 0
    assert "reasoning_parser" not in principle.engine_kwargs  # Qwen2.5 does not think
    env = principle.runtime_env["env_vars"]
    assert int(env["VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS"]) > 300
    for cfg in (app.config.principle, app.config.pairwise):
        assert cfg.settings.prompt_format == "rendered"
    assert app.config.pairwise.settings.structured_output == "compact"
    assert app.config.principle.settings.structured_output == "regex"


def test_both_roles_share_one_engine() -> None:
    config = AppConfig.model_validate(_args())
    assert config.engine_role("pairwise") == "principle"
    assert config.engine_role("principle") == "principle"
    fields = judge_llm_configs(config, resolve_sources=False)
    assert fields["pairwise"] is fields["principle"]


def test_two_engines_when_model_ids_differ() -> None:
    args = _args()
    args["pairwise"]["hosted"] = copy.deepcopy(args["principle"]["hosted"])
    args["pairwise"]["hosted"]["llm_config"]["model_loading_config"]["model_id"] = "other-judge"
    config = AppConfig.model_validate(args)
    assert config.engine_role("pairwise") == "pairwise"
    fields = judge_llm_configs(config, resolve_sources=False)
    assert fields["pairwise"] is not fields["principle"]


def test_same_model_id_with_different_blocks_is_an_error() -> None:
    args = _args()
    args["pairwise"]["hosted"] = copy.deepcopy(args["principle"]["hosted"])
    args["pairwise"]["hosted"]["llm_config"]["engine_kwargs"]["max_num_seqs"] = 4
    with pytest.raises(ValidationError, match="share one engine"):
        AppConfig.model_validate(args)
