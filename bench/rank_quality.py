"""Rank quality per judge call: how well each design orders a whole group of rollouts, not only its best.

RL trainers need a reward for every rollout, so the measure is the Spearman correlation between the rewards a
design returns and the rollouts' latent quality, in the standard simulation (bench/simulated_judges.py; base judge:
single-call accuracy ~0.73, first-position bias b = 0.5) and its frozen variants, among them judges fitted to real
both-order verdicts (bench/judge_fit.py). NVIDIA's RLHF design — circular pairs in one order, reward = mean
individual score with the 3.5 − ranking tie-break (:mod:`policies.nemo_gym`) — is measured beside ours.

    python -m bench.rank_quality [--trials 300] [--sizes 8 16] [--variants base judgebench_o1_mini ...]

Writes bench/results/rank_quality.md.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.stats import spearmanr

from bench.simulated_judges import VARIANTS, JudgeModel, SimulatedJudges
from policies.position_bias import PositionBiasPool
from policies.selection import SelectionConfig, select_best

RESULTS = Path(__file__).parent / "results"
Design = Callable[[int, SimulatedJudges, int], Awaitable[tuple[list[float], int]]]


def ours(
    strategy: str,
    swap: bool = True,
    budget: float | None = None,
    position: Literal["no", "group", "pooled"] = "no",
    **settings: Any,
) -> Design:
    """``position``: fit the first-position advantage per group (its prior the configured one) or with the prior
    pooled over the groups judged before, as a router replica pools its judge's (policies.position_bias).
    ``settings``: further SelectionConfig fields (e.g. ``strengths``)."""
    pool = PositionBiasPool()
    settings.setdefault("strengths", "bradley_terry")  # the rows name their strengths; Bradley–Terry unless said

    async def run(n: int, judges: SimulatedJudges, seed: int) -> tuple[list[float], int]:
        config = SelectionConfig(
            strategy=strategy,  # type: ignore[arg-type]
            swap=swap,
            use_principle=False,
            seed=seed,
            fit_position_bias=position != "no",
            **settings,
            **({"max_pairwise_calls": int(budget * n)} if budget else {}),
        )
        if position == "pooled":
            config = config.with_position_pool(pool)
        result = await select_best(n, judges.pairwise, None, config)
        pool.learn(result.position_bias)
        by_index = sorted(result.candidates, key=lambda c: c.index)
        return [c.score for c in by_index], result.pairwise_calls

    return run


def nvidia_circular() -> Design:
    from policies.nemo_gym import DEFAULT_RANKING, DEFAULT_SCORE, JudgedPair, aggregate

    async def run(n: int, judges: SimulatedJudges, seed: int) -> tuple[list[float], int]:
        pairs = [(k, (k + 1) % n) for k in range(n)]  # each pair once, lower neighbour first
        results = await asyncio.gather(*(judges.pairwise(i, j) for i, j in pairs))
        judged = [
            JudgedPair(
                response_i=i,
                response_j=j,
                score_1=r.verdict.score_1 if r.verdict and r.verdict.score_1 is not None else DEFAULT_SCORE,
                score_2=r.verdict.score_2 if r.verdict and r.verdict.score_2 is not None else DEFAULT_SCORE,
                ranking=r.verdict.ranking if r.verdict and r.verdict.ranking is not None else DEFAULT_RANKING,
            )
            for (i, j), r in zip(pairs, results, strict=True)
        ]
        return aggregate(n, judged).rewards, len(pairs)

    return run


def designs() -> dict[str, Design]:
    return {
        "NVIDIA circular, 1 order, mean score (NeMo-Gym)": nvidia_circular(),
        "circular, 1 order, Bradley–Terry": ours("circular", swap=False),
        "circular, 1 order, + position bias (pooled)": ours("circular", swap=False, position="pooled"),
        "swiss, 1 order": ours("swiss", swap=False),
        "swiss, 1 order, + position bias (per group)": ours("swiss", swap=False, position="group"),
        "swiss, 1 order, + position bias (pooled)": ours("swiss", swap=False, position="pooled"),
        "circular + swap": ours("circular"),
        "knockout + swap": ours("knockout"),
        "swiss + swap": ours("swiss"),
        "adaptive + swap (2N)": ours("adaptive", budget=2),
        "adaptive + swap (4N)": ours("adaptive", budget=4),
        "round-robin, 1 order": ours("round_robin", swap=False),
        "round-robin + swap": ours("round_robin"),
    }


async def trials_of(
    design: Design, n: int, trials: int, seed: int, model: JudgeModel = VARIANTS["base"]
) -> tuple[np.ndarray, np.ndarray]:
    """(Spearman ρ, pairwise calls) per trial: trial t's group and judge noise are the same for every design."""
    rhos, calls = [], []
    for t in range(trials):
        quality = np.random.default_rng([seed, n, t]).normal(size=n)
        judges = SimulatedJudges(quality, model, np.random.default_rng([seed, n, t, 1]))
        rewards, used = await design(n, judges, t)
        rho = spearmanr(rewards, quality).statistic
        rhos.append(0.0 if np.isnan(rho) else float(rho))  # all rewards equal: no order at all
        calls.append(used)
    return np.asarray(rhos), np.asarray(calls, dtype=np.float64)


async def cell(
    design: Design, n: int, trials: int, seed: int, model: JudgeModel = VARIANTS["base"]
) -> tuple[float, float, float]:
    """(mean Spearman ρ, its standard error, mean pairwise calls) over ``trials`` groups."""
    rhos, calls = await trials_of(design, n, trials, seed, model)
    return float(np.mean(rhos)), float(np.std(rhos) / np.sqrt(trials)), float(np.mean(calls))


def _describe(model: JudgeModel) -> str:
    parts = [f"s {model.strength:g}", f"b {model.bias:g}", f"noise {model.noise}"]
    if model.pair_noise:
        parts.append(f"pair's share of the noise ρ {model.pair_noise:g}")
    if model.parse_failure:
        parts.append(f"{model.parse_failure:.0%} of calls unreadable")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    lines = [
        "# Rank quality per judge call",
        "",
        f"`python -m bench.rank_quality --trials {args.trials}`: Spearman ρ between each design's rewards and the "
        "rollouts' latent quality, per simulated judge (bench/simulated_judges.py's variants, two of them fitted to "
        "real both-order verdicts: [judge_fit.md](judge_fit.md)), the same groups and noise for every design.",
    ]
    for variant in args.variants:
        model = VARIANTS[variant]
        lines += ["", f"## `{variant}`: {_describe(model)}"]
        for n in args.sizes:
            lines += [
                "",
                f"N = {n}",
                "",
                "| design | Spearman ρ | pairwise calls | ρ per 10 calls |",
                "|---|---:|---:|---:|",
            ]
            for name, design in designs().items():
                rho, se, calls = asyncio.run(cell(design, n, args.trials, args.seed, model))
                lines.append(f"| {name} | {rho:.3f} ± {se:.3f} | {calls:.1f} | {10 * rho / calls:.3f} |")
                print(variant, lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rank_quality.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
