"""NeMo-Gym's reward rule (policies/nemo_gym.py) on hand-computed examples."""

from __future__ import annotations

import math

import pytest

from policies.debias import combine_orders
from policies.nemo_gym import JudgedPair, aggregate, pairs_from_comparisons
from policies.verdicts import PairVerdict


def pair(i: int, j: int, s1: float, s2: float, ranking: float) -> JudgedPair:
    return JudgedPair(response_i=i, response_j=j, score_1=s1, score_2=s2, ranking=ranking)


def test_circular_example_computed_by_hand() -> None:
    """Three responses, circular pairs (0,1), (1,2), (2,0), one order each:

    (0,1): 4 vs 2, no tie                        -> 0: 4,    1: 2
    (1,2): 3 vs 3, ranking 2: adj = 3.5 - 2 = 1.5 -> 1: 4.5,  2: 1.5
    (2,0): 5 vs 5, ranking 5: adj = -1.5          -> 2: 3.5,  0: 6.5
    rewards: 0: (4 + 6.5) / 2 = 5.25, 1: (2 + 4.5) / 2 = 3.25, 2: (1.5 + 3.5) / 2 = 2.5
    raw scores 4, 2, 3, 3, 5, 5: mean 22/6, squared deviations sum to 22/3, population variance 22/3 / 6 = 11/9;
    2 of 3 pairs tied."""
    result = aggregate(3, [pair(0, 1, 4, 2, 2), pair(1, 2, 3, 3, 2), pair(2, 0, 5, 5, 5)])
    assert result.rewards == [5.25, 3.25, 2.5]
    assert result.mean_individual_score == pytest.approx(22 / 6)
    assert result.std_individual_score == pytest.approx(math.sqrt(11 / 9))
    assert result.tiebreak_usage_rate == pytest.approx(2 / 3)


def test_a_response_in_no_pair_gets_the_default_and_no_pairs_no_metrics() -> None:
    result = aggregate(3, [pair(0, 1, 5, 1, 1)], default_score=3.0)
    assert result.rewards == [5.0, 1.0, 3.0]
    empty = aggregate(2, [], default_score=2.5)
    assert empty.rewards == [2.5, 2.5]
    assert (empty.mean_individual_score, empty.std_individual_score, empty.tiebreak_usage_rate) == (None, None, None)
    assert aggregate(0, []).rewards == []


def test_a_tie_at_the_midpoint_ranking_changes_nothing() -> None:
    result = aggregate(2, [pair(0, 1, 4, 4, 3.5)])
    assert result.rewards == [4.0, 4.0] and result.tiebreak_usage_rate == 1.0


def test_pairs_outside_the_group_are_refused() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        aggregate(2, [pair(0, 2, 4, 4, 3)])


def test_comparisons_become_pairs_in_the_order_judged() -> None:
    forward_only = combine_orders(0, 1, PairVerdict(score_1=4, score_2=2, ranking=2), None)
    both = combine_orders(
        1, 2, PairVerdict(score_1=3, score_2=5, ranking=5), PairVerdict(score_1=4, score_2=4, ranking=3)
    )
    nothing = combine_orders(2, 0, None, None)
    partial = combine_orders(0, 2, PairVerdict(ranking=6), None)  # no scores: NeMo-Gym's defaults stand in
    pairs = pairs_from_comparisons([forward_only, both, nothing, partial], default_score=3.0, default_ranking=3.5)
    assert [(p.response_i, p.response_j, p.score_1, p.score_2, p.ranking) for p in pairs] == [
        (0, 1, 4, 2, 2),
        (1, 2, 3, 5, 5),
        (2, 1, 4, 4, 3),  # the backward call showed 2 first
        (2, 0, 3.0, 3.0, 3.5),  # no verdict in either order: the defaults
        (0, 2, 3.0, 3.0, 6),
    ]
    skipped = pairs_from_comparisons([forward_only, nothing], missing="skip")
    assert [(p.response_i, p.response_j) for p in skipped] == [(0, 1)]
    assert all(p.judge_idx == 0 for p in pairs)
