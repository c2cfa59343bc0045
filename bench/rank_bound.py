"""The most N judge calls can say: a Bayes oracle that reads each call's perceptions before they become a verdict.

In the frozen simulator (bench/simulated_judges.py) a pairwise call perceives both responses,

    p_first = s·q_i + b/2 + u/2 + e_1,      p_second = s·q_j − b/2 − u/2 + e_2,

with q ~ N(0, 1) each response's quality, b the first position's advantage, u ~ N(0, ρ) the pair's own error and
e ~ N(0, (1 − ρ)/2) each perception's, and then reports only their quantised images: two 1–5 scores and a 1–6
ranking (nothing at all when the answer cannot be read). Every rule that reads verdicts — NVIDIA's, the whole
verdict, any fit — is a function of those images. The oracle reads the perceptions themselves and knows s, b, ρ
and the prior. With y the answered calls' perceptions less their offsets ±b/2, A the design (s where a call shows
a response) and C the noise covariance of one call, [[ρ/4 + σ², −ρ/4], [−ρ/4, ρ/4 + σ²]] with σ² = (1 − ρ)/2,
the posterior of q is Gaussian,

    Λ = I + Aᵀ C⁻¹ A,      μ = Λ⁻¹ Aᵀ C⁻¹ y,      q | y ~ N(μ, Λ⁻¹),

(exact when no pair is judged twice, as on NVIDIA's circle), and ranking by the posterior's expected ranks
(computed exactly) maximises the expected Spearman ρ over all rankings. On the same calls no rule can do better in
expectation: the oracle's margin over NVIDIA's rule bounds what any reading of NVIDIA's N calls can add. With
heavy-tailed noise the Gaussian posterior is not the exact one, so that variant's row is not a bound. The bound is
loose where the pair's share of the noise is near 1 (the fitted Skywork judge, ρ = 0.995): the simulator splits
the pair's error ±u/2 between the two perceptions, so their sum is almost noise-free and the oracle reads it,
while the quantised scores keep little of it.

A second oracle asks whether another design of N calls could do better: it gets 2N single perceptions (what N
calls give), one of each response first and the rest placed one at a time where the ranking is least certain —
freer than any design of pairwise calls. It runs on the judges whose noise has no pair share, unbiased once the
oracle removes b, and that read every answer.

    python -m bench.rank_bound [--trials 4000] [--sizes 8 16] [--variants base ...]

Writes bench/results/rank_bound.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm, spearmanr

from bench.rank_quality import _describe, nvidia_circular
from bench.selection_rounds import interval, paired
from bench.simulated_judges import VARIANTS, JudgeModel, SimulatedJudges
from deployments.hosting import cpu_model
from policies.verdicts import PairwiseResult

RESULTS = Path(__file__).parent / "results"
#: the issue's target at N calls: Spearman at least this much above NVIDIA's rule
TARGET = 0.05


class PerceptionsSeen(SimulatedJudges):
    """The simulated judges, keeping each answered call's ``(first, second, p_first, p_second)``; a call whose answer
    could not be read keeps nothing, since it tells its reader nothing."""

    def __init__(self, quality: np.ndarray, model: JudgeModel, rng: np.random.Generator) -> None:
        super().__init__(quality, model, rng)
        self.seen: list[tuple[int, int, float, float]] = []
        self._last: tuple[int, int, float, float] | None = None

    def perceive(self, first: int, second: int) -> tuple[float, float]:
        p1, p2 = super().perceive(first, second)
        self._last = (first, second, p1, p2)
        return p1, p2

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        result = await super().pairwise(first, second)  # no await inside: the last perception is this call's
        if result.ok and self._last is not None:
            self.seen.append(self._last)
        return result


def posterior(n: int, seen: list[tuple[int, int, float, float]], model: JudgeModel) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Λ⁻¹) of q given the calls' perceptions (the module docstring's formula)."""
    s, b, rho = model.strength, model.bias, model.pair_noise
    pairs = [(min(i, j), max(i, j)) for i, j, _, _ in seen]
    if len(set(pairs)) != len(pairs):
        raise ValueError("a pair judged twice shares its pair error between calls; this posterior assumes it does not")
    var = 0.5 * (1.0 - rho) + 1e-9
    c_inv = np.linalg.inv(np.array([[rho / 4 + var, -rho / 4], [-rho / 4, rho / 4 + var]]))
    precision, h = np.eye(n), np.zeros(n)
    for i, j, p1, p2 in seen:
        idx = [i, j]
        precision[np.ix_(idx, idx)] += s * s * c_inv
        h[idx] += s * c_inv @ np.array([p1 - b / 2, p2 + b / 2])
    cov = np.linalg.inv(precision)
    return cov @ h, cov


def expected_ranks(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Each response's expected rank under q ~ N(mean, cov), exactly: Σ_j P(q_k > q_j), each term
    Φ((μ_k − μ_j) / √(Σ_kk + Σ_jj − 2Σ_kj)) (drawing would blur near ties, which is most of a weak judge's group)."""
    var = np.diag(cov)
    spread = np.sqrt(np.maximum(var[:, None] + var[None, :] - 2 * cov, 1e-12))
    above = norm.cdf((mean[:, None] - mean[None, :]) / spread)
    np.fill_diagonal(above, 0.0)
    return above.sum(axis=1)


def adaptive_oracle(quality: np.ndarray, model: JudgeModel, rng: np.random.Generator) -> np.ndarray:
    """Expected ranks after 2N single perceptions (bias removed, noise N(0, ½)): each response once, then N more,
    each to the response whose neighbours in the current estimate it is most likely to be misordered with."""
    n, s, var = len(quality), model.strength, 0.5
    sums = s * quality + rng.normal(0.0, np.sqrt(var), n)
    counts = np.ones(n)
    for _ in range(n):
        precision = 1.0 + counts * s * s / var
        mean, sd = sums * s / var / precision, 1.0 / np.sqrt(precision)
        order = np.argsort(mean)
        risk = np.zeros(n)
        for lo, hi in itertools.pairwise(order):
            z = (mean[hi] - mean[lo]) / np.hypot(sd[lo], sd[hi])
            risk[[lo, hi]] += np.exp(-z * z / 2)
        k = int(np.argmax(risk * sd))  # where one more look moves the estimate most
        sums[k] += s * quality[k] + rng.normal(0.0, np.sqrt(var))
        counts[k] += 1
    precision = 1.0 + counts * s * s / var
    return expected_ranks(sums * s / var / precision, np.diag(1.0 / precision))


def _rho(scores: np.ndarray | list[float], quality: np.ndarray) -> float:
    rho = spearmanr(scores, quality).statistic
    return 0.0 if np.isnan(rho) else float(rho)


def adaptive_applies(model: JudgeModel) -> bool:
    return model.pair_noise == 0 and model.noise == "normal" and model.parse_failure == 0


async def trials(n: int, trials: int, seed: int, model: JudgeModel) -> dict[str, np.ndarray]:
    """Spearman ρ per trial of NVIDIA's rule, the oracle on its calls and (where it applies) the adaptive oracle;
    trial t's group and judge noise are bench.rank_quality's trial t."""
    nvidia = nvidia_circular()
    out: dict[str, list[float]] = {"nvidia": [], "oracle": [], "adaptive": []}
    for t in range(trials):
        quality = np.random.default_rng([seed, n, t]).normal(size=n)
        judges = PerceptionsSeen(quality, model, np.random.default_rng([seed, n, t, 1]))
        rewards, _ = await nvidia(n, judges, t)
        out["nvidia"].append(_rho(rewards, quality))
        out["oracle"].append(_rho(expected_ranks(*posterior(n, judges.seen, model)), quality))
        if adaptive_applies(model):
            looks = np.random.default_rng([seed, n, t, 2])
            out["adaptive"].append(_rho(adaptive_oracle(quality, model, looks), quality))
    return {k: np.asarray(v) for k, v in out.items()}


def verdict(diff: np.ndarray) -> str:
    """Whether the +TARGET bar lies above what the oracle can add (the whole 95% interval below it)."""
    mean, half = interval(diff)
    if mean + half < TARGET:
        return f"**unreachable**: the bound is {TARGET - mean:.3f} below the target"
    return "reachable in principle"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    lines = [
        "# The most N judge calls can say (bench/rank_bound.py)",
        "",
        f"`python -m bench.rank_bound --trials {args.trials}` (CPU: {cpu_model()}; a simulation: the numbers do not "
        "depend on it). Spearman ρ against the latent quality on paired trials (bench.rank_quality's groups and "
        "judge noise, seed "
        f"{args.seed}): NVIDIA's rule on its circle of N calls, the Bayes oracle that reads the same calls' "
        "perceptions before they are quantised (a bound on any rule reading those calls), and the adaptive oracle "
        "with 2N single perceptions placed where the ranking is least certain. Differences: mean ± 95% interval.",
        "",
        "| judge | N | NVIDIA's rule | oracle, same calls | oracle − NVIDIA | adaptive oracle − NVIDIA | "
        f"target +{TARGET:g} |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name in args.variants:
        model = VARIANTS[name]
        for n in args.sizes:
            rho = asyncio.run(trials(n, args.trials, args.seed, model))
            diff = rho["oracle"] - rho["nvidia"]
            adaptive = paired(rho["adaptive"], rho["nvidia"]) if len(rho["adaptive"]) else "—"
            target = verdict(diff) if model.noise == "normal" else "not a bound (heavy tails)"
            lines.append(
                f"| {name} ({_describe(model)}) | {n} | {rho['nvidia'].mean():.3f} | {rho['oracle'].mean():.3f} | "
                f"{paired(rho['oracle'], rho['nvidia'])} | {adaptive} | {target} |"
            )
            print(lines[-1], flush=True)
    lines += [
        "",
        "Where the pair's share of the noise is near 1 (the Skywork fit) the bound is loose: the simulator splits the "
        "pair's error ±u/2 between the two perceptions, so their sum is almost noise-free and the oracle reads it, "
        "while the quantised scores keep little of it. With heavy-tailed noise the Gaussian posterior is not the "
        "exact one.",
        "",
        f"{time.perf_counter() - started:.0f} s.",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rank_bound.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
