"""What one judge call returns, once its text has been read.

These are the boundary types between the judges (deployments/, which know how to ask a model and read its
answer) and the selection policies (this package, which only see numbers). A call that could not be read is
still a result: ``failure`` says why, ``raw_text`` keeps what the model said, and the caller decides whether to
retry.

Scales (from the model cards):

- pairwise helpfulness ``score_1`` / ``score_2``: 1..5, higher is better;
- pairwise ``ranking``: 1..6, where 1-3 prefer the response shown first (1 = much better) and 4-6 the one shown
  second (6 = much better). There is no tie level; 3.5 is the midpoint;
- principle reward: logprob(" Yes") - logprob(" No") at the judge's final Yes/No token, each side clipped at -50.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCORE_MIN, SCORE_MAX = 1.0, 5.0
RANKING_MIN, RANKING_MAX = 1.0, 6.0
RANKING_MIDPOINT = 3.5
#: Largest |margin| a single pairwise call can express (ranking 1 or 6).
MAX_MARGIN = RANKING_MIDPOINT - RANKING_MIN
#: Floor for a Yes/No logprob that the engine did not return (the model card clips at -50).
LOGPROB_FLOOR = -50.0


class PairVerdict(BaseModel):
    """The numbers of one pairwise call, in the order the two responses were shown."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score_1: float | None = Field(default=None, ge=SCORE_MIN, le=SCORE_MAX)
    score_2: float | None = Field(default=None, ge=SCORE_MIN, le=SCORE_MAX)
    ranking: float | None = Field(default=None, ge=RANKING_MIN, le=RANKING_MAX)

    @model_validator(mode="after")
    def _not_empty(self) -> PairVerdict:
        if self.score_1 is None and self.score_2 is None and self.ranking is None:
            raise ValueError("a pairwise verdict needs at least one of score_1, score_2, ranking")
        return self

    @property
    def margin(self) -> float | None:
        """Signed preference for the first-shown response, in [-2.5, 2.5].

        From the ranking r as 3.5 - r. Without a ranking, the helpfulness difference score_1 - score_2 (range
        [-4, 4]) is rescaled onto the same range; None when neither is available.
        """
        if self.ranking is not None:
            return RANKING_MIDPOINT - self.ranking
        if self.score_1 is not None and self.score_2 is not None:
            return (self.score_1 - self.score_2) * MAX_MARGIN / (SCORE_MAX - SCORE_MIN)
        return None


class PairwiseResult(BaseModel):
    """One pairwise judge call: a verdict, or the reason there is none."""

    model_config = ConfigDict(frozen=True)

    verdict: PairVerdict | None = None
    raw_text: str = ""
    failure: str | None = None

    @model_validator(mode="after")
    def _verdict_xor_failure(self) -> PairwiseResult:
        if (self.verdict is None) == (self.failure is None):
            raise ValueError("exactly one of verdict and failure must be set")
        return self

    @property
    def ok(self) -> bool:
        return self.verdict is not None


class PrincipleResult(BaseModel):
    """One principle judged for one response."""

    model_config = ConfigDict(frozen=True)

    principle: str
    reward: float | None = None
    yes_logprob: float | None = Field(default=None, ge=LOGPROB_FLOOR, le=0.0)
    no_logprob: float | None = Field(default=None, ge=LOGPROB_FLOOR, le=0.0)
    answer: Literal["Yes", "No"] | None = None
    raw_text: str = ""
    failure: str | None = None

    @model_validator(mode="after")
    def _reward_xor_failure(self) -> PrincipleResult:
        if (self.reward is None) == (self.failure is None):
            raise ValueError("exactly one of reward and failure must be set")
        return self

    @property
    def ok(self) -> bool:
        return self.reward is not None
