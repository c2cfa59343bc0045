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

A sampled ranking is one draw from the judge's belief. When the engine returns the logprobs at the ranking digit,
``ranking_probs`` holds that belief p_1..p_6 (renormalised over the six digits) and the verdict offers the soft
margin E[3.5 − r] = Σ_r p_r · (3.5 − r) and its spread beside the sampled margin. The two helpfulness scores are
read the same way at their digits (``score_1_probs``, ``score_2_probs`` over 1..5; :attr:`PairVerdict.expected_scores`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCORE_MIN, SCORE_MAX = 1.0, 5.0
RANKING_MIN, RANKING_MAX = 1.0, 6.0
RANKING_MIDPOINT = 3.5
#: Largest |margin| a single pairwise call can express (ranking 1 or 6).
MAX_MARGIN = RANKING_MIDPOINT - RANKING_MIN
#: Floor for a Yes/No logprob that the engine did not return (the model card clips at -50).
LOGPROB_FLOOR = -50.0
#: The ranking levels 1..6, in the order of ``PairVerdict.ranking_probs``.
RANKING_LEVELS = tuple(range(int(RANKING_MIN), int(RANKING_MAX) + 1))
#: The helpfulness levels 1..5, in the order of ``PairVerdict.score_1_probs`` and ``score_2_probs``.
SCORE_LEVELS = tuple(range(int(SCORE_MIN), int(SCORE_MAX) + 1))
#: How a comparison reads a verdict: the belief's expected margin when present ("soft"), or the sampled ranking.
VerdictMode = Literal["soft", "sampled"]
_PROB_TOLERANCE = 1e-6


def check_distribution(probs: Sequence[float], size: int) -> tuple[float, ...]:
    """A probability vector of ``size`` entries, renormalised to sum exactly 1; ValueError when it is not one.

    Entries must be finite and non-negative and sum to 1 within 1e-6 (rounding in the logprobs, not a second
    opinion): the renormalisation only removes that rounding.
    """
    values = tuple(float(p) for p in probs)
    if len(values) != size:
        raise ValueError(f"a distribution over {size} levels needs {size} probabilities, got {len(values)}")
    if not all(math.isfinite(p) and p >= 0.0 for p in values):
        raise ValueError(f"probabilities must be finite and non-negative, got {values}")
    total = math.fsum(values)
    if abs(total - 1.0) > _PROB_TOLERANCE:
        raise ValueError(f"probabilities must sum to 1, got {total:.8g}")
    return tuple(p / total for p in values)


def expected_margin(probs: Sequence[float]) -> float:
    """E[m] for m = 3.5 − r and r ~ ``probs`` over 1..6: Σ_r p_r · (3.5 − r), in [−2.5, 2.5].

    A point mass on r gives exactly the sampled margin 3.5 − r; a distribution symmetric about 3.5 gives 0.
    """
    mean = math.fsum(p * (RANKING_MIDPOINT - r) for p, r in zip(probs, RANKING_LEVELS, strict=True))
    return min(max(mean, -MAX_MARGIN), MAX_MARGIN)  # rounding must not leave the margin's range


def margin_spread(probs: Sequence[float]) -> float:
    """Standard deviation of m = 3.5 − r under ``probs``: sqrt(Σ_r p_r · (3.5 − r − E[m])²), 0 for a point mass.

    Computed around the mean (not as E[m²] − E[m]²) so that a near-certain belief gives 0, not a rounding residue.
    """
    mean = expected_margin(probs)
    levels = zip(probs, RANKING_LEVELS, strict=True)
    return math.sqrt(math.fsum(p * (RANKING_MIDPOINT - r - mean) ** 2 for p, r in levels))


def belief_from_logprobs(logprobs: Mapping[int, float], levels: Sequence[int] = RANKING_LEVELS) -> tuple[float, ...]:
    """A distribution over ``levels`` (rankings 1..6 by default; helpfulness 1..5 with :data:`SCORE_LEVELS`) from
    logprobs of some of them ({level: logprob}), renormalised over the levels.

    p_r = exp(ℓ_r) / Σ_s exp(ℓ_s) over the levels present; a level the engine did not list gets 0 (it was below
    the top-k cut, so its mass is negligible next to the listed ones). Needs at least one finite logprob.
    """
    finite = {r: lp for r, lp in logprobs.items() if r in levels and math.isfinite(lp)}
    if not finite:
        raise ValueError(f"no finite logprob for any level {levels[0]}..{levels[-1]}")
    top = max(finite.values())
    weights = [math.exp(finite[r] - top) if r in finite else 0.0 for r in levels]
    total = math.fsum(weights)
    return tuple(w / total for w in weights)


class PairVerdict(BaseModel):
    """The numbers of one pairwise call, in the order the two responses were shown."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score_1: float | None = Field(default=None, ge=SCORE_MIN, le=SCORE_MAX)
    score_2: float | None = Field(default=None, ge=SCORE_MIN, le=SCORE_MAX)
    ranking: float | None = Field(default=None, ge=RANKING_MIN, le=RANKING_MAX)
    ranking_probs: tuple[float, ...] | None = Field(
        default=None,
        description="the judge's belief over rankings 1..6 from the logprobs at its ranking digit (sums to 1); "
        "None when the engine returned no logprobs there",
    )

    score_1_probs: tuple[float, ...] | None = Field(
        default=None, description="the judge's belief over score_1's levels 1..5, from the logprobs at its digit"
    )
    score_2_probs: tuple[float, ...] | None = Field(
        default=None, description="the judge's belief over score_2's levels 1..5, from the logprobs at its digit"
    )

    @field_validator("ranking_probs")
    @classmethod
    def _distribution(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return None if value is None else check_distribution(value, len(RANKING_LEVELS))

    @field_validator("score_1_probs", "score_2_probs")
    @classmethod
    def _score_distribution(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return None if value is None else check_distribution(value, len(SCORE_LEVELS))

    @model_validator(mode="after")
    def _not_empty(self) -> PairVerdict:
        if self.score_1 is None and self.score_2 is None and self.ranking is None:
            raise ValueError("a pairwise verdict needs at least one of score_1, score_2, ranking")
        if self.ranking_probs is not None and self.ranking is None:
            raise ValueError("ranking_probs needs the sampled ranking it was read at")
        if (self.score_1_probs is not None and self.score_1 is None) or (
            self.score_2_probs is not None and self.score_2 is None
        ):
            raise ValueError("a score's belief needs the sampled score it was read at")
        return self

    @property
    def expected_scores(self) -> tuple[float | None, float | None]:
        """E[score_1], E[score_2] under their beliefs; the sampled score where there is no belief."""

        def expected(sampled: float | None, probs: tuple[float, ...] | None) -> float | None:
            if probs is None:
                return sampled
            return math.fsum(p * level for p, level in zip(probs, SCORE_LEVELS, strict=True))

        return expected(self.score_1, self.score_1_probs), expected(self.score_2, self.score_2_probs)

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

    @property
    def soft_margin(self) -> float | None:
        """The belief's expected margin E[3.5 − r] (see :func:`expected_margin`); :attr:`margin` without a belief."""
        return self.margin if self.ranking_probs is None else expected_margin(self.ranking_probs)

    @property
    def margin_sd(self) -> float | None:
        """Spread of the margin under the belief (:func:`margin_spread`); None without a belief."""
        return None if self.ranking_probs is None else margin_spread(self.ranking_probs)

    def margin_as(self, mode: VerdictMode) -> float | None:
        """:attr:`soft_margin` or :attr:`margin`, as the selection setting ``verdicts`` asks."""
        return self.soft_margin if mode == "soft" else self.margin


#: the failure of an answer that hit the call's max_tokens before its verdict (counted apart in judge health)
CUT_OFF = "answer cut off at max_tokens"


class PairwiseResult(BaseModel):
    """One pairwise judge call: a verdict, or the reason there is none."""

    model_config = ConfigDict(frozen=True)

    verdict: PairVerdict | None = None
    raw_text: str = ""
    failure: str | None = None
    #: no answer came back (an error or a timeout), as opposed to an answer that could not be read
    unanswered: bool = False

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


def mean_reward(results: Sequence[PrincipleResult] | None) -> float | None:
    """The mean reward over the principles that were read, (1/|R|)·Σ_{r∈R} reward(r) with R the results that have
    one; None when none has."""
    rewards = [r.reward for r in results or () if r.reward is not None]
    return sum(rewards) / len(rewards) if rewards else None
