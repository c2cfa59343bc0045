"""Style control against a length-biased judge.

Each candidate has a latent quality q ~ N(0, 1) and a length L = ρ·q + √(1 − ρ²)·u, u ~ N(0, 1) (ρ = 0: length says
nothing about quality; ρ = 0.5: better answers tend to be longer). Its text is L turned into characters (about
400·e^{L/2}) with 0–3 list items that no judge looks at. The judge is the base simulated judge
(bench/simulated_judges.py) whose perception of a response adds c·L, so its margin gains c·(L_first − L_second)
and its helpfulness scores favour length as well. Measured: Spearman ρ with the quality and top-1 accuracy of the
default selection with and without ``style_control``, and the fitted length effect β.

    python -m bench.style_control [--trials 300]

Writes bench/results/style_control.md. :func:`style_effect_of_records` fits the style effect on real judged
chosen/rejected pairs (RM-Bench style: the same prompt answered with different lengths and markdown).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from bench.simulated_judges import JudgeModel, SimulatedJudges, ranking_from_margin, score_from_perception
from policies import bradley_terry as bt
from policies.debias import combine_orders
from policies.ensemble import standardize
from policies.selection import SelectionConfig, select_best
from policies.style import FEATURES, StyleEffect, feature_matrix
from policies.verdicts import PairVerdict, PairwiseResult

RESULTS = Path(__file__).parent / "results"


def candidate_text(length: float, list_items: int) -> str:
    """A text of about 400·e^{L/2} characters ending in ``list_items`` markdown list items."""
    body = "word " * max(1, round(80 * np.exp(length / 2)))
    return body.strip() + "".join(f"\n- point {k}" for k in range(list_items))


class LengthBiasedJudges(SimulatedJudges):
    """The base judge, perceiving c·L on top of s·q."""

    def __init__(
        self, quality: Sequence[float], length: Sequence[float], c: float, model: JudgeModel, rng: np.random.Generator
    ) -> None:
        super().__init__(quality, model, rng)
        self.length = np.asarray(length, dtype=np.float64)
        self.c = c

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        self.pairwise_calls += 1
        s, b = self.model.strength, self.model.bias
        p1 = s * self.quality[first] + self.c * self.length[first] + b / 2 + self._noise(np.sqrt(0.5))
        p2 = s * self.quality[second] + self.c * self.length[second] - b / 2 + self._noise(np.sqrt(0.5))
        verdict = PairVerdict(
            score_1=score_from_perception(p1), score_2=score_from_perception(p2), ranking=ranking_from_margin(p1 - p2)
        )
        return PairwiseResult(verdict=verdict)


def group(n: int, rho: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    quality = rng.normal(size=n)
    length = rho * quality + np.sqrt(1 - rho**2) * rng.normal(size=n)
    length = standardize(length)  # the judge sees the within-request standardised length, as the fit does
    texts = [candidate_text(v, int(k)) for v, k in zip(length, rng.integers(0, 4, size=n), strict=True)]
    return quality, length, texts


async def cell(
    n: int, strategy: str, rho: float, c: float, trials: int, seed: int
) -> dict[bool, tuple[float, float, float, float]]:
    """Per style_control: (Spearman ρ, its standard error, top-1 accuracy, mean fitted length β)."""
    out: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for t in range(trials):
        quality, length, texts = group(n, rho, np.random.default_rng([seed, n, t]))
        for style in (False, True):  # the same judge noise with and without style control
            judges = LengthBiasedJudges(quality, length, c, JudgeModel(), np.random.default_rng([seed, n, t, 1]))
            config = SelectionConfig(
                strategy=strategy,  # type: ignore[arg-type]
                use_principle=False,
                seed=t,
                style_control=style,
                strengths="bradley_terry",
            )
            result = await select_best(n, judges.pairwise, None, config, texts)
            scores = [k.score for k in sorted(result.candidates, key=lambda k: k.index)]
            r = spearmanr(scores, quality).statistic
            effect = result.style_effect
            beta = effect.coefficients.get("log_length", np.nan) if effect is not None else np.nan
            out[style].append((0.0 if np.isnan(r) else float(r), float(result.best == int(np.argmax(quality))), beta))
    summary = {}
    for style, rows in out.items():
        a = np.array(rows)
        beta = float(np.nanmean(a[:, 2])) if np.isfinite(a[:, 2]).any() else float("nan")
        summary[style] = (a[:, 0].mean(), a[:, 0].std() / np.sqrt(len(a)), a[:, 1].mean(), beta)
    return summary


# ---- real records --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StyleJudgedPair:
    """A chosen and a rejected response to one prompt, judged in both orders (``forward`` shows the chosen first)."""

    chosen: str
    rejected: str
    forward: PairVerdict | None
    backward: PairVerdict | None


def style_effect_of_records(
    pairs: Sequence[StyleJudgedPair], *, outcome_mode: bt.OutcomeMode = "scaled"
) -> StyleEffect:
    """The judge's style effect over many prompts' chosen/rejected pairs.

    One pair per prompt cannot separate style from quality (see :mod:`policies.style`), but across prompts it can:
    the model is P(chosen wins) = σ(θ_chosen − θ_rejected + βᵀ(z_chosen − z_rejected)) with two items shared by
    every prompt, θ the judge's style-free preference for the chosen answers, and z the style features
    standardised over all the texts. Sampled verdicts, debiased over both orders, weighted as the selection does.
    """
    judged = [(p, combine_orders(0, 1, p.forward, p.backward)) for p in pairs]
    judged = [(p, c) for p, c in judged if c.margin is not None]
    if len(judged) < 2:
        return StyleEffect(reason=f"{len(judged)} judged pair(s): too few to fit a style effect")
    z = feature_matrix([t for p, _ in judged for t in (p.chosen, p.rejected)])
    dz = z[0::2] - z[1::2]
    varying = [j for j in range(len(FEATURES)) if np.ptp(dz[:, j]) > 1e-12]
    not_fitted = {FEATURES[j]: "the same difference in every pair" for j in range(len(FEATURES)) if j not in varying}
    if not varying:
        return StyleEffect(not_fitted=not_fitted, reason="no feature varies across the pairs")
    obs = bt.outcomes_from_comparisons([c for _, c in judged], outcome_mode)
    fitted = bt.fit(2, obs, covariate_diffs=dz[:, varying])
    assert fitted.beta is not None and fitted.beta_covariance is not None
    se = np.sqrt(np.clip(np.diag(fitted.beta_covariance), 0.0, None))
    names = [FEATURES[j] for j in varying]
    return StyleEffect(
        coefficients=dict(zip(names, fitted.beta.tolist(), strict=True)),
        stderr=dict(zip(names, se.tolist(), strict=True)),
        not_fitted=not_fitted,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--biases", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    lines = [
        "# Style control against a length-biased judge",
        "",
        f"`python -m bench.style_control --trials {args.trials}`: base simulated judge (s = 0.707, b = 0.5) whose "
        "perception adds c · (standardised length); default selection (ensemble score, both orders), with and "
        "without `style_control`; the same groups and judge noise for both. β(length): the mean fitted log-length "
        "effect (log-odds per within-request standard deviation).",
    ]
    for n, strategy in ((8, "round_robin"), (8, "swiss"), (16, "swiss")):
        for rho in (0.0, 0.5):
            lines += [
                "",
                f"N = {n}, {strategy.replace('_', '-')} + swap, length–quality correlation ρ = {rho:g}, "
                f"{args.trials} groups",
                "",
                "| c | ρ plain | ρ style control | top-1 plain | top-1 style control | β(length) |",
                "|---:|---:|---:|---:|---:|---:|",
            ]
            for c in args.biases:
                res = asyncio.run(cell(n, strategy, rho, c, args.trials, args.seed))
                (r0, se0, t0, _), (r1, se1, t1, beta) = res[False], res[True]
                lines.append(
                    f"| {c:g} | {r0:.3f} ± {se0:.3f} | {r1:.3f} ± {se1:.3f} | {t0:.3f} | {t1:.3f} | {beta:.2f} |"
                )
                print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "style_control.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
