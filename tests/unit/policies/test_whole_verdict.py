"""The whole-verdict model (policies.whole_verdict): its math against a direct solve, what each form reads, and the
position and level terms it fits; and the balanced orders of one-order designs."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.debias import Comparison, combine_orders
from policies.selection import SelectionConfig, _orient, select_best
from policies.verdicts import PairVerdict, PairwiseResult
from policies.whole_verdict import NUISANCE_ALPHA, fit_whole_verdict


def _verdict(theta: np.ndarray, first: int, second: int, h: float = 0.0, mu: float = 3.0) -> PairVerdict:
    """What a noiseless judge of the model says (scores and margin clipped to their scales)."""
    margin = theta[first] - theta[second] + h
    return PairVerdict(
        score_1=float(np.clip(mu + theta[first] + h / 2, 1, 5)),
        score_2=float(np.clip(mu + theta[second] - h / 2, 1, 5)),
        ranking=float(np.clip(3.5 - margin, 1, 6)),
    )


def _both_orders(theta: np.ndarray, pairs: list[tuple[int, int]], h: float = 0.0) -> list[Comparison]:
    return [combine_orders(i, j, _verdict(theta, i, j, h), _verdict(theta, j, i, h)) for i, j in pairs]


ROUND_ROBIN_5 = [(i, j) for i in range(5) for j in range(i + 1, 5)]


def test_a_noiseless_judge_gives_back_its_strengths_level_and_position_advantage() -> None:
    theta = np.array([1.0, -0.5, 0.25, 0.0, -0.75])
    fit = fit_whole_verdict(5, _both_orders(theta, ROUND_ROBIN_5, h=0.6), alpha=1e-6, verdicts="sampled")
    assert np.allclose(fit.theta, theta - theta.mean() + fit.theta.mean(), atol=1e-3)
    assert fit.beta is not None
    assert fit.beta[1] == pytest.approx(0.6, abs=1e-3)  # h
    assert fit.beta[0] + fit.theta.mean() == pytest.approx(3.0 + theta.mean(), abs=1e-3)  # μ (θ's mean is free)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 6),
    calls=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(1, 5), st.integers(1, 5), st.integers(1, 6)),
        min_size=0,
        max_size=12,
    ),
    w_r=st.sampled_from([0.0, 0.25, 1.0, 2.0]),
    w_s=st.sampled_from([0.0, 0.5, 1.0]),
    alpha=st.sampled_from([0.05, 0.1, 1.0]),
    with_prior=st.booleans(),
)
def test_the_fit_is_the_weighted_ridge_solution_the_docstring_states(
    n: int, calls: list[tuple[int, int, int, int, int]], w_r: float, w_s: float, alpha: float, with_prior: bool
) -> None:
    if w_r + w_s == 0:
        return
    comparisons, rows, ys = [], [], []
    for a, b, s1, s2, ranking in calls:
        i, j = a % n, b % n
        if i == j:
            continue
        comparisons.append(combine_orders(i, j, PairVerdict(score_1=s1, score_2=s2, ranking=ranking), None))
        for coefficients, y, w in (
            ({i: 1.0, j: -1.0, n + 1: 1.0}, 3.5 - ranking, w_r),
            ({i: 1.0, n: 1.0, n + 1: 0.5}, s1, w_s),
            ({j: 1.0, n: 1.0, n + 1: -0.5}, s2, w_s),
        ):
            row = np.zeros(n + 2)
            for k, c in coefficients.items():
                row[k] += c
            rows.append(row * np.sqrt(w))
            ys.append(y * np.sqrt(w))
    # The MAP estimate as an augmented least-squares problem: the prior's rows are sqrt(2α)·I (θ) and
    # sqrt(2·NUISANCE_ALPHA)·I (μ, h) against the prior means (m for θ, zeros for μ and h).
    mean = np.linspace(-1.0, 1.5, n) if with_prior else np.zeros(n)
    prior = np.sqrt(np.diag([2 * alpha] * n + [2 * NUISANCE_ALPHA] * 2))
    a_matrix = np.vstack([*rows, prior]) if rows else prior
    prior_values = prior @ np.concatenate([mean, np.zeros(2)])
    y_vector = np.concatenate([np.array(ys), prior_values]) if rows else prior_values
    expected = np.linalg.lstsq(a_matrix, y_vector, rcond=None)[0]
    fit = fit_whole_verdict(
        n,
        comparisons,
        w_margin=w_r,
        w_scores=w_s,
        alpha=alpha,
        verdicts="sampled",
        prior_mean=mean if with_prior else None,
    )
    assert np.allclose(fit.theta, expected[:n], atol=1e-8)
    assert fit.beta is not None and np.allclose(fit.beta, expected[n:], atol=1e-8)
    assert np.allclose(fit.covariance, fit.covariance.T) and np.all(np.linalg.eigvalsh(fit.covariance) > 0)


def test_each_form_reads_only_its_part_of_the_verdict() -> None:
    calm = PairVerdict(score_1=4, score_2=2, ranking=2)
    other_ranking = PairVerdict(score_1=4, score_2=2, ranking=5)
    other_scores = PairVerdict(score_1=1, score_2=5, ranking=2)

    def theta(verdict: PairVerdict, w_r: float, w_s: float) -> np.ndarray:
        return fit_whole_verdict(2, [combine_orders(0, 1, verdict, None)], w_margin=w_r, w_scores=w_s).theta

    assert np.allclose(theta(calm, 0, 1), theta(other_ranking, 0, 1))  # scores only: the ranking is not read
    assert np.allclose(theta(calm, 1, 0), theta(other_scores, 1, 0))  # ranking only: the scores are not read
    assert not np.allclose(theta(calm, 1, 1), theta(other_ranking, 1, 1))


def test_without_a_verdict_the_fit_is_the_prior() -> None:
    fit = fit_whole_verdict(3, [combine_orders(0, 1, None, None)], alpha=0.25)
    assert np.allclose(fit.theta, 0) and np.allclose(fit.covariance, np.eye(3) / 0.5)


@pytest.mark.parametrize("kwargs", [{"w_margin": 0, "w_scores": 0}, {"w_margin": -1}, {"alpha": 0}])
def test_weights_and_prior_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        fit_whole_verdict(2, [], **kwargs)


@pytest.mark.parametrize("other", [{"style_control": True}, {"fit_position_bias": True}])
def test_whole_verdict_refuses_the_fits_it_replaces(other: dict[str, bool]) -> None:
    with pytest.raises(ValueError, match="whole_verdict"):
        SelectionConfig(strengths="whole_verdict", **other)


def test_a_selection_with_the_whole_verdict_ranks_a_biased_noiseless_judge_right() -> None:
    """One order per pair and a strong first-position advantage: the fitted h absorbs it."""
    theta = np.array([0.9, -0.3, 0.4, -1.0, 0.1, 0.6])

    async def judge(first: int, second: int) -> PairwiseResult:
        return PairwiseResult(verdict=_verdict(theta, first, second, h=1.2))

    config = SelectionConfig(strategy="round_robin", swap=False, strengths="whole_verdict", verdicts="sampled")
    result = asyncio.run(select_best(6, judge, None, config))
    assert result.ranking == list(np.argsort(-theta))
    terms = result.judge_terms  # the answer reports the advantage it removed, and the judge's level
    assert terms is not None and terms.position_advantage == pytest.approx(1.2, abs=0.05)
    assert terms.mean_score == pytest.approx(3.0 + theta.mean(), abs=0.05)
    bradley_terry = asyncio.run(select_best(6, judge, None, config.model_copy(update={"strengths": "bradley_terry"})))
    assert bradley_terry.judge_terms is None


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 16), seed=st.integers(0, 1000))
def test_one_order_on_a_circle_shows_every_candidate_first_exactly_once(n: int, seed: int) -> None:
    pairs = [(k, (k + 1) % n) for k in range(n)]
    oriented = _orient(pairs, [], np.random.default_rng(seed))
    assert sorted(i for i, _ in oriented) == list(range(n)) and sorted(j for _, j in oriented) == list(range(n))
    assert {frozenset(p) for p in oriented} == {frozenset(p) for p in pairs}


def test_orders_balance_against_the_calls_already_made() -> None:
    earlier = [combine_orders(0, 1, PairVerdict(ranking=2), None), combine_orders(0, 2, PairVerdict(ranking=2), None)]
    # 0 was shown first twice: it goes second now, whatever the coin says
    for seed in range(20):
        assert _orient([(0, 3)], earlier, np.random.default_rng(seed)) == [(3, 0)]


@pytest.mark.parametrize(
    ("budget", "strategy", "swap", "rounds"),
    [
        (None, "swiss", False, 4),
        (8, "circular", False, None),
        (12, "circular", False, None),
        (16, "swiss", False, 4),
        (24, "swiss", True, 3),
        (32, "swiss", True, 4),
    ],
)
def test_by_budget_picks_the_design_measured_best_at_that_budget(
    budget: int | None, strategy: str, swap: bool, rounds: int | None
) -> None:
    chosen = SelectionConfig(strategy="by_budget", max_pairwise_calls=budget).for_group(8)
    assert (chosen.strategy, chosen.swap, chosen.strengths) == (strategy, swap, "whole_verdict")
    assert chosen.max_pairwise_calls == (budget or 16)
    if rounds is not None:
        assert chosen.swiss_rounds == rounds


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 12), per_candidate=st.sampled_from([1, 2, 3, 4]), seed=st.integers(0, 100))
def test_by_budget_spends_at_most_its_budget_and_says_what_it_ran(n: int, per_candidate: int, seed: int) -> None:
    theta = np.random.default_rng(seed).normal(size=n)

    async def judge(first: int, second: int) -> PairwiseResult:
        return PairwiseResult(verdict=_verdict(theta, first, second, h=0.3))

    config = SelectionConfig(strategy="by_budget", max_pairwise_calls=per_candidate * n, seed=seed)
    result = asyncio.run(select_best(n, judge, None, config))
    assert result.pairwise_calls <= per_candidate * n
    assert result.design is not None and "whole verdict" in result.design
    assert ("both orders" in result.design) == (per_candidate >= 3)


def test_by_budget_names_no_design_before_it_knows_the_group() -> None:
    with pytest.raises(ValueError, match="for_group"):
        SelectionConfig(strategy="by_budget").make_design()


def test_the_adaptive_design_plans_on_the_whole_verdicts_posterior() -> None:
    """With ``strengths: whole_verdict`` the adaptive design's P(best) comes from the whole-verdict fit of the
    verdicts so far (with the state's prior mean), and its pick on a biased noiseless judge in one order is right."""
    from policies.pairings import Adaptive, DesignState

    theta = np.array([0.9, -0.3, 0.4, -1.0, 0.1, 0.6])
    config = SelectionConfig(strategy="adaptive", swap=False, strengths="whole_verdict", verdicts="sampled")
    design = config.make_design()
    assert isinstance(design, Adaptive) and design.whole_verdict == config.whole_verdict_form()
    comparisons = [combine_orders(i, j, _verdict(theta, i, j, h=1.2), None) for i, j in ROUND_ROBIN_5]
    prior = np.linspace(-0.5, 0.5, 6)
    state = DesignState(n=6, comparisons=comparisons, rng=np.random.default_rng(0), tiebreak=np.arange(6), prior=prior)
    want = fit_whole_verdict(6, comparisons, w_margin=0.25, w_scores=1.0, verdicts="sampled", prior_mean=prior)
    assert np.allclose(design._fit(state).theta, want.theta)
    assert SelectionConfig(strategy="adaptive").make_design().whole_verdict is not None  # type: ignore[union-attr]
    bradley_terry = SelectionConfig(strategy="adaptive", strengths="bradley_terry").make_design()
    assert bradley_terry.whole_verdict is None  # type: ignore[union-attr]
    assert SelectionConfig(strategy="adaptive", style_control=True).make_design().whole_verdict is None  # type: ignore[union-attr]

    async def judge(first: int, second: int) -> PairwiseResult:
        return PairwiseResult(verdict=_verdict(theta, first, second, h=1.2))

    result = asyncio.run(select_best(6, judge, None, config))
    assert result.best == int(np.argmax(theta))
