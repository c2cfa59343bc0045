"""Position-swap debiasing: one comparison of two candidates from the calls made in either order.

A pairwise judge sees (first, second) and answers a ranking r in 1..6; the signed margin for the first-shown
response is d = 3.5 - r. For candidates i and j judged as (i, j) and as (j, i):

    d_ij = (d_forward - d_backward) / 2          (the backward margin favours j, so its sign is flipped)
    s_i  = (forward.score_1 + backward.score_2) / 2,   s_j = (forward.score_2 + backward.score_1) / 2

A judge that adds a constant b to every first-shown margin contributes +b to d_forward and +b to d_backward,
which cancels exactly in d_ij. With only one order available the comparison keeps that order's margin (and its
bias); the record says how many orders it rests on.

With ``verdicts="soft"`` each call's d is its belief's expected margin E[3.5 − r] (``PairVerdict.soft_margin``,
the sampled 3.5 − r for a verdict without logprobs); the same averaging then cancels a constant bias in the
belief. The verdicts themselves, sampled rankings included, are kept as the judge gave them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from policies.verdicts import CUT_OFF, PairVerdict, PairwiseResult, VerdictMode


class Comparison(BaseModel):
    """Everything known about candidates ``i`` and ``j`` after judging them (``i`` first in the forward call)."""

    model_config = ConfigDict(frozen=True)

    i: int
    j: int
    #: Signed preference for ``i`` over ``j`` in [-2.5, 2.5]; None when no call produced a verdict.
    margin: float | None
    score_i: float | None = None
    score_j: float | None = None
    #: Verdicts as the judge gave them: forward shows (i, j), backward shows (j, i).
    forward: PairVerdict | None = None
    backward: PairVerdict | None = None
    #: False when the two orders disagree on who is better (a position flip); None with fewer than two orders.
    consistent: bool | None = None
    calls: int = 0
    failures: int = 0
    #: failed calls whose answer hit max_tokens before its verdict (part of ``failures``)
    cut_off: int = 0
    #: failed calls that got no answer at all, an error or a timeout (part of ``failures``)
    unanswered: int = 0
    round: int = 0

    @property
    def orders(self) -> int:
        return int(self.forward is not None) + int(self.backward is not None)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def combine_orders(
    i: int,
    j: int,
    forward: PairVerdict | None,
    backward: PairVerdict | None,
    *,
    calls: int = 0,
    failures: int = 0,
    round: int = 0,
    verdicts: VerdictMode = "sampled",
) -> Comparison:
    """Merge the verdicts of the (i, j) and (j, i) calls into one comparison from i's point of view.

    ``verdicts`` says which margin of each call counts (see the module docstring); ``consistent`` compares the
    same margins, so with soft verdicts it asks whether the two beliefs lean the same way.
    """
    fwd_margin = forward.margin_as(verdicts) if forward is not None else None
    bwd_margin = backward.margin_as(verdicts) if backward is not None else None
    flipped = -bwd_margin if bwd_margin is not None else None
    margin = _mean([fwd_margin, flipped])
    consistent = None
    if fwd_margin is not None and flipped is not None:
        # Sampled ranking margins are never 0, so a product <= 0 means the orders disagree (or one is a tie).
        consistent = fwd_margin * flipped > 0
    return Comparison(
        i=i,
        j=j,
        margin=margin,
        score_i=_mean([forward and forward.score_1, backward and backward.score_2]),
        score_j=_mean([forward and forward.score_2, backward and backward.score_1]),
        forward=forward,
        backward=backward,
        consistent=consistent,
        calls=calls,
        failures=failures,
        round=round,
    )


def combine_results(
    i: int,
    j: int,
    forward: Sequence[PairwiseResult],
    backward: Sequence[PairwiseResult],
    *,
    round: int = 0,
    verdicts: VerdictMode = "sampled",
) -> Comparison:
    """Like :func:`combine_orders`, from the raw call results of each order (retries included, last valid wins)."""

    def last_valid(results: Sequence[PairwiseResult]) -> PairVerdict | None:
        return next((r.verdict for r in reversed(results) if r.verdict is not None), None)

    all_results = [*forward, *backward]
    merged = combine_orders(
        i,
        j,
        last_valid(forward),
        last_valid(backward),
        calls=len(all_results),
        failures=sum(not r.ok for r in all_results),
        round=round,
        verdicts=verdicts,
    )
    cut_off = sum(r.failure == CUT_OFF for r in all_results)
    unanswered = sum(r.unanswered for r in all_results)
    return merged.model_copy(update={"cut_off": cut_off, "unanswered": unanswered}) if cut_off or unanswered else merged


def swap_inconsistency(comparisons: Sequence[Comparison]) -> float | None:
    """Share of two-order comparisons whose orders disagree; None when no comparison has both orders."""
    judged = [c.consistent for c in comparisons if c.consistent is not None]
    if not judged:
        return None
    return sum(not ok for ok in judged) / len(judged)


def mean_helpfulness(comparisons: Sequence[Comparison], n: int) -> np.ndarray:
    """Each candidate's mean 1–5 helpfulness over the comparisons it took part in; NaN where it has none.

    Taken from the merged per-comparison scores, so with both orders judged a candidate's first- and second-position
    scores count equally and a constant first-position score bias cancels.
    """
    totals = np.zeros(n)
    counts = np.zeros(n)
    for c in comparisons:
        for k, score in ((c.i, c.score_i), (c.j, c.score_j)):
            if score is not None:
                totals[k] += score
                counts[k] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
