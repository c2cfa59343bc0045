"""NeMo-Gym's reward rule for a group of rollouts (its ``genrm_compare`` server), as pure arithmetic.

NVIDIA's RLHF recipe judges each pair of a circular design (i, i+1 mod N) once, in one order, and reads the pairwise
GenRM's two 1–5 helpfulness scores and its 1–6 ranking. The rule, per judged pair shown as (first, second):

* when the two scores are equal, the ranking breaks the tie: ``adj = 3.5 − ranking``, the first response's score
  gains ``adj`` and the second's loses it (ranking 1–3 favours the first, 4–6 the second);
* a response's reward is the mean of its (adjusted) scores over the pairs it took part in, ``default_score`` when
  it took part in none;
* the metrics are the mean and population standard deviation of every score as the judge gave it (before
  tie-breaks), and the share of pairs whose scores tied.

A call that produced no verdict counts with NeMo-Gym's defaults (each score ``default_score``, ranking
``default_ranking``), and a verdict missing one of the three numbers takes that number's default, as NeMo-Gym does.

:func:`pairs_from_comparisons` turns the selection's :class:`~policies.debias.Comparison` records into judged pairs
(one per order that was judged); :func:`aggregate` applies the rule. No Ray, no HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from policies.debias import Comparison
from policies.verdicts import RANKING_MIDPOINT, PairVerdict

#: NeMo-Gym's defaults for a call without a verdict (its ``default_score`` / ``default_ranking``)
DEFAULT_SCORE = 3.0
DEFAULT_RANKING = RANKING_MIDPOINT


class JudgedPair(BaseModel):
    """One pairwise call as NeMo-Gym reports it: ``response_i`` was shown first, ``response_j`` second."""

    model_config = ConfigDict(frozen=True)

    response_i: int
    response_j: int
    judge_idx: int = Field(default=0, description="which judging pass of the pair (NeMo-Gym can judge a pair k times)")
    score_1: float = Field(description="helpfulness 1–5 of response_i, as the judge gave it")
    score_2: float = Field(description="helpfulness 1–5 of response_j, as the judge gave it")
    ranking: float = Field(description="1–6: 1–3 prefer response_i, 4–6 response_j")


class NemoGymAggregate(BaseModel):
    rewards: list[float]
    mean_individual_score: float | None = Field(description="None when no pair was judged")
    std_individual_score: float | None = Field(description="population standard deviation; None without pairs")
    tiebreak_usage_rate: float | None = Field(description="share of pairs whose scores tied; None without pairs")


def _pair(
    first: int, second: int, verdict: PairVerdict | None, default_score: float, default_ranking: float
) -> JudgedPair:
    def value(x: float | None, default: float) -> float:
        return default if x is None else float(x)

    return JudgedPair(
        response_i=first,
        response_j=second,
        score_1=value(verdict and verdict.score_1, default_score),
        score_2=value(verdict and verdict.score_2, default_score),
        ranking=value(verdict and verdict.ranking, default_ranking),
    )


def pairs_from_comparisons(
    comparisons: Sequence[Comparison],
    *,
    default_score: float = DEFAULT_SCORE,
    default_ranking: float = DEFAULT_RANKING,
    missing: Literal["default", "skip"] = "default",
) -> list[JudgedPair]:
    """Every judged order of every comparison as a pair in the order the judge saw it: the forward call shows
    (i, j), the backward call (j, i). A comparison with no verdict in either order becomes one (i, j) pair of
    defaults (``missing="default"``, NeMo-Gym's fallback) or is left out (``"skip"``)."""
    pairs: list[JudgedPair] = []
    for c in comparisons:
        if c.forward is None and c.backward is None:
            if missing == "default":
                pairs.append(_pair(c.i, c.j, None, default_score, default_ranking))
            continue
        if c.forward is not None:
            pairs.append(_pair(c.i, c.j, c.forward, default_score, default_ranking))
        if c.backward is not None:
            pairs.append(_pair(c.j, c.i, c.backward, default_score, default_ranking))
    return pairs


def aggregate(n: int, pairs: Sequence[JudgedPair], *, default_score: float = DEFAULT_SCORE) -> NemoGymAggregate:
    """NeMo-Gym's rewards for responses ``0..n-1`` from their judged pairs (see the module docstring)."""
    if n < 0:
        raise ValueError("n must be non-negative")
    totals = np.zeros(n)
    counts = np.zeros(n)
    raw = np.empty(2 * len(pairs))
    ties = 0
    for k, p in enumerate(pairs):
        if not (0 <= p.response_i < n and 0 <= p.response_j < n):
            raise ValueError(f"pair {k} names response {p.response_i} or {p.response_j}, outside 0..{n - 1}")
        raw[2 * k], raw[2 * k + 1] = p.score_1, p.score_2
        first, second = p.score_1, p.score_2
        if first == second:
            ties += 1
            adj = RANKING_MIDPOINT - p.ranking
            first, second = first + adj, second - adj
        totals[p.response_i] += first
        totals[p.response_j] += second
        counts[p.response_i] += 1
        counts[p.response_j] += 1
    judged = counts > 0
    rewards = np.full(n, float(default_score))
    rewards[judged] = totals[judged] / counts[judged]
    return NemoGymAggregate(
        rewards=[float(r) for r in rewards],
        mean_individual_score=float(raw.mean()) if pairs else None,
        std_individual_score=float(raw.std()) if pairs else None,
        tiebreak_usage_rate=ties / len(pairs) if pairs else None,
    )
