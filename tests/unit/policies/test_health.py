"""Judge health read off one group's judging: cut-offs and other failures, ties, order flips, length correlation and
cycles among judged triples; and the counts the metrics export, whose ratios are those shares."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.debias import combine_orders, combine_results
from policies.health import cyclic_triples, events, judge_health
from policies.verdicts import CUT_OFF, PairVerdict, PairwiseResult, PrincipleResult


def verdict(first_better: bool, tie: bool = False) -> PairVerdict:
    return PairVerdict(score_1=3, score_2=3 if tie else (2 if first_better else 4), ranking=2 if first_better else 5)


def test_a_cycle_and_a_transitive_triple() -> None:
    beats = [(0, 1), (1, 2), (2, 0)]  # 0 > 1 > 2 > 0
    cycle = [combine_orders(i, j, verdict(True), None) for i, j in beats]
    assert cyclic_triples(3, cycle) == (1, 1)
    order = [combine_orders(i, j, verdict(True), None) for i, j in [(0, 1), (1, 2), (0, 2)]]
    assert cyclic_triples(3, order) == (1, 0)
    assert cyclic_triples(3, order[:2]) == (0, 0)  # one pair unjudged: no triple


@given(st.permutations(range(5)), st.randoms())
def test_verdicts_that_follow_a_ranking_never_form_a_cycle(ranking: list[int], rnd) -> None:  # type: ignore[no-untyped-def]
    place = {k: r for r, k in enumerate(ranking)}
    pairs = list(itertools.combinations(range(5), 2))
    rnd.shuffle(pairs)
    comps = [combine_orders(i, j, verdict(place[i] < place[j]), None) for i, j in pairs]
    judged, cycles = cyclic_triples(5, comps)
    assert (judged, cycles) == (10, 0)


def test_shares_of_one_groups_judging() -> None:
    ok = PairwiseResult(verdict=verdict(True))
    cut = PairwiseResult(failure=CUT_OFF, raw_text="...")
    bad = PairwiseResult(failure="unreadable", raw_text="?")
    comps = [
        combine_results(0, 1, [ok], [PairwiseResult(verdict=verdict(True))]),  # orders disagree: a flip
        combine_results(1, 2, [cut, ok], [PairwiseResult(verdict=verdict(False, tie=True))]),
        combine_results(0, 2, [bad], []),
    ]
    principle = [[PrincipleResult(principle="p", reward=1.0)], [PrincipleResult(principle="p", failure=CUT_OFF)]]
    health = judge_health(comps, principle, scores=[3.0, 2.0, 1.0], lengths=[30, 20, 10])
    assert health.pairwise_calls == 6
    assert health.cut_off_share == pytest.approx(1 / 6) and health.parse_failure_share == pytest.approx(1 / 6)
    assert health.tie_share == pytest.approx(1 / 4) and health.flip_share == pytest.approx(1 / 2)
    assert health.length_correlation == pytest.approx(1.0)
    assert (health.principle_cut_off_share, health.principle_failure_share) == (0.5, 0.5)
    counts = events(health)
    assert counts["pairwise", "cut_off"] == 1 and counts["pairwise", "tie"] == 1 and counts["pairwise", "flip"] == 1
    assert counts["principle", "cut_off"] == 1 and counts["principle", "answer"] == 2


def test_length_correlation_needs_three_varying_candidates() -> None:
    assert judge_health([], [], [1.0, 2.0], [5, 6]).length_correlation is None
    assert judge_health([], [], [1.0, 1.0, 1.0], [5, 6, 7]).length_correlation is None
