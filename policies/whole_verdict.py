"""Strengths from everything a pairwise call says: its ranking margin and both helpfulness scores, in one model.

The pairwise GenRM answers every call with three numbers: helpfulness 1–5 for the response shown first and for the
one shown second, and a ranking 1–6. Bradley–Terry on the ranking reads only the comparison; NVIDIA's recipe reads
only the scores. Here both are observations of the same strengths θ (in ranking-margin units). For every answered
call c showing f first and g second, with ranking margin r_c (3.5 − ranking, or its expectation under the judge's
belief with soft verdicts) and helpfulness e1_c, e2_c (expected under the digit beliefs when they were read):

    r_c  = θ_f − θ_g + h + ε_c,            ε_c ~ N(0, 1/w_r)
    e1_c = μ + θ_f + h/2 + ε1_c,           ε1_c ~ N(0, 1/w_s)
    e2_c = μ + θ_g − h/2 + ε2_c,           ε2_c ~ N(0, 1/w_s)

μ is the judge's mean helpfulness in this group and h its first-position advantage (shown first: +h in the margin,
split half and half over the two scores), both fitted with the strengths. One helpfulness point counts as one
ranking point: the scales the 235B GenRM's template defines for the two. The prior is θ ~ N(0, I/(2α)), and nearly
flat on μ and h (precision 2·``NUISANCE_ALPHA``). Everything is linear and Gaussian, so the posterior is exact:

    x = (θ, μ, h),   M = Aᵀ W A + P,   x̂ = M⁻¹ Aᵀ W y,   x ~ N(x̂, M⁻¹)

with one row of A per observation, W the weights w_r, w_s and P the prior precisions. The *form* is the weights:
w_s = 0 is the ranking alone, w_r = 0 the scores alone (NVIDIA's information, with h removed and the design's
graph used), both > 0 the whole verdict. bench/whole_verdict.py chooses it on real both-order verdicts and on the
simulated judges. A call's scores and ranking come from one reading of the pair, so their errors are not
independent; the weights are what the measurement chose, not noise variances to trust literally.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from policies.bradley_terry import BTFit
from policies.debias import Comparison
from policies.verdicts import PairVerdict, VerdictMode

#: prior precision / 2 of μ and h: nearly flat (sd ~7), so the data decide them
NUISANCE_ALPHA = 0.01


class JudgeTerms(BaseModel):
    """The judge's own terms the whole verdict fitted beside the strengths, in ranking points."""

    mean_score: float = Field(description="μ: the judge's mean helpfulness in this group (at the strengths' mean)")
    position_advantage: float = Field(
        description="h: what the judge adds to the ranking margin of the response it shows first (half of it to that "
        "response's score, half taken from the other's)"
    )
    position_advantage_stderr: float = Field(description="h's posterior standard deviation")


def judge_terms(fit: BTFit) -> JudgeTerms | None:
    """μ and h of a :func:`fit_whole_verdict` fit (θ's mean folded into μ, which only their sum identifies)."""
    if fit.beta is None or fit.beta_covariance is None:
        return None
    return JudgeTerms(
        mean_score=float(fit.beta[0] + fit.theta.mean()),
        position_advantage=float(fit.beta[1]),
        position_advantage_stderr=float(np.sqrt(fit.beta_covariance[1, 1])),
    )


class WholeVerdictForm(NamedTuple):
    """The form of the fit: the weights w_r and w_s, and which margins and scores a call gives (``verdicts``)."""

    w_margin: float = 1.0
    w_scores: float = 1.0
    verdicts: VerdictMode = "soft"


def _rows(
    n: int, comparisons: Sequence[Comparison], verdicts: VerdictMode, w_margin: float, w_scores: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(A, y, w): one row per observation over the unknowns (θ_0..θ_{n−1}, μ, h)."""
    rows: list[NDArray[np.float64]] = []
    values: list[float] = []
    weights: list[float] = []

    def add(coefficients: dict[int, float], value: float, weight: float) -> None:
        row = np.zeros(n + 2)
        for k, c in coefficients.items():
            row[k] += c
        rows.append(row)
        values.append(value)
        weights.append(weight)

    mu, h = n, n + 1
    for c in comparisons:
        calls: tuple[tuple[int, int, PairVerdict | None], ...] = ((c.i, c.j, c.forward), (c.j, c.i, c.backward))
        for first, second, verdict in calls:
            if verdict is None:
                continue
            margin = verdict.margin_as(verdicts)
            if w_margin > 0 and margin is not None:
                add({first: 1.0, second: -1.0, h: 1.0}, margin, w_margin)
            if w_scores > 0:
                e1, e2 = verdict.expected_scores
                if e1 is not None:
                    add({first: 1.0, mu: 1.0, h: 0.5}, e1, w_scores)
                if e2 is not None:
                    add({second: 1.0, mu: 1.0, h: -0.5}, e2, w_scores)
    if not rows:
        return np.zeros((0, n + 2)), np.zeros(0), np.zeros(0)
    return np.array(rows), np.array(values), np.array(weights)


def fit_whole_verdict(
    n: int,
    comparisons: Sequence[Comparison],
    *,
    w_margin: float = 1.0,
    w_scores: float = 1.0,
    alpha: float = 0.1,
    verdicts: VerdictMode = "soft",
    prior_mean: NDArray[np.float64] | None = None,
) -> BTFit:
    """The posterior of θ (see the module docstring) as a :class:`BTFit`: ``theta`` and ``covariance`` are θ's,
    ``beta`` is (μ, h) and ``beta_covariance`` theirs. With no observation it is the prior. ``prior_mean``: θ's
    prior mean m (θ ~ N(m, I/(2α)); e.g. from principle rewards), 0 when None: x̂ = M⁻¹ (Aᵀ W y + P m)."""
    if w_margin < 0 or w_scores < 0 or w_margin + w_scores <= 0:
        raise ValueError("w_margin and w_scores must be >= 0, and one of them > 0")
    if alpha <= 0:
        raise ValueError("alpha must be > 0")
    a, y, w = _rows(n, comparisons, verdicts, w_margin, w_scores)
    prior = np.full(n + 2, 2.0 * NUISANCE_ALPHA)
    prior[:n] = 2.0 * alpha
    precision = a.T @ (w[:, None] * a) + np.diag(prior)
    covariance = np.linalg.inv(precision)
    covariance = (covariance + covariance.T) / 2  # exact symmetry for the Cholesky draws of p_best
    shift = np.zeros(n + 2)
    if prior_mean is not None:
        shift[:n] = prior[:n] * np.asarray(prior_mean, dtype=np.float64)
    x = covariance @ (a.T @ (w * y) + shift)
    return BTFit(
        theta=x[:n],
        covariance=covariance[:n, :n],
        iterations=1,
        beta=x[n:],
        beta_covariance=covariance[n:, n:],
    )
