"""The judges a configuration names, seen from both sides of the application.

* What the builder (``serve_app.app``) hosts: the LLMConfig fields of each hosted judge with the model-card defaults
  merged in, its context length and where its tokenizer comes from.
* What a router replica (``serve_app.core.service``) builds from them: the judge objects that write prompts and read
  verdicts, with the tokenizer's control tokens and the native template's markers to neutralise, the client that
  reaches each model, and the context budget of each judge.

Both sides import this module; it imports neither of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from deployments.context import ContextBudget
from deployments.engine_client import ChatClient, GarblingClient, OpenAIHttpClient, ServeHandleClient
from deployments.hosting import llm_config_dict, resolve_cpu_dtype
from deployments.pairwise import host as pairwise_host
from deployments.pairwise.judge import PairwiseJudge, digit_token_ids
from deployments.principle import host as principle_host
from deployments.principle.judge import PrincipleJudge
from deployments.principle.parse import VerdictTokens
from deployments.template_markers import native_template_markers
from serve_app.config import JUDGE_ROLES, AppConfig, _JudgeConfig
from serve_app.model_cache import ensure_local_model, is_package_source

JUDGE_HOSTS = dict(zip(JUDGE_ROLES, (principle_host, pairwise_host), strict=True))


def judge_llm_configs(config: AppConfig, *, resolve_sources: bool = True) -> dict[str, dict[str, Any]]:
    """LLMConfig fields per hosted judge, model-card defaults merged in. ``resolve_sources`` converts packaged
    models into local folders (off for offline validation of production configs). Two roles that share one engine
    (:meth:`AppConfig.engine_role`) map to the same fields object."""
    out: dict[str, dict[str, Any]] = {}
    for role in JUDGE_HOSTS:
        judge: _JudgeConfig | None = getattr(config, role)
        if judge is None or judge.hosted is None:
            continue
        owner = config.engine_role(role)
        if owner != role:  # one engine for both roles: the owner's fields, the same dict object
            out[role] = out[owner]
            continue
        source = judge.hosted.model_source
        local = ensure_local_model(source) if resolve_sources and is_package_source(source) else None
        fields = llm_config_dict(judge.hosted, JUDGE_HOSTS[role].ENGINE_DEFAULTS, model_source=local)
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


# ---- the router's side ---------------------------------------------------------------------------------------


def load_tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


def control_tokens(tokenizer: Any) -> list[str]:
    """Every string the tokenizer turns into a token of its own: the special tokens and the rest of the added
    vocabulary (SmolLM2's <file_sep> or <jupyter_code> are not "special" but still become single control ids)."""
    added = tokenizer.get_added_vocab() if hasattr(tokenizer, "get_added_vocab") else {}
    return sorted({*tokenizer.all_special_tokens, *added})


def judge_client(judge: _JudgeConfig, handle: Any) -> ChatClient:
    """How calls reach the model: its endpoint over HTTP, else the hosted deployment's handle."""
    client: ChatClient
    if judge.endpoint is not None:
        e = judge.endpoint
        client = OpenAIHttpClient(e.base_url, e.model, api_key_env=e.api_key_env, timeout_s=judge.call_timeout_s)
    else:
        client = ServeHandleClient(handle, judge.served_model)
    if judge.fault_injection is not None:
        client = GarblingClient(client, judge.fault_injection.garble_fraction, judge.fault_injection.seed)
    return client


@dataclasses.dataclass
class Judges:
    """The router-side judges of one replica (None when the configuration has no such judge)."""

    principle: PrincipleJudge | None = None
    pairwise: PairwiseJudge | None = None
    #: per role, the room each call leaves for responses; empty for a judge whose context length is unknown
    budgets: dict[str, ContextBudget] = dataclasses.field(default_factory=dict)


def build_judges(
    config: AppConfig,
    tokenizers: dict[str, str],
    principle_server: Any = None,
    pairwise_server: Any = None,
    clients: Mapping[str, ChatClient] | None = None,
) -> Judges:
    """The judges ``config`` names, reaching their models through the given deployment handles or endpoints, or
    through ``clients`` (per role) where given (offline tools that only build prompts and budgets)."""
    clients = clients or {}
    judges = Judges()
    loaded: dict[str, Any] = {}  # one tokenizer object per source: both judges often share one
    built: dict[str, tuple[Any, Any]] = {}
    # Native format: the checkpoint's template writes its own headers and role prefixes around untrusted text,
    # so they are read off that template here and neutralised like the special tokens.
    if (p := config.principle) is not None:
        tok = loaded.setdefault(tokenizers["principle"], load_tokenizer(tokenizers["principle"]))
        judges.principle = PrincipleJudge(
            clients.get("principle") or judge_client(p, principle_server),
            p.settings,
            VerdictTokens.from_tokenizer(tok, family=p.verdict_family),
            special_tokens=control_tokens(tok),
            template_markers=native_template_markers(tok, p.settings),
        )
        built["principle"] = (judges.principle, tok)
    if (q := config.pairwise) is not None:
        source = tokenizers["pairwise"]
        tok = loaded[source] if source in loaded else load_tokenizer(source)
        judges.pairwise = PairwiseJudge(
            clients.get("pairwise") or judge_client(q, pairwise_server),
            q.settings,
            special_tokens=control_tokens(tok),
            template_markers=native_template_markers(tok, q.settings),
            digit_token_ids=digit_token_ids(tok),
        )
        built["pairwise"] = (judges.pairwise, tok)
    for role, (judge, tok) in built.items():
        # a shared engine's context is the owner role's (its model card's defaults)
        context = judge_context_tokens(config.engine_role(role), getattr(config, role))
        if context is not None:
            judges.budgets[role] = ContextBudget(judge, tok, context)
    return judges
