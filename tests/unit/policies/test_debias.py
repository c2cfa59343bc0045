"""Position-swap debiasing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.debias import combine_orders, combine_results, mean_helpfulness, swap_inconsistency
from policies.verdicts import PairVerdict, PairwiseResult

# A true margin t and a constant first-position bias b keep both rankings 3.5 − (±t + b) inside 1..6.
true_and_bias = st.tuples(st.floats(-1.25, 1.25), st.floats(-1.25, 1.25))


@given(true_and_bias)
def test_swapping_cancels_a_constant_position_bias_exactly(tb: tuple[float, float]) -> None:
    t, b = tb
    forward = PairVerdict(ranking=3.5 - (t + b))  # i shown first
    backward = PairVerdict(ranking=3.5 - (-t + b))  # j shown first
    assert combine_orders(0, 1, forward, backward).margin == pytest.approx(t, abs=1e-12)


@given(true_and_bias)
def test_the_backward_order_is_the_same_comparison_seen_from_j(tb: tuple[float, float]) -> None:
    t, b = tb
    f, r = PairVerdict(ranking=3.5 - (t + b)), PairVerdict(ranking=3.5 - (-t + b))
    assert combine_orders(0, 1, f, r).margin == pytest.approx(-combine_orders(1, 0, r, f).margin, abs=1e-12)


def test_individual_scores_follow_their_candidate_across_orders() -> None:
    c = combine_orders(4, 9, PairVerdict(score_1=5, score_2=2, ranking=2), PairVerdict(score_1=3, score_2=4, ranking=4))
    assert (c.score_i, c.score_j) == (4.5, 2.5)
    assert c.margin == pytest.approx((1.5 + 0.5) / 2)
    assert c.consistent is True and c.orders == 2


def test_a_position_flip_is_recorded() -> None:
    # Both calls prefer whichever response was shown first.
    c = combine_orders(0, 1, PairVerdict(ranking=2), PairVerdict(ranking=2))
    assert c.margin == 0 and c.consistent is False
    assert swap_inconsistency([c, combine_orders(0, 2, PairVerdict(ranking=1), PairVerdict(ranking=6))]) == 0.5


def test_one_order_keeps_its_margin_and_no_consistency() -> None:
    only_backward = combine_orders(0, 1, None, PairVerdict(ranking=5))
    assert only_backward.margin == 1.5 and only_backward.consistent is None and only_backward.orders == 1
    assert combine_orders(0, 1, None, None).margin is None
    assert swap_inconsistency([only_backward]) is None


def test_margin_falls_back_to_scores_without_a_ranking() -> None:
    assert PairVerdict(score_1=5, score_2=1).margin == 2.5
    assert PairVerdict(score_1=3).margin is None


def test_results_keep_the_last_valid_verdict_and_count_every_call() -> None:
    failed = PairwiseResult(failure="unreadable", raw_text="??")
    good = PairwiseResult(verdict=PairVerdict(ranking=1))
    c = combine_results(0, 1, [failed, good], [failed, failed])
    assert c.margin == 2.5 and c.calls == 4 and c.failures == 3 and c.backward is None


def test_verdicts_are_range_checked() -> None:
    with pytest.raises(ValueError):
        PairVerdict(ranking=7)
    with pytest.raises(ValueError):
        PairVerdict(score_1=0)
    with pytest.raises(ValueError, match="at least one"):
        PairVerdict()
    with pytest.raises(ValueError, match="exactly one"):
        PairwiseResult()


@given(st.floats(-1.0, 1.0), st.floats(2.0, 4.0), st.floats(2.0, 4.0))
def test_mean_helpfulness_cancels_a_first_position_score_bias(bias: float, h0: float, h1: float) -> None:
    forward = PairVerdict(score_1=h0 + bias, score_2=h1, ranking=3)  # candidate 0 shown first
    backward = PairVerdict(score_1=h1 + bias, score_2=h0, ranking=4)  # candidate 1 shown first
    means = mean_helpfulness([combine_orders(0, 1, forward, backward)], 3)
    np.testing.assert_allclose(means[:2], [h0 + bias / 2, h1 + bias / 2])
    assert means[0] - means[1] == pytest.approx(h0 - h1, abs=1e-9)  # h0 ≈ h1: a relative check of ~0 fails on rounding
    assert np.isnan(means[2])
