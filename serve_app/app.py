"""The application builder: ``import_path: serve_app.app:build_app`` in config.yaml.

Validates the configuration, prepares local model folders (the CPU default converts its packaged GGUF once), binds
one LLMServer per hosted judge (each on its own placement group) and the router that holds their handles.
"""

from __future__ import annotations

from typing import Any

from deployments.hosting import build_judge_deployment, llm_config_dict, resolve_cpu_dtype
from deployments.pairwise import host as pairwise_host
from deployments.principle import host as principle_host
from serve_app.config import AppConfig, _JudgeConfig
from serve_app.model_cache import ensure_local_model, is_package_source

JUDGE_HOSTS = {"principle": principle_host, "pairwise": pairwise_host}


def judge_llm_configs(config: AppConfig, *, resolve_sources: bool = True) -> dict[str, dict[str, Any]]:
    """LLMConfig fields per hosted judge, model-card defaults merged in. ``resolve_sources`` converts packaged
    models into local folders (off for offline validation of production configs)."""
    out = {}
    for role, host in JUDGE_HOSTS.items():
        judge: _JudgeConfig | None = getattr(config, role)
        if judge is None or judge.hosted is None:
            continue
        source = judge.hosted.model_source
        local = ensure_local_model(source) if resolve_sources and is_package_source(source) else None
        fields = llm_config_dict(judge.hosted, host.ENGINE_DEFAULTS, model_source=local)
        # resolved even offline: LLMConfig validation would reject the placeholder
        out[role] = resolve_cpu_dtype(fields)
    return out


def judge_context_tokens(role: str, judge: _JudgeConfig) -> int | None:
    """The judge model's context length: the engine's max_model_len (model-card default merged in), or what the
    endpoint's config states; None when unknown (then overlong text is left to the model server)."""
    if judge.endpoint is not None:
        return judge.endpoint.max_model_len
    assert judge.hosted is not None
    engine = llm_config_dict(judge.hosted, JUDGE_HOSTS[role].ENGINE_DEFAULTS).get("engine_kwargs", {})
    value = engine.get("max_model_len")
    return int(value) if value else None


def tokenizer_source(judge: _JudgeConfig, llm_fields: dict[str, Any] | None) -> str:
    if judge.endpoint is not None:
        return judge.endpoint.tokenizer
    assert judge.hosted is not None
    if judge.hosted.tokenizer:
        return ensure_local_model(judge.hosted.tokenizer)
    assert llm_fields is not None
    loading = llm_fields["model_loading_config"]
    return loading.get("tokenizer_source") or loading.get("model_source") or loading["model_id"]


def build_app(args: dict[str, Any]) -> Any:
    """Serve application builder (``serve run config.yaml`` calls it with the application's ``args``)."""
    from serve_app.router import Router

    config = AppConfig.model_validate(args)
    llm_fields = judge_llm_configs(config)
    servers: dict[str, Any] = {}
    tokenizers: dict[str, str] = {}
    for role, host in JUDGE_HOSTS.items():
        judge: _JudgeConfig | None = getattr(config, role)
        if judge is None:
            continue
        tokenizers[role] = tokenizer_source(judge, llm_fields.get(role))
        if role in llm_fields:
            servers[role] = build_judge_deployment(llm_fields[role], host.NAME_PREFIX)
    limits = config.router
    # Serve's own queue must never be what refuses requests: the router's admission control answers 503 itself.
    options = {"max_ongoing_requests": limits.max_concurrent_requests + limits.max_queued_requests + 32}
    options.update(limits.deployment)
    dumped = config.model_dump(mode="json")
    if limits.auth_token is not None:  # JSON dumps hide secrets; the router needs the value
        dumped["router"]["auth_token"] = limits.auth_token.get_secret_value()
    return Router.options(**options).bind(
        dumped,
        tokenizers,
        servers.get("principle"),
        servers.get("pairwise"),
    )
