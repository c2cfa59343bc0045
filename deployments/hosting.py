"""How a judge model is hosted: an LLMConfig (ray.serve.llm) built from the project config plus the judge's
model-card defaults, deployed as an LLMServer on its own placement group.

ray.serve.llm is imported inside the functions: importing it needs a vLLM build, and the policies, the parsers and
the config validation must import without one.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of this machine's CPU (empty where /proc/cpuinfo is not readable)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """This machine's CPU model name, for benchmark results ("unknown" where /proc/cpuinfo is not readable)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown"


def native_bf16(flags: frozenset[str]) -> bool:
    """Whether the CPU computes bf16 matrix products natively (AVX512-BF16 or AMX): only then is bf16 the fast
    engine dtype; on AVX2-only CPUs bf16 is emulated and prompt processing runs several times slower than fp32."""
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def fastest_cpu_dtype(flags: frozenset[str] | None = None) -> str:
    """The engine dtype prompt processing runs fastest in on this CPU (bench/results/engine_speed.md)."""
    return "bfloat16" if native_bf16(cpu_flags() if flags is None else flags) else "float32"


#: ``engine_kwargs.dtype`` value that :func:`resolve_cpu_dtype` replaces with :func:`fastest_cpu_dtype`
CPU_FASTEST = "cpu_fastest"


def resolve_cpu_dtype(fields: Mapping[str, Any], flags: frozenset[str] | None = None) -> dict[str, Any]:
    """``fields`` with ``dtype: cpu_fastest`` replaced by this machine's fastest CPU dtype (vLLM does not know the
    value); anything else is left as it is."""
    out = copy.deepcopy(dict(fields))
    engine = out.get("engine_kwargs", {})
    if engine.get("dtype") == CPU_FASTEST:
        engine["dtype"] = fastest_cpu_dtype(flags)
    return out


class HostedModel(BaseModel):
    """A model this application hosts. ``llm_config`` holds LLMConfig's own fields (model_loading_config,
    engine_kwargs, placement_group_config, deployment_config, runtime_env, accelerator_type, ...), validated by
    ray.serve.llm's LLMConfig when the application is built; engine_kwargs extend the judge's model-card defaults
    (a key set to null drops a default)."""

    model_config = ConfigDict(extra="forbid")

    llm_config: dict[str, Any] = Field(description="ray.serve.llm LLMConfig fields")
    tokenizer: str | None = Field(
        default=None, description="where the router loads the tokenizer from; default: the model source"
    )

    @property
    def model_id(self) -> str:
        return str(self.llm_config.get("model_loading_config", {}).get("model_id", ""))

    @property
    def model_source(self) -> str:
        loading = self.llm_config.get("model_loading_config", {})
        return str(loading.get("model_source") or loading.get("model_id", ""))


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``override`` wins; nested dicts merge, ``None`` removes a default, anything else is
    replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def llm_config_dict(
    hosted: HostedModel, engine_defaults: Mapping[str, Any], model_source: str | None = None
) -> dict[str, Any]:
    """The LLMConfig fields for ``hosted``: the judge's engine defaults under the config's own engine_kwargs, and
    optionally a resolved model source (e.g. a local folder a packaged GGUF was converted into)."""
    fields = _merge({"engine_kwargs": dict(engine_defaults)}, hosted.llm_config)
    if model_source is not None:
        fields["model_loading_config"] = {**fields.get("model_loading_config", {}), "model_source": model_source}
    return fields


def validate_llm_config(fields: Mapping[str, Any]) -> Any:
    """Build ray.serve.llm's LLMConfig and its vLLM engine config, as the deployment will: a bad field raises
    pydantic's ValidationError, an engine argument vLLM does not know raises ValueError."""
    from ray.serve.llm import LLMConfig

    config = LLMConfig(**fields)
    config.get_engine_config()
    return config


def deployment_name(name_prefix: str, model_id: str) -> str:
    """The LLMServer deployment's name, as build_llm_deployment derives it."""
    return name_prefix + model_id.replace("/", "--").replace(".", "_")


def build_judge_deployment(fields: Mapping[str, Any], name_prefix: str) -> Any:
    """An LLMServer application (bindable into the router) for one judge model, with the batched chat method."""
    from ray.serve.llm import build_llm_deployment

    from deployments.judge_server import judge_server_class

    return build_llm_deployment(
        validate_llm_config(fields), name_prefix=name_prefix, deployment_cls=judge_server_class()
    )


PLACEMENT_STRATEGIES = ("PACK", "STRICT_PACK", "SPREAD", "STRICT_SPREAD")


def check_placement(fields: Mapping[str, Any]) -> None:
    """The placement group must hold exactly the devices the engine uses: tensor × pipeline parallel GPUs (or no
    GPU at all, for the CPU build). A mismatch either never schedules or strands GPUs."""
    strategy = fields.get("placement_group_config", {}).get("strategy", "PACK")
    if strategy not in PLACEMENT_STRATEGIES:
        raise ValueError(f"placement strategy {strategy!r} is not one of {PLACEMENT_STRATEGIES}")
    engine = fields.get("engine_kwargs", {})
    devices = int(engine.get("tensor_parallel_size", 1)) * int(engine.get("pipeline_parallel_size", 1))
    bundles = fields.get("placement_group_config", {}).get("bundles")
    if not bundles:
        return  # ray.serve.llm then makes one {GPU: 1} bundle per device itself
    gpus = sum(float(b.get("GPU", 0)) for b in bundles)
    if gpus and gpus != devices:
        raise ValueError(
            f"placement group asks for {gpus:g} GPUs but tensor_parallel_size × pipeline_parallel_size = {devices}; "
            f"give one {{GPU: 1}} bundle per device"
        )
    if not gpus and devices != 1:
        raise ValueError(f"a CPU placement group (no GPU bundles) cannot run {devices}-way model parallelism")
