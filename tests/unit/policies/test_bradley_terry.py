"""Bradley–Terry: agreement with choix, convergence on sparse designs, confidence."""

from __future__ import annotations

import choix
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import bradley_terry as bt
from policies.debias import combine_orders
from policies.verdicts import PairVerdict


@st.composite
def comparison_graphs(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    n = draw(st.integers(2, 10))
    pair = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1])
    return n, draw(st.lists(pair, min_size=0, max_size=40))


@settings(max_examples=60, deadline=None)
@given(comparison_graphs(), st.sampled_from([1e-3, 1e-2, 0.1, 1.0]))
def test_fit_agrees_with_choix(graph: tuple[int, list[tuple[int, int]]], alpha: float) -> None:
    n, data = graph
    obs = bt.Outcomes.from_records((w, lo, 1.0, 0.0) for w, lo in data)
    ours = bt.fit(n, obs, alpha=alpha)
    reference = choix.opt_pairwise(n, data, alpha=alpha, tol=1e-12)
    objective = choix.opt.PairwiseFcts(data, alpha).objective
    gap = objective(reference) - objective(ours.theta)
    assert gap >= -1e-12  # ours is never the worse optimum of this strictly convex objective
    if gap < 1e-9:  # both at the optimum: the same strengths
        np.testing.assert_allclose(ours.theta, reference, atol=1e-4)
    # else choix's optimiser stopped short (tiny alpha, large strengths), and ours is the lower objective


def test_fractional_weights_equal_repeated_counts() -> None:
    # Weight 3 on one outcome is the same likelihood as the outcome observed three times.
    weighted = bt.fit(3, bt.Outcomes.from_records([(0, 1, 3.0, 0.0), (1, 2, 0.0, 2.0)]), alpha=0.05)
    repeated = choix.opt_pairwise(3, [(0, 1)] * 3 + [(2, 1)] * 2, alpha=0.05, tol=1e-12)
    np.testing.assert_allclose(weighted.theta, repeated, atol=1e-6)


@pytest.mark.parametrize("alpha", [1e-4, 1e-2, 0.1])
def test_knockout_bracket_converges_and_ranks_the_champion_first(alpha: float) -> None:
    # 0 beats 1, 2 beats 3, final 0 beats 2: the unpenalised MLE would send θ_0 to infinity.
    data = bt.Outcomes.from_records([(0, 1, 1, 0), (2, 3, 1, 0), (0, 2, 1, 0)])
    fitted = bt.fit(4, data, alpha=alpha)
    assert np.all(np.isfinite(fitted.theta))
    assert int(np.argmax(fitted.theta)) == 0
    assert fitted.iterations < 100


def test_items_without_comparisons_keep_the_prior() -> None:
    alpha = 0.2
    prior = np.array([0.0, 0.0, 0.7, -0.3])
    fitted = bt.fit(4, bt.Outcomes.from_records([(0, 1, 2.0, 1.0)]), alpha=alpha, prior_mean=prior)
    np.testing.assert_allclose(fitted.theta[2:], prior[2:], atol=1e-9)
    np.testing.assert_allclose(fitted.stderr[2:], np.sqrt(1 / (2 * alpha)), atol=1e-9)
    assert fitted.stderr[0] < np.sqrt(1 / (2 * alpha))


def test_p_best_concentrates_on_a_dominant_item() -> None:
    records = [(1, k, 20.0, 0.0) for k in (0, 2, 3)]
    fitted = bt.fit(4, bt.Outcomes.from_records(records), alpha=0.1)
    p = fitted.p_best(np.random.default_rng(0))
    assert p.sum() == pytest.approx(1.0)
    assert p[1] > 0.95


def test_one_item_is_surely_the_best() -> None:
    fitted = bt.fit(1, bt.Outcomes.from_records([]), alpha=0.1)
    assert fitted.p_best(np.random.default_rng(0)).tolist() == [1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha must be > 0"),
        ({"records": [(0, 5, 1.0, 0.0)]}, "outside 0..2"),
        ({"records": [(1, 1, 1.0, 0.0)]}, "compared with itself"),
        ({"records": [(0, 1, -1.0, 0.0)]}, "non-negative"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(kwargs: dict, message: str) -> None:
    records = kwargs.pop("records", [(0, 1, 1.0, 0.0)])
    with pytest.raises(ValueError, match=message):
        bt.fit(3, bt.Outcomes.from_records(records), **kwargs)


@given(st.floats(-2.5, 2.5), st.sampled_from(["soft", "scaled", "binary"]))
def test_margin_weights_favour_the_sign_of_the_margin(margin: float, mode: bt.OutcomeMode) -> None:
    win, loss = bt.margin_weights(margin, mode)
    assert win >= 0 and loss >= 0
    if margin > 1e-9:
        assert win > loss
    elif margin < -1e-9:
        assert loss > win
    elif margin == 0:
        assert win == loss


def test_margin_weights_reject_out_of_scale_margins() -> None:
    with pytest.raises(ValueError, match="outside"):
        bt.margin_weights(3.0)


def test_a_comparison_counts_its_debiased_margin_once_per_order() -> None:
    forward = PairVerdict(ranking=1)  # i much better: +2.5
    backward = PairVerdict(ranking=5)  # j shown first, the second response (i) better: +1.5 for i
    both = bt.outcomes_from_comparisons([combine_orders(3, 7, forward, backward)], mode="scaled")
    assert (both.a.tolist(), both.b.tolist()) == ([3], [7])
    assert (both.win.tolist(), both.loss.tolist()) == ([4.0], [0.0])  # margin 2.0, two orders
    one = bt.outcomes_from_comparisons([combine_orders(3, 7, None, backward)], mode="binary")
    assert (one.win.tolist(), one.loss.tolist()) == ([1.0], [0.0])
