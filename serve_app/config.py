"""The application's configuration: the ``args`` of config.yaml, validated before anything starts.

Each judge is either hosted by this application (an LLMServer on its own placement group, from LLMConfig fields) or
reached at an existing OpenAI-compatible endpoint. The router section bounds what one request may ask for and how
many requests run at once; ``selection`` holds the defaults a request may override.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from deployments.hosting import HostedModel
from deployments.pairwise.judge import PairwiseSettings
from deployments.principle.judge import PrincipleSettings
from policies.selection import SelectionConfig


class EndpointModel(BaseModel):
    """A judge model already served elsewhere behind an OpenAI-compatible API (e.g. ``vllm serve``)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="up to and including /v1, e.g. http://genrm.internal:8000/v1")
    model: str = Field(description="the served model name")
    tokenizer: str = Field(description="local folder or hub id of the served model's tokenizer")
    api_key_env: str | None = Field(default=None, description="environment variable holding the API key")
    max_model_len: int | None = Field(
        default=None, ge=256, description="the served model's context length, for the overlong-text policy"
    )


class FaultInjection(BaseModel):
    """Deliberate faults, for resilience tests and drills only: a fraction of this judge's answers are replaced by
    unreadable text before parsing, so they count as parse failures."""

    model_config = ConfigDict(extra="forbid")

    garble_fraction: float = Field(ge=0.0, le=1.0)
    seed: int = 0


class _JudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosted: HostedModel | None = None
    endpoint: EndpointModel | None = None
    call_timeout_s: float = Field(
        default=600.0,
        gt=0.0,
        description="a sent call times out when the judge has answered no call at all for this long (a busy judge "
        "that answers other calls is not hung); a timed-out call is retried",
    )
    max_call_s: float | None = Field(
        default=None,
        gt=0.0,
        description="one call's limit whatever else the judge answers; default 10 × call_timeout_s",
    )
    max_inflight_calls: int | None = Field(
        default=None,
        ge=1,
        description="calls sent to the judge at once; more wait in the router, where no call timeout runs (None: "
        "no limit)",
    )
    fault_injection: FaultInjection | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _JudgeConfig:
        if (self.hosted is None) == (self.endpoint is None):
            raise ValueError("a judge needs exactly one of 'hosted' (LLMConfig fields) or 'endpoint'")
        return self

    @property
    def served_model(self) -> str:
        """The model name requests carry."""
        if self.endpoint is not None:
            return self.endpoint.model
        assert self.hosted is not None
        return self.hosted.model_id


class PrincipleJudgeConfig(_JudgeConfig):
    settings: PrincipleSettings = PrincipleSettings()
    verdict_family: Literal["auto", "qwen3", "other"] = Field(
        default="auto", description="'qwen3' asserts the model card's Yes/No token ids"
    )


class PairwiseJudgeConfig(_JudgeConfig):
    settings: PairwiseSettings = PairwiseSettings()


class RouterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_candidates: int = Field(default=64, ge=2, le=1024)
    max_principles: int = Field(default=8, ge=1, le=64)
    max_text_chars: int = Field(default=200_000, ge=1, description="per candidate, turn or principle")
    default_principles: list[str] = Field(
        default_factory=lambda: ["correctness"], description="used when a request names none"
    )
    max_concurrent_requests: int = Field(default=4, ge=1, description="best-of-N/rank requests judged at once")
    max_queued_requests: int = Field(default=16, ge=0, description="waiting beyond those; more get 503")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After sent with a 503")
    max_request_bytes: int = Field(default=4_000_000, ge=1024)
    max_request_s: float = Field(
        default=3600.0, gt=0.0, description="a best-of-N/rank request that runs longer gets 503 instead of hanging"
    )
    overlong: Literal["reject", "truncate"] = Field(
        default="reject",
        description="a candidate longer than the judges' context leaves room for: 422 (reject), or cut to fit and "
        "listed in the response's 'truncated' (truncate)",
    )
    auth_token: SecretStr | None = Field(
        default=None, description="bearer token required on every route but /healthz (prefer auth_token_env)"
    )
    auth_token_env: str | None = Field(
        default="GENRM_API_TOKEN", description="environment variable holding the bearer token, when set and non-empty"
    )
    selection: SelectionConfig = SelectionConfig()
    deployment: dict[str, Any] = Field(
        default_factory=lambda: {"ray_actor_options": {"num_cpus": 0}},
        description="Serve deployment options for the router (num_replicas, ray_actor_options, ...)",
    )


class AppConfig(BaseModel):
    """``args`` of the application in config.yaml."""

    model_config = ConfigDict(extra="forbid")

    principle: PrincipleJudgeConfig | None = None
    pairwise: PairwiseJudgeConfig | None = None
    router: RouterConfig = RouterConfig()

    @model_validator(mode="after")
    def _some_judge(self) -> AppConfig:
        if self.principle is None and self.pairwise is None:
            raise ValueError("configure at least one judge: 'principle' and/or 'pairwise'")
        return self
