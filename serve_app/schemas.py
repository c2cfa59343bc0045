"""The HTTP API's request and response bodies (what the OpenAPI schema documents).

Requests are validated here and against the running configuration's limits in :func:`check_limits`; every failure
is a 422 that says which field was wrong and what is allowed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deployments.chat import ChatMessage, Text, validate_history
from policies.debias import Comparison
from policies.selection import CandidateScore, Strategy
from policies.verdicts import PairwiseResult, PrincipleResult


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


class SelectionOptions(BaseModel):
    """Per-request overrides of the configured selection defaults."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy | None = Field(default=None, description="pair design; default from the configuration")
    max_pairwise_calls: int | None = Field(default=None, ge=0, le=100_000, description="budget, retries included")
    swap: bool | None = Field(default=None, description="judge every pair in both orders")
    use_principle: bool | None = Field(default=None, description="also score candidates with the principle judge")
    seed: int | None = Field(default=None, description="tie-breaks and random orders; same seed, same choice")


class BestOfNRequest(_Request, SelectionOptions):
    candidates: list[Text] = Field(min_length=1, description="the N responses to the last user turn")
    principles: list[Text] | None = Field(
        default=None, description="principles for the principle judge; default from the configuration"
    )
    principle_for_pairwise: Text | None = Field(
        default=None, description="optional principle the pairwise judge applies instead of its default evaluation"
    )

    @field_validator("candidates")
    @classmethod
    def _non_empty_candidates(cls, value: list[str]) -> list[str]:
        for i, c in enumerate(value):
            if not c.strip():
                raise ValueError(f"candidate {i} is empty or whitespace")
        return value

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


class RankRequest(BestOfNRequest):
    """Same fields as best-of-N; the answer is a score for every candidate (default strategy: round robin)."""


OverlongPolicy = Literal["reject", "truncate"]
_DUPLICATES = "groups of identical candidates (after NFC and trimming), each judged once as its first index"
_TRUNCATED = "candidates cut to fit the judges' context (overlong policy 'truncate'), judged on their beginning"


class Timings(BaseModel):
    total_s: float
    selection_s: float
    queued_s: float = Field(description="waiting for admission (router.max_concurrent_requests)")
    judge_queue_s: float = Field(
        default=0.0, description="summed over the request's judge calls: waiting for a free judge slot"
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
    degraded: list[str] = Field(description="empty when every judge answered as asked")
    duplicates: list[list[int]] = Field(default_factory=list, description=_DUPLICATES)
    truncated: list[int] = Field(default_factory=list, description=_TRUNCATED)
    overlong_policy: OverlongPolicy
    timings: Timings


class RankResponse(BaseModel):
    scores: list[float] = Field(description="ensemble score per candidate, in request order (higher is better)")
    ranks: list[int] = Field(description="1 = best, per candidate in request order")
    candidates: list[CandidateScore]
    pairwise_calls: int
    principle_calls: int
    failed_calls: int
    degraded: list[str]
    duplicates: list[list[int]] = Field(default_factory=list, description=_DUPLICATES)
    truncated: list[int] = Field(default_factory=list, description=_TRUNCATED)
    overlong_policy: OverlongPolicy
    timings: Timings


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
    judges: list[JudgeInfo]


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
    status: Literal["ready", "warming_up"]
    judges: dict[str, JudgeReadiness]
    capacity: int = Field(
        description="requests the router runs at once (router.max_concurrent_requests): a good client concurrency"
    )
