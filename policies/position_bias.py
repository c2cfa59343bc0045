"""A pairwise judge's first-position advantage, fitted with the strengths ("home advantage") and pooled per judge.

Model: each call shows a first and a second response and its verdict is one observation,

    P(first beats second) = σ(θ_first − θ_second + h),

with h the judge's advantage for whatever it is shown first, in the strengths' log-odds units. Both orders of a
pair are two observations, and their disagreement is what identifies h; a design in one order identifies it only
through the strengths of candidates shown first more or less often than second. (θ, h) are the MAP estimate of
:func:`policies.bradley_terry.fit` with one per-observation covariate, constant 1, under the prior

    h ~ N(h₀, 1 / (2γ)),

so one-order designs are debiased by what the judge is known to do, and a group that does identify h moves it.

Pooling (:class:`PositionBiasPool`). One group's N one-order calls barely identify h, but the bias belongs to the
judge, not to the group: the pool keeps, per judge, the precision-weighted mean of the groups' estimates, each
weighted by its Laplace precision 1/v_g, with older groups discounted by ``forget`` per group so that a changed
judge shows through:

    h₀ = Σ_g λ^{age_g} · ĥ_g / v_g  /  Σ_g λ^{age_g} / v_g,      2γ = min(Σ_g λ^{age_g} / v_g,  max_precision).

``max_precision`` keeps the pool from drowning a group's own evidence. A group's estimate ĥ_g is its own
likelihood's (fitted under a flat-ish prior, ``group_alpha``), so no group's data counts twice in the pool.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from policies import bradley_terry as bt
from policies.debias import Comparison
from policies.verdicts import VerdictMode

#: the per-group fit's ridge on h when it only estimates it for the pool: prior sd 5 log-odds, nearly flat
GROUP_ALPHA = 0.02


class PositionBias(BaseModel):
    """The first-position advantage a selection was debiased with."""

    estimate: float = Field(description="h: log-odds the judge adds for the response shown first (MAP, this group)")
    stderr: float = Field(description="its Laplace standard error")
    prior_mean: float = Field(description="h₀: the judge's pooled estimate before this group")
    prior_sd: float = Field(description="the prior's standard deviation 1/sqrt(2γ)")
    calls: int = Field(description="verdicts the fit used, one per call")
    group_estimate: float | None = Field(
        default=None, description="this group's evidence alone (a nearly flat prior): what the judge's pool learns"
    )
    group_stderr: float | None = None


def outcomes_per_call(
    comparisons: Sequence[Comparison], mode: bt.OutcomeMode = "scaled", verdicts: VerdictMode = "soft"
) -> tuple[bt.Outcomes, np.ndarray]:
    """One observation per judged call, the first-shown response as ``a``, and the covariate column (all ones)."""
    records = []
    for c in comparisons:
        for first, second, verdict in ((c.i, c.j, c.forward), (c.j, c.i, c.backward)):
            margin = verdict.margin_as(verdicts) if verdict is not None else None
            if margin is not None:
                win, loss = bt.margin_weights(margin, mode)
                records.append((first, second, win, loss))
    return bt.Outcomes.from_records(records), np.ones((len(records), 1))


def fit_with_position(
    n: int,
    comparisons: Sequence[Comparison],
    *,
    alpha: float,
    prior_mean: float,
    prior_alpha: float,
    mode: bt.OutcomeMode = "scaled",
    verdicts: VerdictMode = "soft",
) -> tuple[bt.BTFit, PositionBias]:
    """Strengths and h fitted together (the module docstring's MAP), with h's prior N(prior_mean, 1/(2·prior_alpha))."""
    obs, home = outcomes_per_call(comparisons, mode, verdicts)
    fitted = bt.fit(
        n, obs, alpha=alpha, covariate_diffs=home, covariate_alpha=prior_alpha, covariate_prior_mean=[prior_mean]
    )
    assert fitted.beta is not None and fitted.beta_covariance is not None
    bias = PositionBias(
        estimate=float(fitted.beta[0]),
        stderr=float(np.sqrt(fitted.beta_covariance[0, 0])),
        prior_mean=prior_mean,
        prior_sd=float(1.0 / np.sqrt(2.0 * prior_alpha)),
        calls=len(obs.a),
    )
    return fitted, bias


def group_estimate(
    n: int,
    comparisons: Sequence[Comparison],
    *,
    alpha: float,
    mode: bt.OutcomeMode = "scaled",
    verdicts: VerdictMode = "soft",
) -> tuple[float, float] | None:
    """(ĥ_g, v_g): this group's own evidence about h, for the pool; None without a verdict."""
    if not any(c.margin is not None for c in comparisons):
        return None
    _, bias = fit_with_position(
        n, comparisons, alpha=alpha, prior_mean=0.0, prior_alpha=GROUP_ALPHA, mode=mode, verdicts=verdicts
    )
    return bias.estimate, bias.stderr**2


class PositionBiasPool:
    """One judge's pooled h₀ and prior precision (the module docstring), updated group by group."""

    def __init__(self, forget: float = 0.99, max_precision: float = 200.0, start: float = 0.0) -> None:
        if not 0.0 < forget <= 1.0:
            raise ValueError("forget must be in (0, 1]")
        self.forget, self.max_precision = forget, max_precision
        self._weighted_sum = 0.0  # Σ λ^age · ĥ / v
        self._precision = 0.0  # Σ λ^age / v
        self._start = start
        self.groups = 0

    @property
    def mean(self) -> float:
        return self._weighted_sum / self._precision if self._precision > 0 else self._start

    def prior_alpha(self, floor: float) -> float:
        """γ for the next group: half the pooled precision, capped, and never below ``floor`` (the configured
        prior's own, which holds before any group was seen)."""
        return max(floor, 0.5 * min(self._precision, self.max_precision))

    def add(self, estimate: float, variance: float) -> None:
        if not np.isfinite(estimate) or not variance > 0:
            return
        self._weighted_sum = self.forget * self._weighted_sum + estimate / variance
        self._precision = self.forget * self._precision + 1.0 / variance
        self.groups += 1

    def learn(self, bias: PositionBias | None) -> None:
        """Add a judged group's own evidence (:attr:`PositionBias.group_estimate`), when it has any."""
        if bias is not None and bias.group_estimate is not None and bias.group_stderr is not None:
            self.add(bias.group_estimate, bias.group_stderr**2)
