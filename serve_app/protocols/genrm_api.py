"""The HTTP API's request and response bodies (what the OpenAPI schema documents).

Requests are validated here and against the running configuration's limits in :func:`check_limits`; every failure
is a 422 that says which field was wrong and what is allowed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from deployments.chat import ChatMessage, Text, validate_history
from policies.debias import Comparison
from policies.health import JudgeHealth
from policies.position_bias import PositionBias
from policies.selection import CandidateScore, Strategy, Strengths
from policies.style import StyleEffect
from policies.verdicts import PairwiseResult, PrincipleResult, VerdictMode
from policies.whole_verdict import JudgeTerms
from serve_app.protocols.openai_api import ModelCard


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation: list[ChatMessage] = Field(
        min_length=1,
        description="the dialogue so far, ending with the user turn being answered (one optional leading system)",
    )

    @field_validator("conversation")
    @classmethod
    def _history(cls, value: list[ChatMessage]) -> list[ChatMessage]:
        validate_history(value)
        return value


def _check_principles(value: list[Text] | None) -> list[Text] | None:
    if value is not None:
        for i, p in enumerate(value):
            if not p.strip():
                raise ValueError(f"principle {i} is empty or whitespace")
    return value


class _Principles(BaseModel):
    """The principles a request judges by: the principle judge's, and an optional one for the pairwise judge."""

    principles: list[Text] | None = Field(
        default=None, description="principles for the principle judge; default from the configuration"
    )
    principle_for_pairwise: Text | None = Field(
        default=None, description="optional principle the pairwise judge applies instead of its default evaluation"
    )

    @field_validator("principles")
    @classmethod
    def _principles(cls, value: list[str] | None) -> list[str] | None:
        return _check_principles(value)

    @field_validator("principle_for_pairwise")
    @classmethod
    def _pairwise_principle(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("principle_for_pairwise is empty; omit it to use the judge's default evaluation")
        return value


class SelectionOptions(BaseModel):
    """Per-request overrides of the configured selection defaults."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy | None = Field(
        default=None,
        description="pair design; 'by_budget': the design that ranks best at max_pairwise_calls (default 2N), "
        "measured; default from the configuration",
    )
    max_pairwise_calls: int | None = Field(default=None, ge=0, le=100_000, description="budget, retries included")
    swap: bool | None = Field(default=None, description="judge every pair in both orders")
    use_principle: bool | None = Field(default=None, description="also score candidates with the principle judge")
    seed: int | None = Field(default=None, ge=0, description="tie-breaks and random orders; same seed, same choice")
    verdicts: VerdictMode | None = Field(
        default=None,
        description="'soft': each pairwise call counts with the expected margin of the judge's ranking belief (its "
        "logprobs), or its sampled ranking where the engine returned none; 'sampled': the sampled ranking only; "
        "default from the configuration",
    )
    style_control: bool | None = Field(
        default=None,
        description="rank by Bradley–Terry strengths fitted jointly with the candidates' style (length, markdown) "
        "and report the style effect; default from the configuration",
    )
    fit_position_bias: bool | None = Field(
        default=None,
        description="fit the judge's first-position advantage with the strengths (a prior from the judge's earlier "
        "groups), so a design in one order is debiased too, and report it; default from the configuration",
    )
    strengths: Strengths | None = Field(
        default=None,
        description="'bradley_terry': strengths from the ranking margins; 'whole_verdict': from each call's ranking "
        "and both helpfulness scores in one model (policies.whole_verdict); default from the configuration",
    )
    deadline_s: float | None = Field(
        default=None,
        gt=0.0,
        le=3600.0,
        description="answer within this many seconds of judging's start: when it passes, the judge calls still "
        "running for this request are cancelled (on the engines too) and the answer is the best so far, with its "
        "p_best and deadline_reached true; default from the configuration (none: the design runs to its end)",
    )


class BestOfNRequest(_Request, _Principles, SelectionOptions):
    candidates: list[Text] = Field(min_length=1, description="the N responses to the last user turn")

    @field_validator("candidates")
    @classmethod
    def _non_empty_candidates(cls, value: list[str]) -> list[str]:
        for i, c in enumerate(value):
            if not c.strip():
                raise ValueError(f"candidate {i} is empty or whitespace")
        return value


class RankRequest(BestOfNRequest):
    """Same fields as best-of-N; the answer is a score for every candidate (default strategy: round robin)."""


OverlongPolicy = Literal["reject", "truncate"]
_DUPLICATES = "groups of identical candidates (after NFC and trimming), each judged once as its first index"
_STYLE_EFFECT = "with style_control: β per style feature, or why none could be fitted (plain Bradley–Terry then)"
_POSITION_BIAS = "with fit_position_bias: the judge's first-position advantage this judging was debiased with"
_JUDGE_TERMS = (
    "with the whole verdict (the default strengths): the judge's mean helpfulness and first-position advantage "
    "in this judging, fitted with the strengths, in ranking points"
)
_TRUNCATED = "candidates cut to fit the judges' context (overlong policy 'truncate'), judged on their beginning"
_DEADLINE_REACHED = "deadline_s passed before the design finished: the answer rests on the calls back by then"
_CANCELLED = "judge calls still running when deadline_s passed, cancelled (not counted in the calls above)"
_DESIGN = "with strategy by_budget: the design it chose for the group's budget (provenance.design has its settings)"


class Timings(BaseModel):
    total_s: float
    selection_s: float
    queued_s: float = Field(description="waiting for admission (router.max_concurrent_requests)")
    judge_queue_s: float = Field(
        default=0.0, description="summed over the request's judge calls: waiting for a free judge slot"
    )


class JudgeProvenance(BaseModel):
    model: str = Field(description="the judge model: its served id")
    source: str | None = Field(default=None, description="where its weights come from (checkpoint, package file)")
    revision: str | None = Field(default=None, description="the checkpoint revision, when the config pins one")
    sampling: dict[str, Any] = Field(default_factory=dict, description="the sampling settings of its calls")


class Provenance(BaseModel):
    """Where an answer came from: which judges, asked how, by which design, under which configuration."""

    judges: dict[str, JudgeProvenance]
    design: dict[str, Any] = Field(description="the pair design as run: strategy, both orders, principle, budget")
    config_hash: str = Field(description="sha256 (first 16 hex digits) of the application's whole configuration")
    judge_versions: dict[str, str] = Field(
        default_factory=dict,
        description="model -> the version stamp of the hosted judge replicas that answered (a hash of their "
        "LLMConfig); a group is never judged by two versions of one judge",
    )


class BestOfNResponse(BaseModel):
    index: int = Field(description="position of the chosen candidate in the request")
    text: str
    strategy: Strategy
    ranking: list[int] = Field(description="candidate indices, best first")
    candidates: list[CandidateScore]
    comparisons: list[Comparison]
    principles: list[str]
    pairwise_calls: int
    principle_calls: int
    failed_calls: int
    rounds: int
    swap_inconsistency: float | None
    style_effect: StyleEffect | None = Field(default=None, description=_STYLE_EFFECT)
    position_bias: PositionBias | None = Field(default=None, description=_POSITION_BIAS)
    judge_terms: JudgeTerms | None = Field(default=None, description=_JUDGE_TERMS)
    degraded: list[str] = Field(description="empty when every judge answered as asked")
    deadline_reached: bool = Field(default=False, description=_DEADLINE_REACHED)
    cancelled_calls: int = Field(default=0, description=_CANCELLED)
    design: str | None = Field(default=None, description=_DESIGN)
    duplicates: list[list[int]] = Field(default_factory=list, description=_DUPLICATES)
    truncated: list[int] = Field(default_factory=list, description=_TRUNCATED)
    overlong_policy: OverlongPolicy
    timings: Timings
    provenance: Provenance | None = Field(default=None, description="which judges, asked how, by which design")
    diagnostics: JudgeHealth | None = Field(
        default=None,
        description="the judges' health in this judging: cut-offs, parse failures, ties, flips, length "
        "correlation, cycles (policies.health)",
    )


_VALID = (
    "per candidate: enough of the verdicts its design planned came back usable (router.selection.min_verdict_share) "
    "for its score to be a reward; an invalid candidate's score is its group's mean valid score (advantage ~0)"
)


class RankResponse(BaseModel):
    scores: list[float] = Field(
        description="ensemble score per candidate, in request order (higher is better); an invalid candidate (see "
        "valid) has the mean of the valid ones"
    )
    ranks: list[int] = Field(description="1 = best, per candidate in request order")
    valid: list[bool] = Field(default_factory=list, description=_VALID)
    candidates: list[CandidateScore]
    pairwise_calls: int
    principle_calls: int
    failed_calls: int
    style_effect: StyleEffect | None = Field(default=None, description=_STYLE_EFFECT)
    position_bias: PositionBias | None = Field(default=None, description=_POSITION_BIAS)
    judge_terms: JudgeTerms | None = Field(default=None, description=_JUDGE_TERMS)
    degraded: list[str]
    deadline_reached: bool = Field(default=False, description=_DEADLINE_REACHED)
    cancelled_calls: int = Field(default=0, description=_CANCELLED)
    design: str | None = Field(default=None, description=_DESIGN)
    duplicates: list[list[int]] = Field(default_factory=list, description=_DUPLICATES)
    truncated: list[int] = Field(default_factory=list, description=_TRUNCATED)
    overlong_policy: OverlongPolicy
    timings: Timings
    provenance: Provenance | None = Field(default=None, description="which judges, asked how, by which design")
    diagnostics: JudgeHealth | None = Field(
        default=None,
        description="the judges' health in this judging: cut-offs, parse failures, ties, flips, length "
        "correlation, cycles (policies.health)",
    )


class PrincipleScoreRequest(_Request):
    response: Text = Field(min_length=1)
    principles: list[Text] = Field(min_length=1)

    @field_validator("principles")
    @classmethod
    def _principles(cls, value: list[str]) -> list[str]:
        return _check_principles(value) or value

    @field_validator("response")
    @classmethod
    def _non_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("response is empty or whitespace")
        return value


class PrincipleScoreResponse(BaseModel):
    results: list[PrincipleResult]
    mean_reward: float | None
    truncated: bool = Field(default=False, description="the response was cut to fit (overlong policy 'truncate')")
    overlong_policy: OverlongPolicy


class CompareRequest(_Request):
    response_1: Text
    response_2: Text
    principle: Text | None = None

    @model_validator(mode="after")
    def _non_blank(self) -> CompareRequest:
        for name in ("response_1", "response_2"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} is empty or whitespace")
        if self.principle is not None and not self.principle.strip():
            raise ValueError("principle is empty; omit it to use the judge's default evaluation")
        return self


class CompareResponse(BaseModel):
    forward: PairwiseResult = Field(description="response_1 shown first")
    backward: PairwiseResult = Field(description="response_2 shown first")
    comparison: Comparison = Field(description="both orders combined; margin > 0 prefers response_1")
    truncated: list[Literal["response_1", "response_2"]] = Field(
        default_factory=list, description="responses cut to fit (overlong policy 'truncate')"
    )
    overlong_policy: OverlongPolicy


class JudgeInfo(BaseModel):
    role: Literal["principle", "pairwise"]
    model: str
    hosted: bool
    prompt_format: str


class ModelsResponse(BaseModel):
    """The judges in this project's terms (``judges``) and, beside them, OpenAI's model list (``object``, ``data``:
    the names ``POST /v1/chat/completions`` takes)."""

    judges: list[JudgeInfo]
    object: Literal["list"] = "list"
    data: list[ModelCard] = Field(default_factory=list, description="one entry per judge, in OpenAI's shape")


class Health(BaseModel):
    status: Literal["ok"]
    judges: list[str]
    ready: bool = Field(description="every judge has answered its warm-up call (see /readyz)")


class JudgeReadiness(BaseModel):
    ready: bool
    warmup_s: float | None = Field(default=None, description="seconds from start-up to the first answer")
    attempts: int = 0
    last_error: str | None = None


class ReadinessReport(BaseModel):
    status: Literal["ready", "warming_up", "judge_down"] = Field(
        description="ready: every judge answered its warm-up call and has a live replica; warming_up: some judge "
        "has not answered yet; judge_down: some judge answered once and has since lost every replica (see down)"
    )
    judges: dict[str, JudgeReadiness]
    down: list[str] = Field(default_factory=list, description="judges that were ready and have no live replica now")
    capacity: int = Field(
        description="requests the router runs at once (router.max_concurrent_requests): a good client concurrency"
    )


# ---- RL trainers: per-sample rewards through cohorts, whole steps in one batch --------------------------------


class RewardRequest(_Request, _Principles):
    """One rollout of a group. Its reward comes from judging the whole group (its cohort) once, when every rollout
    has arrived or ``router.cohorts.group_timeout_s`` has passed."""

    response: Text = Field(description="this rollout's response to the last user turn")
    group_id: Text | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="the group this rollout belongs to; default: derived from the conversation and principles (the "
        "next group_size samples of the same prompt form one cohort)",
    )
    group_size: int | None = Field(
        default=None, ge=1, le=1024, description="rollouts in the group; default router.cohorts.group_size"
    )
    rollout_index: int | None = Field(
        default=None,
        ge=0,
        le=1023,
        description="this rollout's index in its group (0 to group_size - 1); default: the lowest free one. The same "
        "index again with the same response is a retry and gets the same answer; with another response, 409",
    )
    job_id: Text | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="the training job this rollout belongs to: cohorts are kept per tenant (the bearer token names "
        "it) and, when given, per job within the tenant; without it a tenant's jobs share prompt cohorts",
    )
    reference: Text | None = Field(
        default=None,
        description="a reference answer to the prompt: each rollout is judged against it (both orders) and its "
        "reward is its mean margin over it, in [-2.5, 2.5], comparable between groups and steps (anchored rewards)",
    )
    idempotency_key: Text | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="names this sample across retries (or the Idempotency-Key header): a sample with a key already "
        "seen (same tenant) is the same sample and gets the first one's answer, never a second place in its cohort",
    )

    @field_validator("group_id")
    @classmethod
    def _group_id(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("group_id is empty or whitespace; omit it to group by prompt")
        return value


class CohortTimings(BaseModel):
    total_s: float = Field(description="this request, arrival to answer")
    waited_s: float = Field(description="this request's wait for its cohort to close (full or timed out)")
    judging_s: float = Field(description="the cohort's judging, admission wait included")


class RewardResponse(BaseModel):
    reward: float = Field(
        description="this rollout's ensemble score in its cohort (higher is better); comparable within one cohort. "
        "When valid is false, the mean of the cohort's valid rewards: no judgement of this rollout stands behind it"
    )
    valid: bool = Field(
        default=True,
        description="enough of the verdicts its cohort's design planned about this rollout came back usable "
        "(router.selection.min_verdict_share); false: mask it (see reward)",
    )
    rank: int = Field(description="1 = best of the judged rollouts of the cohort")
    rollout_index: int
    cohort_id: str = Field(description="this cohort, unique in the router replica")
    group_id: str | None = Field(description="the request's group_id (None: grouped by prompt)")
    group_size: int
    size_judged: int = Field(description="rollouts judged together (fewer than group_size when it timed out)")
    complete: bool = Field(description="every rollout of the group arrived before the cohort was judged")
    closed_by: Literal["full", "timeout"]
    candidate: CandidateScore = Field(description="this rollout's score row (index = rollout_index)")
    strategy: Strategy
    pairwise_calls: int = Field(description="the cohort's, shared by all its rollouts")
    principle_calls: int
    failed_calls: int
    position_bias: PositionBias | None = Field(default=None, description=_POSITION_BIAS)
    judge_terms: JudgeTerms | None = Field(default=None, description=_JUDGE_TERMS)
    degraded: list[str]
    deadline_reached: bool = Field(default=False, description=_DEADLINE_REACHED)
    cancelled_calls: int = Field(default=0, description=_CANCELLED)
    design: str | None = Field(default=None, description=_DESIGN)
    truncated: bool = Field(default=False, description="this response was cut to fit (overlong policy 'truncate')")
    overlong_policy: OverlongPolicy
    timings: CohortTimings
    provenance: Provenance | None = Field(default=None, description="which judges, asked how, by which design")
    diagnostics: JudgeHealth | None = Field(
        default=None,
        description="the judges' health in this judging: cut-offs, parse failures, ties, flips, length "
        "correlation, cycles (policies.health)",
    )


#: A group is a /v1/rank body, documented as one, but parsed group by group so that one invalid group gets its own 422
#: entry instead of failing the batch.
RankGroup = Annotated[Any, WithJsonSchema({"$ref": "#/components/schemas/RankRequest"})]


class RankBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[RankGroup] = Field(
        min_length=1,
        description="each a /v1/rank request body (a prompt's conversation, its rollouts as candidates, options); "
        "judged concurrently",
    )


class RankBatchEntry(BaseModel):
    index: int = Field(description="the group's position in the request")
    status: int = Field(description="200, or the status /v1/rank would have answered for this group")
    result: RankResponse | None = Field(default=None, description="the /v1/rank answer, when status is 200")
    detail: str | list[dict[str, Any]] | None = Field(
        default=None, description="why the group was not judged: a message, or its validation errors (loc, msg, type)"
    )


class RankBatchTimings(BaseModel):
    total_s: float


class RankBatchResponse(BaseModel):
    results: list[RankBatchEntry] = Field(description="one per group, in request order")
    judged: int = Field(description="groups with status 200")
    failed: int
    timings: RankBatchTimings
