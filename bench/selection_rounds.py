"""Best-of-N in fewer rounds: the adaptive design's 4N calls in 4 sequential rounds instead of 8.

The adaptive design (best-of-N's default) spends its budget in rounds of ``adaptive_pairs_per_round`` pairs: with
both orders and 4N calls, N/4 pairs a round (the default before) take 8 sequential judge rounds, each the latency
of a thinking judge's call, and N/2 take 4. This compares, on the same simulated groups (paired: the same qualities
and judge noise for every design), the default before (N/4, Bradley–Terry) against N/2 pairs per round with
Bradley–Terry and with the whole verdict (:mod:`policies.whole_verdict`, now the default), against one order with
N pairs per round and the pooled first-position fit (:mod:`policies.position_bias`), and against round-robin with
both orders (N(N−1) calls in one round), the issue's yardstick, as it ranks today (Bradley–Terry) and with the
whole verdict. Reported: P(best), the paired difference to round-robin and to the default before with a 95%
interval, rounds, calls, and the issue's target: at most 4 rounds and P(best) within 0.01 of round-robin.

    python -m bench.selection_rounds [--trials 3000] [--sizes 8 16] [--variants base judgebench_o1_mini strong_bias]

Writes bench/results/selection_rounds.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.simulated_judges import VARIANTS, JudgeModel, SimulatedJudges
from deployments.hosting import cpu_model
from policies.position_bias import PositionBiasPool
from policies.selection import SelectionConfig, select_best

RESULTS = Path(__file__).parent / "results"
OLD_DEFAULT = "adaptive + swap, 4N, N/4 pairs a round, Bradley–Terry (the default before)"
YARDSTICK = "round-robin + swap"
WHOLE = "adaptive + swap, 4N, N/2 pairs a round, whole verdict (the default)"


def designs(n: int) -> dict[str, dict[str, Any]]:
    return {
        OLD_DEFAULT: {
            "strategy": "adaptive",
            "swap": True,
            "max_pairwise_calls": 4 * n,
            "adaptive_pairs_per_round": max(1, n // 4),
            "strengths": "bradley_terry",
        },
        "adaptive + swap, 4N, N/2 pairs a round": {
            "strategy": "adaptive",
            "swap": True,
            "max_pairwise_calls": 4 * n,
            "adaptive_pairs_per_round": n // 2,
            "strengths": "bradley_terry",
        },
        WHOLE: {
            "strategy": "adaptive",
            "swap": True,
            "max_pairwise_calls": 4 * n,
            "adaptive_pairs_per_round": n // 2,
            "strengths": "whole_verdict",
        },
        "adaptive, 1 order, 4N, N pairs a round, position fit (pooled)": {
            "strategy": "adaptive",
            "swap": False,
            "max_pairwise_calls": 4 * n,
            "adaptive_pairs_per_round": n,
            "fit_position_bias": True,
        },
        YARDSTICK: {"strategy": "round_robin", "swap": True, "strengths": "bradley_terry"},
        "round-robin + swap, whole verdict": {"strategy": "round_robin", "swap": True, "strengths": "whole_verdict"},
    }


async def run(model: JudgeModel, n: int, trials: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Per design: hits (1 when the true best was chosen), rounds and calls, one entry per trial."""
    options = designs(n)
    pools = {name: PositionBiasPool() for name in options}
    out: dict[str, dict[str, list[float]]] = {name: {"hit": [], "rounds": [], "calls": []} for name in options}
    for t in range(trials):
        quality = np.random.default_rng([seed, n, t]).normal(size=n)
        for name, kw in options.items():
            judges = SimulatedJudges(quality, model, np.random.default_rng([seed, n, t, 1]))
            config = SelectionConfig(use_principle=False, seed=t, **kw).with_position_pool(pools[name])
            result = await select_best(n, judges.pairwise, None, config)
            pools[name].learn(result.position_bias)
            out[name]["hit"].append(float(result.best == int(np.argmax(quality))))
            out[name]["rounds"].append(result.rounds)
            out[name]["calls"].append(result.pairwise_calls)
    return {name: {k: np.asarray(v) for k, v in cols.items()} for name, cols in out.items()}


def interval(d: np.ndarray) -> tuple[float, float]:
    """The mean of paired differences and the half-width of its 95% interval (normal approximation)."""
    return float(d.mean()), float(1.96 * d.std(ddof=1) / np.sqrt(len(d)))


def paired(a: np.ndarray, b: np.ndarray) -> str:
    """Mean of a − b with its 95% interval (normal approximation over the paired trials)."""
    mean, half = interval(a - b)
    return f"{mean:+.3f} ± {half:.3f}"


def target(hit: np.ndarray, yardstick: np.ndarray, rounds: np.ndarray) -> str:
    """The issue's bar for best-of-N in few rounds: at most 4 sequential rounds, and P(best) within 0.01 of
    round-robin with both orders, decided by the 95% interval of the paired difference."""
    if rounds.mean() > 4:
        return "over 4 rounds"
    mean, half = interval(hit - yardstick)
    if mean - half >= -0.01:
        return "**met**"
    if mean + half < -0.01:
        return f"missed by {-0.01 - mean:.3f}"
    return f"not shown (interval reaches {mean - half:+.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--variants", nargs="+", default=["base", "judgebench_o1_mini", "strong_bias"])
    parser.add_argument("--seed", type=int, default=2027)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    lines = [
        "# Best-of-N in fewer rounds (bench/selection_rounds.py)",
        "",
        f"`python -m bench.selection_rounds --trials {args.trials}`: simulated judges (bench/simulated_judges.py), "
        "the same groups and judge noise for every design. Differences are paired, with a 95% interval.",
    ]
    for variant in args.variants:
        for n in args.sizes:
            results = asyncio.run(run(VARIANTS[variant], n, args.trials, args.seed))
            lines += [
                "",
                f"## `{variant}`, N = {n}",
                "",
                "| design | P(best) | vs round-robin + swap | vs the default before | rounds | calls | target |",
                "|---|---:|---:|---:|---:|---:|---|",
            ]
            rr, default = results[YARDSTICK]["hit"], results[OLD_DEFAULT]["hit"]
            for name, got in results.items():
                lines.append(
                    f"| {name} | {got['hit'].mean():.3f} | {paired(got['hit'], rr)} | {paired(got['hit'], default)} "
                    f"| {got['rounds'].mean():.1f} | {got['calls'].mean():.1f} | "
                    f"{target(got['hit'], rr, got['rounds']) if name != YARDSTICK else ''} |"
                )
            print("\n".join(lines[-len(results) - 4 :]), flush=True)
    lines += ["", f"On {cpu_model()}, {time.perf_counter() - started:.0f} s.", ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "selection_rounds.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
