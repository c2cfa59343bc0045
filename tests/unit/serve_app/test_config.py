"""Configuration: config.yaml and configs/gpu.yaml through Ray's own schema classes, and the errors a user gets."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from ray.serve.config import RequestRouterConfig
from ray.serve.llm.request_router import PrefixCacheAffinityRouter

from deployments.hosting import HostedModel, llm_config_dict
from deployments.pairwise import host as pairwise_host
from deployments.principle import host as principle_host
from serve_app.__main__ import main as cli
from serve_app.config import AppConfig
from serve_app.config_check import validate_serve_config, validate_serve_config_file

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build")

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
CPU = ROOT / "config.yaml"
GPU = ROOT / "configs" / "gpu.yaml"


def _doc(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _args(doc: dict) -> dict:
    return doc["applications"][0]["args"]


def test_cpu_default_validates_with_ray_schemas() -> None:
    (app,) = validate_serve_config_file(CPU)
    assert set(app.llm_configs) == {"principle", "pairwise"}
    for role, llm in app.llm_configs.items():
        bundles = llm.placement_group_config["bundles"]
        assert bundles == [{"CPU": 1}], role  # one core per engine: both fit on two cores
        assert llm.deployment_config["ray_actor_options"]["num_cpus"] == 0
        assert "reasoning_parser" not in llm.engine_kwargs  # SmolLM2 does not think
    assert app.config.principle.settings.prompt_format == "rendered"
    assert app.config.pairwise.settings.structured_output == "compact"


def test_gpu_config_names_the_real_checkpoints_on_their_placement_groups() -> None:
    (app,) = validate_serve_config_file(GPU)
    principle, pairwise = app.llm_configs["principle"], app.llm_configs["pairwise"]
    assert principle.model_loading_config.model_id == principle_host.MODEL_ID
    assert pairwise.model_loading_config.model_id == pairwise_host.MODEL_ID
    assert pairwise.engine_kwargs["tensor_parallel_size"] == 8
    assert pairwise.placement_group_config["strategy"] == "STRICT_PACK"
    assert sum(b.get("GPU", 0) for b in pairwise.placement_group_config["bundles"]) == 8
    assert sum(b.get("GPU", 0) for b in principle.placement_group_config["bundles"]) == 1
    # the production shape: two TP-8 pairwise replicas; the principle judge autoscaled on its engines' load
    assert pairwise.deployment_config["num_replicas"] == 2
    scaling = principle.deployment_config["autoscaling_config"]
    assert (scaling["min_replicas"], scaling["max_replicas"]) == (1, 4)
    assert scaling["policy"]["policy_function"] == "deployments.autoscaling:EngineLoadPolicy"
    # model-card defaults arrive through the merge
    assert pairwise.engine_kwargs["reasoning_parser"] == "deepseek_r1"
    assert pairwise.engine_kwargs["max_model_len"] == 40000
    assert principle.engine_kwargs["max_logprobs"] >= 2
    assert app.config.principle.verdict_family == "qwen3"
    for cfg in (app.config.principle, app.config.pairwise):
        assert cfg.settings.prompt_format == "native"
        assert (cfg.settings.sampling.temperature, cfg.settings.sampling.top_p) == (0.6, 0.95)


def test_cpu_fleet_config_is_a_fleet_that_fits_two_cores() -> None:
    """configs/cpu-fleet.yaml: two pairwise replicas routed by prefix-cache affinity on the group key, one principle
    replica, every engine on half a core and unbound, validated by Ray's own schema classes."""
    (app,) = validate_serve_config_file(ROOT / "configs" / "cpu-fleet.yaml")
    pairwise, principle = app.llm_configs["pairwise"], app.llm_configs["principle"]
    assert pairwise.deployment_config["num_replicas"] == 2 and "num_replicas" not in principle.deployment_config
    router = pairwise.deployment_config["request_router_config"]
    assert router["request_router_class"] == "deployments.routing.LiveReplicaAffinityRouter"
    assert issubclass(RequestRouterConfig(**router).get_request_router_class(), PrefixCacheAffinityRouter)
    demand = 0.0
    for llm in (pairwise, principle):
        replicas = llm.deployment_config.get("num_replicas", 1)
        demand += replicas * sum(b.get("CPU", 0) for b in llm.placement_group_config["bundles"])
        assert llm.runtime_env["env_vars"]["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert demand <= 2  # three engines on two cores


def test_cli_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["check-config", str(CPU), str(GPU)]) == 0
    assert "OK" in capsys.readouterr().out


def _pairwise_llm(args: dict) -> dict:
    return args["pairwise"]["hosted"]["llm_config"]


def _principle_scaling(args: dict) -> dict:
    return args["principle"]["hosted"]["llm_config"]["deployment_config"]["autoscaling_config"]


ENDPOINT = {"base_url": "http://x/v1", "model": "m", "tokenizer": "t"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: _pairwise_llm(a)["engine_kwargs"].update(tensor_parallel_sise=8), "tensor_parallel_sise"),
        (lambda a: _pairwise_llm(a)["placement_group_config"]["bundles"].pop(), "7 GPUs"),
        (lambda a: _pairwise_llm(a)["placement_group_config"].update(strategy="TIGHT"), "strategy"),
        (lambda a: a["principle"]["settings"].update(prompt_format="chatml"), "prompt_format"),
        (lambda a: a["router"].update(max_candidates=1), "max_candidates"),
        (lambda a: a["router"]["selection"].update(strategy="elo"), "strategy"),
        (lambda a: a["principle"].update(endpoint=ENDPOINT), "exactly one"),
        # a fleet drains: a replica scaled down must outlive the judge's longest call
        (lambda a: _pairwise_llm(a)["deployment_config"].pop("graceful_shutdown_timeout_s"), "graceful_shutdown"),
        (lambda a: _principle_scaling(a).pop("policy"), "EngineLoadPolicy"),
        (lambda a: a["principle"].update(max_inflight_calls=64), "max_inflight_calls 64 per router replica"),
    ],
)
def test_config_errors_name_the_field(mutate, message: str) -> None:
    doc = copy.deepcopy(_doc(GPU))
    mutate(_args(doc))
    with pytest.raises((ValidationError, ValueError)) as info:
        validate_serve_config(doc)
    assert message in str(info.value)


def test_unknown_top_level_serve_field_is_rejected() -> None:
    doc = copy.deepcopy(_doc(CPU))
    doc["applications"][0]["improt_path"] = doc["applications"][0].pop("import_path")
    with pytest.raises(ValidationError):
        validate_serve_config(doc)


def test_no_judge_is_an_error() -> None:
    with pytest.raises(ValidationError, match="at least one judge"):
        AppConfig.model_validate({})


def test_null_drops_a_model_card_default_and_overrides_win() -> None:
    hosted = HostedModel(
        llm_config={
            "model_loading_config": {"model_id": "m"},
            "engine_kwargs": {"reasoning_parser": None, "max_model_len": 8192},
        }
    )
    merged = llm_config_dict(hosted, pairwise_host.ENGINE_DEFAULTS, model_source="/models/m")
    assert "reasoning_parser" not in merged["engine_kwargs"]
    assert merged["engine_kwargs"]["max_model_len"] == 8192
    assert merged["engine_kwargs"]["enable_prefix_caching"] is True
    assert merged["model_loading_config"] == {"model_id": "m", "model_source": "/models/m"}
    assert pairwise_host.ENGINE_DEFAULTS["reasoning_parser"] == "deepseek_r1"  # defaults are not mutated


def test_cpu_fastest_dtype_follows_the_cpu() -> None:
    """bf16 only where the CPU computes it natively; AVX2-only CPUs get fp32 (prompt processing several times
    faster there); other dtypes are left alone."""
    from deployments.hosting import CPU_FASTEST, cpu_flags, fastest_cpu_dtype, resolve_cpu_dtype

    assert fastest_cpu_dtype(frozenset({"avx2", "fma", "f16c"})) == "float32"
    assert fastest_cpu_dtype(frozenset({"avx2", "avx512f", "avx512_bf16"})) == "bfloat16"
    assert fastest_cpu_dtype(frozenset({"avx2", "amx_bf16", "amx_tile"})) == "bfloat16"
    fields = {"engine_kwargs": {"dtype": CPU_FASTEST, "max_model_len": 8192}}
    resolved = resolve_cpu_dtype(fields, frozenset({"avx2"}))
    assert resolved["engine_kwargs"] == {"dtype": "float32", "max_model_len": 8192}
    assert fields["engine_kwargs"]["dtype"] == CPU_FASTEST  # the input is not changed
    assert resolve_cpu_dtype({"engine_kwargs": {"dtype": "half"}}, frozenset())["engine_kwargs"]["dtype"] == "half"
    assert isinstance(cpu_flags(), frozenset)
    assert cpu_flags("/nonexistent/cpuinfo") == frozenset()


def test_the_cpu_default_engines_run_the_fastest_dtype() -> None:
    from deployments.hosting import fastest_cpu_dtype

    (app,) = validate_serve_config_file(CPU)
    for llm in app.llm_configs.values():
        assert llm.engine_kwargs["dtype"] == fastest_cpu_dtype()
