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
from policies.nemo_gym import NemoGymShaping
from policies.selection import SelectionConfig
from serve_app.core.cohorts import CohortSettings

#: the two judge roles, in the order the service lists them
JudgeRole = Literal["principle", "pairwise"]
JUDGE_ROLES: tuple[JudgeRole, ...] = ("principle", "pairwise")
#: the tenant of a deployment without ``router.tenants`` (one token or none: every caller is this one tenant)
DEFAULT_TENANT = "default"


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
    seed: int = Field(default=0, ge=0)


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


class NemoGymSettings(NemoGymShaping):
    """``router.trainers.nemo_gym``: NeMo-Gym's ``genrm_compare`` protocol (``POST /compare``, ``POST /verify``),
    with NeMo-Gym's length and style terms (:class:`~policies.nemo_gym.NemoGymShaping`) for its rule."""

    model_config = ConfigDict(extra="forbid")

    reward_rule: Literal["ensemble", "nemo_gym"] = Field(
        default="ensemble",
        description="'ensemble': each response's score by the configured design (router.selection, cohorts: "
        "router.cohorts.strategy); 'nemo_gym': NVIDIA's rule (circular pairs, one order each, mean helpfulness with "
        "the 3.5 - ranking tie-break, pairwise judge only)",
    )
    num_rollouts_per_prompt: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="rollouts per task in /verify (NeMo-Gym's num_repeats; 16 in NVIDIA's recipe)",
    )
    default_score: float = Field(
        default=3.0, description="reward for a group of fewer than 2 responses; score of a call without a verdict"
    )
    default_ranking: float = Field(default=3.5, ge=1.0, le=6.0, description="ranking of a call without a verdict")

    @model_validator(mode="after")
    def _shaping_needs_the_nemo_gym_rule(self) -> NemoGymSettings:
        # The terms are sized for NeMo-Gym's 1-5 helpfulness means; on ensemble scores they would mean nothing.
        if self.shaping_active and self.reward_rule != "nemo_gym":
            raise ValueError(
                "the length and style terms (reasoning_bonus, answer_bonus, group_*_coeff) shape NeMo-Gym's rule: "
                "set reward_rule: nemo_gym, or leave them at 0"
            )
        return self


class PolicyTextSettings(BaseModel):
    """How a trainer's decoded token text is read back into a conversation and a response (serve_app.chat_text)."""

    model_config = ConfigDict(extra="forbid")

    policy_tokenizer: str | None = Field(
        default=None,
        description="local folder of the policy's tokenizer (tokenizer_config.json with its chat template): names "
        "the template's format and its BOS/EOS/PAD tokens; None: ChatML, Llama 3 and Gemma are recognised per text",
    )
    strip_reasoning: bool = Field(
        default=True, description="judge only what follows the last </think> of a response (its answer)"
    )


class OpenRLHFSettings(PolicyTextSettings):
    """``router.trainers.openrlhf``: OpenRLHF's remote reward model (``POST /get_reward``)."""

    group_size: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="samples per prompt of per-sample requests (OpenRLHF's n_samples_per_prompt); None: "
        "router.cohorts.group_size",
    )
    batch: Literal["rank", "cohort"] = Field(
        default="rank",
        description="a request with several samples: 'rank' judges each prompt's samples in it as one group at once; "
        "'cohort' sends every sample through the cohorts like a one-sample request",
    )


class SlimeSettings(PolicyTextSettings):
    """``router.trainers.slime``: slime's ``remote_rm`` reward model (``POST /slime/reward``)."""

    group_size: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="samples per prompt (slime's --n-samples-per-prompt); None: router.cohorts.group_size",
    )
    reply: Literal["float", "dict"] = Field(
        default="float",
        description="'float': the reply is the reward itself (slime stores the whole reply); 'dict': an object with "
        "'reward' and the cohort's details, read with slime's --reward-key reward",
    )


class LlamaFactorySettings(PolicyTextSettings):
    """``router.trainers.llamafactory``: LLaMA-Factory's API reward model (``POST /v1/score/evaluation``)."""

    scoring: Literal["auto", "principle", "rank"] = Field(
        default="auto",
        description="'principle': each text scored on its own by the principle judge (mean reward over "
        "router.default_principles; PPO sends one response per prompt); 'rank': the texts of one prompt ranked "
        "together; 'auto': principle when that judge is configured, else rank",
    )


class TrainerSettings(BaseModel):
    """``router.trainers``: the drop-in protocols of RL trainers (serve_app/routes/<trainer>.py)."""

    model_config = ConfigDict(extra="forbid")

    nemo_gym: NemoGymSettings = NemoGymSettings()
    openrlhf: OpenRLHFSettings = OpenRLHFSettings()
    slime: SlimeSettings = SlimeSettings()
    llamafactory: LlamaFactorySettings = LlamaFactorySettings()


class TenantConfig(BaseModel):
    """``router.tenants[]``: one training job or team sharing the service. Its bearer token names it; its cohorts,
    limits and metrics are its own. Limits hold per router replica."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="the tenant's name (metrics, cohorts)")
    token_env: str = Field(
        min_length=1,
        description="environment variable holding the tenant's bearer token (on KubeRay, set from a key of the "
        "token Secret); the router does not start while it is unset or empty",
    )
    weight: float = Field(default=1.0, gt=0.0, description="its share of contended slots, relative to the others")
    max_concurrent_requests: int | None = Field(
        default=None, ge=1, description="its requests judged at once per router replica (None: only the router's)"
    )
    max_queued_requests: int = Field(default=0, ge=0, description="its requests waiting beyond those; more get 429")
    max_judge_calls: int | None = Field(
        default=None,
        ge=1,
        description="its calls in flight to each judge per router replica, even when the judge has room for more "
        "(None: any free slot): what it leaves free keeps the engines' batches small and a slot open for the other "
        "tenants, at the cost of its own throughput",
    )


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
    tenants: list[TenantConfig] = Field(
        default_factory=list,
        description="several jobs or teams, each with its own token, weight and limits (empty: one tenant, the "
        "auth_token or auth_token_env token)",
    )
    max_batch_groups: int = Field(default=256, ge=1, description="groups one /v1/rank_batch request may hold")
    selection: SelectionConfig = SelectionConfig()
    cohorts: CohortSettings = CohortSettings()
    trainers: TrainerSettings = TrainerSettings()
    deployment: dict[str, Any] = Field(
        default_factory=lambda: {"ray_actor_options": {"num_cpus": 0}},
        description="Serve deployment options for the router (num_replicas, ray_actor_options, ...)",
    )

    @property
    def replicated(self) -> bool:
        """More than one router replica may run (a fixed count above 1, "auto", or autoscaling): then the cohorts
        live in one owner replica that every router replica forwards /v1/reward to (``serve_app.app``)."""
        scaling = self.deployment.get("autoscaling_config")
        if scaling:
            return not isinstance(scaling, dict) or int(scaling.get("max_replicas", 1)) > 1
        replicas = self.deployment.get("num_replicas", 1)
        return replicas == "auto" or (isinstance(replicas, int) and replicas > 1)

    @model_validator(mode="after")
    def _tenants_apart(self) -> RouterConfig:
        if not self.tenants:
            return self
        for field in ("name", "token_env"):
            values = [getattr(t, field) for t in self.tenants]
            if len(set(values)) < len(values):
                raise ValueError(f"router.tenants: every tenant needs its own {field} (got {values})")
        if self.auth_token is not None:
            raise ValueError("router.tenants and router.auth_token exclude each other: each tenant has its own token")
        if "default" in {t.name for t in self.tenants}:
            raise ValueError("router.tenants: 'default' names the tenant of a deployment without tenants; pick another")
        return self

    @model_validator(mode="after")
    def _cohorts_fit(self) -> RouterConfig:
        if self.cohorts.enabled and self.cohorts.group_size > self.max_candidates:
            raise ValueError(
                f"cohorts.group_size ({self.cohorts.group_size}) is above max_candidates ({self.max_candidates}): a "
                f"cohort is judged as one group"
            )
        return self

    @model_validator(mode="after")
    def _cohort_strengths_fit(self) -> RouterConfig:
        selection = self.selection
        if self.cohorts.strengths == "whole_verdict" and (selection.style_control or selection.fit_position_bias):
            raise ValueError(
                "router.cohorts.strengths 'whole_verdict' fits its own first-position advantage and has no style "
                "covariates, so it cannot run with router.selection.style_control or fit_position_bias; set "
                "router.cohorts.strengths to 'bradley_terry' (or null) to keep those for cohorts"
            )
        return self

    @model_validator(mode="after")
    def _trainers_fit(self) -> RouterConfig:
        trainers = self.trainers
        # Only sizes a configuration sets: NeMo-Gym's default of 16 must not refuse a small max_candidates of a
        # deployment that never serves NeMo-Gym (/verify then says so per request).
        nemo_gym = trainers.nemo_gym
        sizes = {
            "trainers.nemo_gym.num_rollouts_per_prompt": nemo_gym.num_rollouts_per_prompt
            if "num_rollouts_per_prompt" in nemo_gym.model_fields_set
            else None,
            "trainers.openrlhf.group_size": trainers.openrlhf.group_size,
            "trainers.slime.group_size": trainers.slime.group_size,
        }
        for name, size in sizes.items():
            if size is not None and size > self.max_candidates:
                raise ValueError(
                    f"{name} ({size}) is above max_candidates ({self.max_candidates}): a group is judged at once"
                )
        return self


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

    def _shared_engine(self) -> tuple[HostedModel, HostedModel] | None:
        """Both judges' hosted blocks when they name the same model id (one engine for both); None otherwise."""
        p, q = self.principle, self.pairwise
        if p is None or q is None or p.hosted is None or q.hosted is None or p.hosted.model_id != q.hosted.model_id:
            return None
        return p.hosted, q.hosted

    @model_validator(mode="after")
    def _one_engine_per_model_id(self) -> AppConfig:
        # A model id names one engine: two hosted judges with the same one share a deployment, which only makes
        # sense when they ask for the very same engine (write the block once and reference it with a YAML alias).
        shared = self._shared_engine()
        if shared is not None and shared[0] != shared[1]:
            raise ValueError(
                f"both judges host model_id {shared[0].model_id!r}, which makes them share one engine, but their "
                f"'hosted' blocks differ; give both the same block (e.g. a YAML alias) or give each its own model_id "
                f"for two engines"
            )
        return self

    def engine_role(self, role: str) -> str:
        """The role whose hosted engine serves ``role``: itself, or the principle judge's when the pairwise judge
        hosts the same model id (one engine for both; it takes the principle model card's engine defaults)."""
        return "principle" if role == "pairwise" and self._shared_engine() is not None else role
