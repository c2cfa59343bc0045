"""The Bayes oracle behind bench/rank_bound.py: its posterior, its expected ranks, and that it reads the very
perceptions the verdicts it competes with were quantised from."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.rank_bound import PerceptionsSeen, expected_ranks, posterior, trials
from bench.simulated_judges import VARIANTS, JudgeModel, ranking_from_margin, score_from_perception


@given(
    rho=st.floats(0.0, 0.9),
    s=st.floats(0.2, 1.5),
    b=st.floats(-1.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_the_posterior_is_the_linear_gaussian_one(rho: float, s: float, b: float, seed: int) -> None:
    """Against the textbook form on the stacked system: y = A q + noise, noise ~ N(0, blockdiag(C)), q ~ N(0, I):
    cov = (I + Aᵀ Σ⁻¹ A)⁻¹, mean = cov Aᵀ Σ⁻¹ y."""
    rng = np.random.default_rng(seed)
    n = 5
    model = JudgeModel(strength=s, bias=b, pair_noise=rho)
    pairs = [(0, 1), (2, 1), (3, 4), (4, 0)]
    seen = [(i, j, *rng.normal(size=2)) for i, j in pairs]
    mean, cov = posterior(n, seen, model)
    var = 0.5 * (1 - rho)
    block = np.array([[rho / 4 + var, -rho / 4], [-rho / 4, rho / 4 + var]])
    sigma = np.kron(np.eye(len(seen)), block)
    a = np.zeros((2 * len(seen), n))
    y = np.zeros(2 * len(seen))
    for k, (i, j, p1, p2) in enumerate(seen):
        a[2 * k, i] = a[2 * k + 1, j] = s
        y[2 * k], y[2 * k + 1] = p1 - b / 2, p2 + b / 2
    want_cov = np.linalg.inv(np.eye(n) + a.T @ np.linalg.solve(sigma, a))
    np.testing.assert_allclose(cov, want_cov, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(mean, want_cov @ a.T @ np.linalg.solve(sigma, y), rtol=1e-6, atol=1e-9)


def test_a_pair_judged_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="judged twice"):
        posterior(3, [(0, 1, 0.1, 0.2), (1, 0, 0.3, 0.4)], VARIANTS["base"])


def test_expected_ranks_are_exact() -> None:
    """Σ_j P(q_k > q_j) against a million draws."""
    rng = np.random.default_rng(3)
    root = rng.normal(size=(4, 4))
    cov = root @ root.T / 4 + 0.1 * np.eye(4)
    mean = rng.normal(size=4)
    draws = rng.multivariate_normal(mean, cov, size=1_000_000)
    sampled = np.argsort(np.argsort(draws, axis=1), axis=1).mean(axis=0)
    np.testing.assert_allclose(expected_ranks(mean, cov), sampled, atol=0.005)
    assert expected_ranks(mean, cov).sum() == pytest.approx(4 * 3 / 2)


def test_the_oracle_reads_the_perceptions_each_answered_verdict_was_quantised_from() -> None:
    """Every kept perception pair, quantised, is exactly the verdict that call returned; unreadable calls are not
    kept."""
    model = VARIANTS["parse_fail_10"]
    quality = np.random.default_rng(0).normal(size=8)
    judges = PerceptionsSeen(quality, model, np.random.default_rng(1))

    async def calls() -> list:
        return [await judges.pairwise(k, (k + 1) % 8) for k in range(8) for _ in range(10)]

    results = asyncio.run(calls())
    answered = [r.verdict for r in results if r.ok]
    assert len(judges.seen) == len(answered) < len(results)
    for (_, _, p1, p2), verdict in zip(judges.seen, answered, strict=True):
        assert (verdict.score_1, verdict.score_2) == (score_from_perception(p1), score_from_perception(p2))
        assert verdict.ranking == ranking_from_margin(p1 - p2)


def test_without_noise_the_oracle_orders_the_group_exactly() -> None:
    exact = JudgeModel(strength=1.0, bias=0.5, pair_noise=0.0, noise="none")
    rho = asyncio.run(trials(8, 5, 0, exact))
    assert np.all(rho["oracle"] == 1.0) and np.all(rho["nvidia"] < 1.0)  # the quantised scores tie
