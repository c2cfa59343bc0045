"""Combining the two judges' signals into one score per candidate.

The principle judge gives a pointwise reward (a log-odds of "Yes", unbounded, one scale per principle); the
pairwise judge gives Bradley–Terry strengths (log-odds of winning). The scales are not comparable, so each
signal is standardised across the candidates of one request before weighting:

    z(x)_i = (x_i − mean(x)) / std(x),      ensemble_i = w_pair · z(θ)_i + w_principle · z(r)_i + w_help · z(h)_i

where h is the mean 1–5 helpfulness the pairwise judge gave the candidate across its calls (NVIDIA's RLHF
reward for the circular design is exactly that mean).

A candidate without a value for a signal gets z = 0 (the request's average) for it; a signal that is constant,
or missing everywhere, contributes nothing.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator


class EnsembleWeights(BaseModel):
    """How much each judge counts in the final score. Both are standardised first (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pairwise: float = Field(default=1.0, ge=0.0, description="weight of the pairwise Bradley–Terry strength")
    principle: float = Field(default=0.1, ge=0.0, description="weight of the mean principle reward")
    helpfulness: float = Field(
        default=0.5,
        ge=0.0,
        description="weight of the mean 1–5 helpfulness the pairwise judge gave each candidate",
    )

    @model_validator(mode="after")
    def _some_weight(self) -> EnsembleWeights:
        if self.pairwise == 0 and self.principle == 0 and self.helpfulness == 0:
            raise ValueError("at least one ensemble weight must be positive")
        return self


def standardize(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """z-scores over the finite entries; NaN entries, and every entry of a constant signal, become 0."""
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(x)
    present = np.isfinite(x)
    if present.sum() < 2:
        return out
    values_present = x[present]
    centre = values_present.mean()
    spread = values_present.std()
    # Rounding leaves a spread of ~1e-17 on equal values: that is a constant signal, not information.
    if spread <= 1e-12 * max(1.0, float(np.abs(values_present).max())):
        return out
    out[present] = (values_present - centre) / spread
    return out


def combine(
    n: int,
    weights: EnsembleWeights,
    strength: NDArray[np.float64] | None = None,
    principle: NDArray[np.float64] | None = None,
    helpfulness: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Weighted sum of the standardised signals; a missing signal (None) contributes nothing."""
    total = np.zeros(n)
    for signal, weight in (
        (strength, weights.pairwise),
        (principle, weights.principle),
        (helpfulness, weights.helpfulness),
    ):
        if signal is not None and weight > 0:
            total += weight * standardize(signal)
    return total
