"""Style control: Bradley–Terry strengths with the candidates' style held fixed.

Judges prefer longer, more formatted answers. As in Chatbot Arena's style control, every candidate gets a style
vector z_i and the comparisons are fitted by

    P(i beats j) = σ(θ_i − θ_j + βᵀ(z_i − z_j))

with θ and β estimated jointly (:func:`policies.bradley_terry.fit` with covariates: the usual ridge α on θ, a
ridge γ of its own on β, ``SelectionConfig.style_alpha``). β is what a feature buys in the judge's eyes, in
log-odds per within-request standard deviation; θ is the preference left once style is accounted for, and the
selection ranks by it.

Features (:func:`style_features`), computed from the text alone: log(1 + characters), and log(1 + count) of
markdown headers, bold spans, list items and fenced code blocks. Each is standardised across the candidates of the
request (:func:`policies.ensemble.standardize`), so β does not depend on how long answers are for this prompt.

Identifiability. Within one request every candidate has a strength of its own, so in the likelihood alone a
per-candidate feature is absorbed completely: θ_i + βᵀz_i fits exactly as well as θ_i. What separates the two is
the prior of the joint fit: θ ~ N(0, 1/(2α)) independently of style, and β ~ N(0, 1/(2γ)). The fit then reads
β as the part of the judged strengths that lines up with the features across the candidates (close to a
regression of the plain strengths on z), and θ is the rest. That needs candidates to spare: a feature is fitted
only when, over the candidates that took part in a judged comparison, it is not constant, not a linear combination
of the features accepted before it (tried in the order of :data:`FEATURES`, length first), and at least
:data:`SPARE_DEGREES` degrees of freedom are left for the strengths (judged candidates − 1 − fitted features).
With N = 2 (one pair) nothing can be fitted: :class:`StyleEffect` says why and the strengths are the plain
Bradley–Terry fit. Across prompts (θ shared by a class of responses, features per response) the likelihood does
identify β; bench/style_control.py fits that on labelled records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from policies import bradley_terry as bt
from policies.ensemble import standardize

#: Style features, in the order they are tried for identifiability.
FEATURES: tuple[str, ...] = ("log_length", "headers", "bold", "list_items", "code_blocks")

_HEADER = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*(?=\S)[^\n]*?(?<=\S)\*\*|__(?=\S)[^\n]*?(?<=\S)__")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S", re.MULTILINE)
_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)

#: Degrees of freedom the strengths keep beyond the fitted features (see the module docstring).
SPARE_DEGREES = 2
CONSTANT = "constant across the judged candidates"
COLLINEAR = "a linear combination of the features fitted before it"
TOO_FEW = f"too few judged candidates: the strengths need {SPARE_DEGREES} degrees of freedom beyond the style"


class StyleEffect(BaseModel):
    """The fitted style effect of one selection (``style_control``)."""

    coefficients: dict[str, float] = Field(
        default_factory=dict,
        description="β per fitted feature: log-odds of winning per within-request standard deviation of the feature",
    )
    stderr: dict[str, float] = Field(default_factory=dict, description="Laplace standard error of each β")
    not_fitted: dict[str, str] = Field(default_factory=dict, description="features left out, and why")
    reason: str | None = Field(
        default=None, description="set when no feature could be fitted: the ranking is then plain Bradley–Terry"
    )

    @property
    def fitted(self) -> bool:
        return bool(self.coefficients)


def style_features(text: str) -> dict[str, float]:
    """The raw (unstandardised) style features of one candidate, keyed as :data:`FEATURES`."""
    counts = {
        "headers": len(_HEADER.findall(text)),
        "bold": len(_BOLD.findall(text)),
        "list_items": len(_LIST_ITEM.findall(text)),
        "code_blocks": (len(_FENCE.findall(text)) + 1) // 2,  # an unclosed fence still opens a block
    }
    return {"log_length": math.log1p(len(text)), **{k: math.log1p(v) for k, v in counts.items()}}


def feature_matrix(texts: Sequence[str]) -> NDArray[np.float64]:
    """Standardised features, shape (N, len(FEATURES)); a constant column is all zeros."""
    rows = [[style_features(t)[k] for k in FEATURES] for t in texts]
    raw = np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES))
    return np.column_stack([standardize(raw[:, j]) for j in range(len(FEATURES))]) if len(texts) else raw


def fittable_features(obs: bt.Outcomes, z: NDArray[np.float64]) -> tuple[list[int], dict[str, str]]:
    """(columns of ``z`` to fit, {feature: why not} for the rest) under the module's identifiability rule."""
    judged = sorted(set(obs.a.tolist()) | set(obs.b.tolist()))
    design = np.ones((len(judged), 1))
    kept: list[int] = []
    skipped: dict[str, str] = {}
    for j, name in enumerate(FEATURES):
        column = z[judged, j : j + 1]
        if len(judged) < 2 or np.ptp(column) <= 1e-12:
            skipped[name] = CONSTANT
        elif int(np.linalg.matrix_rank(np.hstack([design, column]))) == design.shape[1]:
            skipped[name] = COLLINEAR
        elif len(judged) - 1 - (len(kept) + 1) < SPARE_DEGREES:
            skipped[name] = TOO_FEW
        else:
            design = np.hstack([design, column])
            kept.append(j)
    return kept, skipped


def fit_with_style(
    n: int,
    obs: bt.Outcomes,
    texts: Sequence[str],
    *,
    alpha: float = 0.1,
    covariate_alpha: float = 0.5,
) -> tuple[bt.BTFit, StyleEffect]:
    """Strengths and style effect jointly; the plain fit (and a reason) when no feature is identifiable."""
    if len(texts) != n:
        raise ValueError(f"style control needs one text per candidate: {len(texts)} texts for {n} candidates")
    z = feature_matrix(texts)
    kept, skipped = fittable_features(obs, z)
    if not kept:
        judged = len(set(obs.a.tolist()) | set(obs.b.tolist()))
        reason = (
            f"no style feature can be told apart from the strengths of {judged} judged candidate(s) "
            f"(each needs a varying feature and {SPARE_DEGREES} spare degrees of freedom)"
        )
        return bt.fit(n, obs, alpha=alpha), StyleEffect(not_fitted=skipped, reason=reason)
    fitted = bt.fit(n, obs, alpha=alpha, covariates=z[:, kept], covariate_alpha=covariate_alpha)
    assert fitted.beta is not None and fitted.beta_covariance is not None
    names = [FEATURES[j] for j in kept]
    se = np.sqrt(np.clip(np.diag(fitted.beta_covariance), 0.0, None))
    return fitted, StyleEffect(
        coefficients={k: float(b) for k, b in zip(names, fitted.beta, strict=True)},
        stderr={k: float(s) for k, s in zip(names, se, strict=True)},
        not_fitted=skipped,
    )
