"""Judge health, read off one group's judging: the signs that a judge is failing before its failures show.

For the pairwise judge, over the group's calls and comparisons:

* ``cut_off_share`` — calls whose answer hit ``max_tokens`` before its verdict (a token cap set too low: NeMo-Gym
  users saw half their verdicts lost this way);
* ``parse_failure_share`` — the other failed calls (unreadable answers, errors, timeouts);
* ``tie_share`` — verdicts that give both responses the same helpfulness (NeMo-Gym's tie-break usage);
* ``flip_share`` — comparisons judged in both orders whose orders disagree on the winner (position bias);
* ``position_advantage`` — with ``fit_position_bias``, the first-position advantage h the judging was debiased
  with (:mod:`policies.position_bias`): the same estimate as the answer's, and the one position signal a design
  in one order has (it has no two-order comparisons to flip);
* ``length_correlation`` — Spearman's ρ between the candidates' scores and their lengths in characters (a judge
  that rewards length); None with fewer than 3 candidates or constant scores or lengths;
* ``judged_triples`` and ``cycle_share`` — triples of candidates whose three pairs all have a verdict, and the share
  of them whose verdicts form a cycle (a beats b beats c beats a: preferences no ranking can honour).

For the principle judge: ``principle_cut_off_share`` and ``principle_failure_share`` over its answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field
from scipy.stats import spearmanr

from policies.debias import Comparison
from policies.position_bias import PositionBias
from policies.verdicts import CUT_OFF, PrincipleResult


class JudgeHealth(BaseModel):
    pairwise_calls: int = 0
    verdicts: int = Field(default=0, description="readable pairwise verdicts")
    two_order_comparisons: int = Field(default=0, description="comparisons with a verdict in both orders")
    cut_off_share: float | None = Field(default=None, description="pairwise calls cut at max_tokens")
    parse_failure_share: float | None = Field(default=None, description="pairwise calls failed otherwise")
    tie_share: float | None = Field(default=None, description="verdicts with equal helpfulness for both responses")
    flip_share: float | None = Field(default=None, description="two-order comparisons whose orders disagree")
    position_advantage: float | None = Field(
        default=None, description="with fit_position_bias: the fitted first-position advantage h (log-odds)"
    )
    length_correlation: float | None = Field(default=None, description="Spearman ρ of score with length")
    judged_triples: int = 0
    cycle_share: float | None = Field(default=None, description="judged triples whose verdicts form a cycle")
    principle_answers: int = 0
    principle_cut_off_share: float | None = None
    principle_failure_share: float | None = None


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def events(health: JudgeHealth) -> dict[tuple[str, str], int]:
    """The counts behind the shares, by (judge, event), for counters whose ratios give the shares over time:
    cut_off / calls, parse_failure / calls, tie / verdict, flip / two_order, cyclic_triple / judged_triple."""

    def count(share: float | None, whole: int) -> int:
        return round((share or 0.0) * whole)

    h = health
    return {
        ("pairwise", "call"): h.pairwise_calls,
        ("pairwise", "cut_off"): count(h.cut_off_share, h.pairwise_calls),
        ("pairwise", "parse_failure"): count(h.parse_failure_share, h.pairwise_calls),
        ("pairwise", "verdict"): h.verdicts,
        ("pairwise", "tie"): count(h.tie_share, h.verdicts),
        ("pairwise", "two_order"): h.two_order_comparisons,
        ("pairwise", "flip"): count(h.flip_share, h.two_order_comparisons),
        ("pairwise", "judged_triple"): h.judged_triples,
        ("pairwise", "cyclic_triple"): count(h.cycle_share, h.judged_triples),
        ("principle", "answer"): h.principle_answers,
        ("principle", "cut_off"): count(h.principle_cut_off_share, h.principle_answers),
        ("principle", "failure"): count(h.principle_failure_share, h.principle_answers),
    }


def cyclic_triples(n: int, comparisons: Sequence[Comparison]) -> tuple[int, int]:
    """(triples with all three pairs decided, of which cyclic). A pair judged more than once counts by the sign of
    its summed margins; a pair whose margins cancel is undecided."""
    total: dict[tuple[int, int], float] = {}
    for c in comparisons:
        if c.margin is not None:
            a, b, m = (c.i, c.j, c.margin) if c.i < c.j else (c.j, c.i, -c.margin)
            total[a, b] = total.get((a, b), 0.0) + m
    beats = {pair: margin > 0 for pair, margin in total.items() if margin != 0}
    nodes = sorted({k for pair in beats for k in pair})
    judged = cycles = 0
    for a, b, c in itertools.combinations(nodes, 3):
        if (a, b) in beats and (b, c) in beats and (a, c) in beats:
            judged += 1
            # a cycle: a>b, b>c, c>a or the reverse
            cycles += beats[a, b] == beats[b, c] != beats[a, c]
    return judged, cycles


def judge_health(
    comparisons: Sequence[Comparison],
    principle_results: Sequence[Sequence[PrincipleResult]],
    scores: Sequence[float],
    lengths: Sequence[int],
    position_bias: PositionBias | None = None,
) -> JudgeHealth:
    """The health of one group's judging (see the module docstring); ``scores`` and ``lengths`` per candidate,
    ``position_bias`` the selection's fitted advantage, if it fitted one."""
    calls = sum(c.calls for c in comparisons)
    cut = sum(c.cut_off for c in comparisons)
    failed = sum(c.failures for c in comparisons)
    verdicts = [v for c in comparisons for v in (c.forward, c.backward) if v is not None]
    two_orders = [c.consistent for c in comparisons if c.consistent is not None]
    rho = None
    if len(scores) >= 3 and np.ptp(scores) > 0 and np.ptp(lengths) > 0:
        rho = float(spearmanr(scores, lengths).statistic)
    judged, cycles = cyclic_triples(len(scores), comparisons)
    answers = [r for rs in principle_results for r in rs]
    return JudgeHealth(
        pairwise_calls=calls,
        verdicts=len(verdicts),
        two_order_comparisons=len(two_orders),
        cut_off_share=_share(cut, calls),
        parse_failure_share=_share(failed - cut, calls),
        tie_share=_share(sum(v.score_1 == v.score_2 for v in verdicts), len(verdicts)),
        flip_share=_share(sum(not ok for ok in two_orders), len(two_orders)),
        position_advantage=position_bias.estimate if position_bias is not None else None,
        length_correlation=rho,
        judged_triples=judged,
        cycle_share=_share(cycles, judged),
        principle_answers=len(answers),
        principle_cut_off_share=_share(sum(r.failure == CUT_OFF for r in answers), len(answers)),
        principle_failure_share=_share(sum(r.failure is not None for r in answers), len(answers)),
    )
