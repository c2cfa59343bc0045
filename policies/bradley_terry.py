"""Bradley–Terry strengths from weighted, possibly sparse pairwise outcomes.

Model: P(i beats j) = σ(θ_i − θ_j) with σ the logistic function. Each observation k compares items a_k and b_k
and carries non-negative weights w⁺_k ("a beat b") and w⁻_k ("b beat a"); fractional weights express graded or
soft outcomes. The fit is the MAP estimate under an isotropic Gaussian prior centred on μ:

    θ̂ = argmin  Σ_k [ w⁺_k · log(1 + exp(θ_b − θ_a)) + w⁻_k · log(1 + exp(θ_a − θ_b)) ]  +  α · ‖θ − μ‖²

which is choix's ``opt_pairwise`` objective when μ = 0 and every weight is a count. With α > 0 the objective is
strictly convex, so the estimate exists even when the comparison graph is disconnected or an item never lost
(knockout and circular designs always leave such an item; the unpenalised MLE then diverges). Newton's method
converges in a handful of steps because the Hessian, a weighted graph Laplacian plus 2α·I, is positive definite.

The Laplace approximation turns the fit into a confidence: θ ~ N(θ̂, H⁻¹) with H the Hessian at θ̂.

Covariates (style control, :mod:`policies.style`): with a feature vector z_i per item the model becomes
P(i beats j) = σ(θ_i − θ_j + βᵀ(z_i − z_j)), and (θ, β) are fitted jointly by the same Newton iteration with a
ridge γ·‖β‖² of their own. θ then measures what the judge preferred beyond the features, β what the features
bought. Without covariates every step is the one above, operation for operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from policies.debias import Comparison
from policies.verdicts import MAX_MARGIN

OutcomeMode = Literal["soft", "scaled", "binary"]


@dataclass(frozen=True)
class Outcomes:
    """Pairwise outcomes as arrays: ``a[k]`` vs ``b[k]`` with weights ``win[k]`` (a won) and ``loss[k]``."""

    a: NDArray[np.int64]
    b: NDArray[np.int64]
    win: NDArray[np.float64]
    loss: NDArray[np.float64]

    @classmethod
    def from_records(cls, records: Iterable[tuple[int, int, float, float]]) -> Outcomes:
        rows = list(records)
        if not rows:
            empty_i = np.zeros(0, dtype=np.int64)
            empty_f = np.zeros(0, dtype=np.float64)
            return cls(empty_i, empty_i, empty_f, empty_f)
        a, b, win, loss = zip(*rows, strict=True)
        return cls(
            np.asarray(a, dtype=np.int64),
            np.asarray(b, dtype=np.int64),
            np.asarray(win, dtype=np.float64),
            np.asarray(loss, dtype=np.float64),
        )


def margin_weights(margin: float, mode: OutcomeMode = "soft") -> tuple[float, float]:
    """Split one call's signed margin m ∈ [−2.5, 2.5] (positive: the first item is better) into (win, loss).

    - ``soft``: a soft label y = (m + 2.5) / 5, giving (y, 1 − y): ranking 1 is a full win, ranking 3 is 0.6.
    - ``scaled``: the winner gets weight |m| (scaled Bradley–Terry: "much better" counts five times "slightly").
    - ``binary``: the winner gets 1, whatever the strength.

    A margin of exactly 0 (possible only when a margin comes from tied helpfulness scores) is half a win each.
    """
    if not -MAX_MARGIN <= margin <= MAX_MARGIN:
        raise ValueError(f"margin {margin} is outside [-{MAX_MARGIN}, {MAX_MARGIN}]")
    if mode == "soft":
        y = (margin + MAX_MARGIN) / (2 * MAX_MARGIN)
        return y, 1.0 - y
    if margin == 0:
        return 0.5, 0.5
    weight = abs(margin) if mode == "scaled" else 1.0
    return (weight, 0.0) if margin > 0 else (0.0, weight)


def outcomes_from_comparisons(comparisons: Sequence[Comparison], mode: OutcomeMode = "soft") -> Outcomes:
    """One observation per comparison, from its debiased margin, counted once per judged order.

    Mapping the averaged margin (rather than each call's) keeps the exact cancellation of a constant position
    bias for every mode, including the non-linear ``scaled`` and ``binary`` ones.
    """
    records = []
    for c in comparisons:
        if c.margin is None:
            continue
        win, loss = margin_weights(c.margin, mode)
        weight = max(c.orders, 1)
        records.append((c.i, c.j, weight * win, weight * loss))
    return Outcomes.from_records(records)


@dataclass(frozen=True)
class BTFit:
    """A fitted model: strengths θ̂ and their Laplace covariance H⁻¹ (marginal over β when covariates were fitted)."""

    theta: NDArray[np.float64]
    covariance: NDArray[np.float64]
    iterations: int
    #: covariate effects β̂ and their Laplace covariance; None without covariates
    beta: NDArray[np.float64] | None = None
    beta_covariance: NDArray[np.float64] | None = None

    @property
    def stderr(self) -> NDArray[np.float64]:
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    def p_best(self, rng: np.random.Generator, samples: int = 2000) -> NDArray[np.float64]:
        """P(item is the strongest) under θ ~ N(θ̂, H⁻¹), by Monte Carlo with the given generator."""
        n = len(self.theta)
        if n == 1:
            return np.ones(1)
        draws = rng.multivariate_normal(self.theta, self.covariance, size=samples, method="cholesky")
        return np.bincount(np.argmax(draws, axis=1), minlength=n) / samples


def _objective_parts(
    params: NDArray[np.float64],
    obs: Outcomes,
    alpha: float,
    mu: NDArray[np.float64],
    dz: NDArray[np.float64] | None = None,
    gamma: float = 0.0,
    beta_mean: NDArray[np.float64] | None = None,
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Value, gradient and Hessian at ``params`` = θ (n entries) followed by β (one per column of ``dz``).

    ``dz[k]`` is z_a − z_b of observation k; None (no covariates) leaves ``params`` = θ. β's ridge is centred on
    ``beta_mean`` (zero when None).
    """
    n = len(mu)
    theta = params[:n]
    diff = theta[obs.a] - theta[obs.b]
    if dz is not None:
        beta = params[n:]
        diff = diff + dz @ beta
    value = float(
        np.sum(obs.win * np.logaddexp(0.0, -diff) + obs.loss * np.logaddexp(0.0, diff))
        + alpha * np.sum((theta - mu) ** 2)
    )
    p = expit(diff)  # P(a beats b)
    # d/dθ_a of the data term: −w⁺(1 − p) + w⁻ p; the opposite for θ_b.
    g_pair = -obs.win * (1.0 - p) + obs.loss * p
    grad = 2.0 * alpha * (theta - mu)
    np.add.at(grad, obs.a, g_pair)
    np.add.at(grad, obs.b, -g_pair)
    curvature = (obs.win + obs.loss) * p * (1.0 - p)
    hess = 2.0 * alpha * np.eye(n)
    np.add.at(hess, (obs.a, obs.a), curvature)
    np.add.at(hess, (obs.b, obs.b), curvature)
    np.add.at(hess, (obs.a, obs.b), -curvature)
    np.add.at(hess, (obs.b, obs.a), -curvature)
    if dz is None:
        return value, grad, hess
    offset = beta - beta_mean if beta_mean is not None else beta
    value += gamma * float(np.sum(offset**2))
    grad = np.concatenate([grad, dz.T @ g_pair + 2.0 * gamma * offset])
    # Cross terms: d²/dθ_a dβ = curvature · dz, and minus that for θ_b.
    cross = np.zeros((n, dz.shape[1]))
    np.add.at(cross, obs.a, curvature[:, None] * dz)
    np.add.at(cross, obs.b, -curvature[:, None] * dz)
    beta_block = dz.T @ (curvature[:, None] * dz) + 2.0 * gamma * np.eye(dz.shape[1])
    hess = np.block([[hess, cross], [cross.T, beta_block]])
    return value, grad, hess


def fit(
    n: int,
    obs: Outcomes,
    *,
    alpha: float = 0.1,
    prior_mean: NDArray[np.float64] | None = None,
    tol: float = 1e-9,
    max_iter: int = 100,
    covariates: NDArray[np.float64] | None = None,
    covariate_diffs: NDArray[np.float64] | None = None,
    covariate_alpha: float = 0.01,
    covariate_prior_mean: Sequence[float] | None = None,
) -> BTFit:
    """MAP Bradley–Terry strengths for ``n`` items (see the module docstring for the objective).

    ``alpha`` must be positive: it is what makes sparse designs converge. Items that appear in no observation
    keep their prior mean, with prior variance 1 / (2α). ``covariates`` (shape (n, p)) adds the style term with
    ridge ``covariate_alpha`` (> 0); whether β is identifiable from the design is the caller's question
    (:func:`policies.style.fittable_features`) — the ridge only keeps the fit finite. ``covariate_diffs``
    (shape (K, p), one z_a − z_b per observation) is the same term for observations whose features are their
    own rather than their items' (items that stand for a class of responses across prompts), or that belong to
    the call rather than to either item (the first position: :mod:`policies.position_bias`).
    ``covariate_prior_mean`` centres β's ridge: γ·‖β − β₀‖² (default β₀ = 0).
    """
    if n < 1:
        raise ValueError("need at least one item")
    if alpha <= 0:
        raise ValueError("alpha must be > 0 so that sparse comparison graphs have a finite estimate")
    if len(obs.a) and (obs.a.min() < 0 or obs.b.min() < 0 or max(obs.a.max(), obs.b.max()) >= n):
        raise ValueError(f"item index outside 0..{n - 1}")
    if np.any(obs.a == obs.b):
        raise ValueError("an item cannot be compared with itself")
    if np.any(obs.win < 0) or np.any(obs.loss < 0):
        raise ValueError("outcome weights must be non-negative")
    mu = np.zeros(n) if prior_mean is None else np.asarray(prior_mean, dtype=np.float64)
    if mu.shape != (n,):
        raise ValueError(f"prior_mean must have shape ({n},)")
    dz = None
    params = mu.copy()
    if covariates is not None and covariate_diffs is not None:
        raise ValueError("give covariates per item or per observation, not both")
    if covariates is not None:
        z = np.asarray(covariates, dtype=np.float64)
        if z.ndim != 2 or z.shape[0] != n or not np.all(np.isfinite(z)):
            raise ValueError(f"covariates must be a finite array of shape ({n}, p)")
        dz = z[obs.a] - z[obs.b]
    elif covariate_diffs is not None:
        dz = np.asarray(covariate_diffs, dtype=np.float64)
        if dz.ndim != 2 or dz.shape[0] != len(obs.a) or not np.all(np.isfinite(dz)):
            raise ValueError(f"covariate_diffs must be a finite array of shape ({len(obs.a)}, p)")
    if dz is not None:
        if covariate_alpha <= 0:
            raise ValueError("covariate_alpha must be > 0")
        beta_mean = np.zeros(dz.shape[1]) if covariate_prior_mean is None else np.asarray(covariate_prior_mean, float)
        if beta_mean.shape != (dz.shape[1],):
            raise ValueError(f"covariate_prior_mean must have shape ({dz.shape[1]},)")
        params = np.concatenate([mu, beta_mean])
    else:
        beta_mean = None

    value, grad, hess = _objective_parts(params, obs, alpha, mu, dz, covariate_alpha, beta_mean)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported in the result
        step = np.linalg.solve(hess, grad)
        # Backtracking keeps Newton monotone far from the optimum (large weights make the first steps long).
        t = 1.0
        while True:
            candidate = params - t * step
            cand_value, cand_grad, cand_hess = _objective_parts(
                candidate, obs, alpha, mu, dz, covariate_alpha, beta_mean
            )
            if cand_value <= value - 1e-4 * t * float(grad @ step) or t < 1e-8:
                break
            t *= 0.5
        params, value, grad, hess = candidate, cand_value, cand_grad, cand_hess
        if np.max(np.abs(t * step)) < tol:
            break
    covariance = np.linalg.inv(hess)
    if dz is None:
        return BTFit(theta=params, covariance=covariance, iterations=iterations)
    return BTFit(
        theta=params[:n],
        covariance=covariance[:n, :n],
        iterations=iterations,
        beta=params[n:],
        beta_covariance=covariance[n:, n:],
    )
