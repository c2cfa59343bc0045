"""The first-position advantage fitted with the strengths (policies.position_bias): per-call observations, the fit
with its prior, the judge's pool, and what it buys a design in one order on a biased simulated judge."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.simulated_judges import JudgeModel, SimulatedJudges
from policies import bradley_terry as bt
from policies.debias import combine_orders
from policies.position_bias import PositionBiasPool, fit_with_position, group_estimate, outcomes_per_call
from policies.selection import SelectionConfig, select_best
from policies.verdicts import PairVerdict


def verdict(ranking: int) -> PairVerdict:
    return PairVerdict(score_1=3, score_2=3, ranking=ranking)


def test_every_call_is_an_observation_with_the_first_shown_as_a() -> None:
    both = combine_orders(0, 1, verdict(2), verdict(2), verdicts="sampled")  # each order: the first is better
    one = combine_orders(1, 2, None, verdict(6), verdicts="sampled")  # only (2, 1): 1 much better
    obs, home = outcomes_per_call([both, one], mode="binary", verdicts="sampled")
    assert list(zip(obs.a, obs.b, obs.win, obs.loss, strict=True)) == [(0, 1, 1, 0), (1, 0, 1, 0), (2, 1, 0, 1)]
    assert home.shape == (3, 1) and np.all(home == 1)


def test_a_judge_that_always_prefers_the_first_shown_has_a_large_advantage_and_equal_strengths() -> None:
    comparisons = [combine_orders(i, j, verdict(2), verdict(2), verdicts="sampled") for i in range(4) for j in range(i)]
    fitted, bias = fit_with_position(4, comparisons, alpha=0.1, prior_mean=0.0, prior_alpha=0.02)
    assert bias.estimate > 1.0 and bias.calls == 12
    assert np.ptp(fitted.theta) == pytest.approx(0.0, abs=1e-6)


def test_without_evidence_the_advantage_is_its_prior() -> None:
    # a circular design in one order: every candidate shown first once and second once, all verdicts "first"
    comparisons = [combine_orders(k, (k + 1) % 4, verdict(3), None, verdicts="sampled") for k in range(4)]
    _, strong = fit_with_position(4, comparisons, alpha=0.1, prior_mean=0.8, prior_alpha=1000.0)
    assert strong.estimate == pytest.approx(0.8, abs=0.01) and strong.prior_sd == pytest.approx(0.0224, abs=1e-3)


def test_the_prior_mean_centres_the_covariate_ridge() -> None:
    empty = bt.Outcomes.from_records([])
    fitted = bt.fit(2, empty, covariate_diffs=np.ones((0, 1)), covariate_prior_mean=[0.7])
    assert fitted.beta is not None and fitted.beta[0] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="covariate_prior_mean"):
        bt.fit(2, empty, covariate_diffs=np.ones((0, 1)), covariate_prior_mean=[0.7, 0.1])


@settings(max_examples=40, deadline=None)
@given(
    groups=st.lists(st.tuples(st.floats(-3, 3), st.floats(0.01, 4)), min_size=1, max_size=12),
    forget=st.floats(0.5, 1.0),
)
def test_the_pool_is_the_discounted_precision_weighted_mean(groups: list[tuple[float, float]], forget: float) -> None:
    pool = PositionBiasPool(forget=forget, max_precision=1e9)
    for estimate, variance in groups:
        pool.add(estimate, variance)
    ages = range(len(groups) - 1, -1, -1)
    weights = [forget**age / v for age, (_, v) in zip(ages, groups, strict=True)]
    expected = sum(w * e for w, (e, _) in zip(weights, groups, strict=True)) / sum(weights)
    assert pool.mean == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert pool.prior_alpha(0.0) == pytest.approx(0.5 * sum(weights))
    assert pool.groups == len(groups)


def test_the_pools_precision_is_capped_and_floored() -> None:
    pool = PositionBiasPool(max_precision=10.0, start=0.3)
    assert pool.mean == 0.3 and pool.prior_alpha(0.5) == 0.5  # nothing seen: the configured prior
    for _ in range(50):
        pool.add(1.0, 0.1)
    assert pool.prior_alpha(0.5) == 5.0
    pool.add(float("nan"), 1.0)  # ignored
    assert pool.groups == 50


def test_fitting_the_advantage_cannot_be_combined_with_style_control_yet() -> None:
    with pytest.raises(ValueError, match="fit_position_bias and style_control"):
        SelectionConfig(fit_position_bias=True, style_control=True)


def test_a_one_order_design_on_a_biased_judge_ranks_better_with_the_pooled_advantage() -> None:
    """Swiss in one order on a judge with a strong first-position bias (b = 1.5), the same 80 groups three ways:
    plain, with the advantage fitted per group, and with it pooled over the groups before. Paired: the pooled fit
    is better on average by more than twice the standard error of the difference, and its prior has learnt b."""
    model = JudgeModel(bias=1.5)
    pool = PositionBiasPool()

    async def rho(trial: int, fit: bool, pooled: bool) -> float:
        quality = np.random.default_rng([3, trial]).normal(size=8)
        judges = SimulatedJudges(quality, model, np.random.default_rng([3, trial, 1]))
        extra = {"position_bias_prior": pool.mean, "position_bias_alpha": pool.prior_alpha(0.5)} if pooled else {}
        config = SelectionConfig(
            strategy="swiss", swap=False, use_principle=False, fit_position_bias=fit, strengths="bradley_terry", **extra
        )
        result = await select_best(8, judges.pairwise, None, config)
        if pooled:
            assert result.position_bias is not None and result.position_bias.group_estimate is not None
            assert result.position_bias.group_stderr is not None
            pool.add(result.position_bias.group_estimate, result.position_bias.group_stderr**2)
        scores = [c.score for c in sorted(result.candidates, key=lambda c: c.index)]
        return float(np.corrcoef(np.argsort(np.argsort(scores)), np.argsort(np.argsort(quality)))[0, 1])

    plain = np.array([asyncio.run(rho(t, False, False)) for t in range(80)])
    pooled = np.array([asyncio.run(rho(t, True, True)) for t in range(80)])
    gain = pooled - plain
    assert gain.mean() > 2 * gain.std(ddof=1) / np.sqrt(len(gain)), (gain.mean(), gain.std())
    assert pool.mean > 1.0  # log-odds; the judge's margin bias of 1.5 shows as a large advantage


def test_a_group_without_verdicts_says_nothing_about_the_advantage() -> None:
    assert group_estimate(3, [combine_orders(0, 1, None, None)], alpha=0.1) is None
