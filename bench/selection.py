"""Selection benchmark: P(best), regret and calls per strategy against simulated judges.

    python -m bench.selection                   # full run: N = 8, 16, 32; 400 trials; every judge variant
    python -m bench.selection --trials 50 --sizes 8 16 --variants base

Writes bench/results/selection.md (tables) and bench/results/selection.png (P(best) against pairwise calls).
Trials use common random numbers: trial t draws the same qualities (and judge noise stream) for every strategy
and variant, so differences between rows are paired comparisons, not independent samples.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.simulated_judges import VARIANTS, JudgeModel, SimulatedJudges
from policies.selection import SelectionConfig, select_best

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Entry:
    label: str
    config: SelectionConfig
    uses_principle: bool = False


def strategies(n: int) -> list[Entry]:
    pairwise_only = {"use_principle": False}
    # as these rows were measured: Bradley–Terry strengths, adaptive rounds of N/4 pairs
    bt = {"strengths": "bradley_terry"}
    adaptive = {**bt, "strategy": "adaptive", "adaptive_pairs_per_round": max(1, n // 4)}
    return [
        Entry("principle only", SelectionConfig(strategy="principle", **bt), uses_principle=True),
        Entry("circular (1 order)", SelectionConfig(strategy="circular", **bt, swap=False, **pairwise_only)),
        Entry("knockout (1 order)", SelectionConfig(strategy="knockout", **bt, swap=False, **pairwise_only)),
        Entry("knockout + swap", SelectionConfig(strategy="knockout", **bt, **pairwise_only)),
        Entry("swiss + swap", SelectionConfig(strategy="swiss", **bt, **pairwise_only)),
        Entry("round-robin + swap", SelectionConfig(strategy="round_robin", **bt, **pairwise_only)),
        Entry(
            "adaptive + swap (4N)",
            SelectionConfig(**adaptive, max_pairwise_calls=4 * n, **pairwise_only),
        ),
        Entry(
            "adaptive + swap (5N)",
            SelectionConfig(**adaptive, max_pairwise_calls=5 * n, **pairwise_only),
        ),
        Entry(
            "adaptive + swap + principle (4N)",
            SelectionConfig(**adaptive, max_pairwise_calls=4 * n),
            uses_principle=True,
        ),
        Entry(
            "adaptive + principle as BT prior (4N)",
            SelectionConfig(**adaptive, max_pairwise_calls=4 * n, principle_prior=0.3),
            uses_principle=True,
        ),
        Entry(
            "adaptive + swap + principle (5N)",
            SelectionConfig(**adaptive, max_pairwise_calls=5 * n),
            uses_principle=True,
        ),
    ]


@dataclass
class Cell:
    hits: np.ndarray  # per trial: did the strategy select the true best?
    p_best: float
    p_best_se: float
    regret: float
    pairwise_calls: float
    principle_calls: float
    rounds: float


async def run_cell(entry: Entry, model: JudgeModel, n: int, trials: int, seed: int) -> Cell:
    hits, regrets, pcalls, rcalls, rounds = [], [], [], [], []
    for t in range(trials):
        trial_rng = np.random.default_rng([seed, n, t])
        quality = trial_rng.normal(size=n)
        judges = SimulatedJudges(quality, model, np.random.default_rng([seed, n, t, 1]))
        config = entry.config.model_copy(update={"seed": t})
        result = await select_best(n, judges.pairwise, judges.principle if entry.uses_principle else None, config)
        best = int(np.argmax(quality))
        hits.append(result.best == best)
        regrets.append(quality[best] - quality[result.best])
        pcalls.append(result.pairwise_calls)
        rcalls.append(result.principle_calls)
        rounds.append(result.rounds)
    p = float(np.mean(hits))
    return Cell(
        hits=np.asarray(hits, dtype=np.float64),
        p_best=p,
        p_best_se=math.sqrt(p * (1 - p) / trials),
        regret=float(np.mean(regrets)),
        pairwise_calls=float(np.mean(pcalls)),
        principle_calls=float(np.mean(rcalls)),
        rounds=float(np.mean(rounds)),
    )


def _cell_job(job: tuple[Entry, JudgeModel, int, int, int]) -> Cell:
    return asyncio.run(run_cell(*job))


def table(rows: list[tuple[str, Cell]]) -> str:
    lines = [
        "| strategy | P(best) | regret | pairwise calls | principle calls | rounds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, c in rows:
        lines.append(
            f"| {label} | {c.p_best:.3f} ± {c.p_best_se:.3f} | {c.regret:.3f} | {c.pairwise_calls:.1f} "
            f"| {c.principle_calls:.1f} | {c.rounds:.1f} |"
        )
    return "\n".join(lines)


def plot(results: dict[tuple[str, int, str], Cell], sizes: list[int], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 4.6), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        for (variant, size, label), cell in results.items():
            if variant != "base" or size != n or label == "principle only":
                continue
            ax.errorbar(cell.pairwise_calls, cell.p_best, yerr=cell.p_best_se, fmt="o", capsize=3, label=label)
        principle = results.get(("base", n, "principle only"))
        if principle is not None:
            ax.axhline(principle.p_best, color="grey", linestyle=":", label="principle only (0 pairwise)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks([8, 16, 32, 64, 128, 256, 512, 1024])
        ax.set_xlabel("pairwise judge calls per selection (log scale)")
        ax.set_ylabel("P(select the true best)")
        ax.set_title(f"N = {n} candidates (base judge: s=0.707, b=0.5)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--invariance-trials", type=int, default=2000, help="0 skips the bias-invariance check")
    parser.add_argument("--invariance-sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, int, str], Cell] = {}
    sections = []
    started = time.perf_counter()
    keys = [(v, n, e) for v in args.variants for n in args.sizes for e in strategies(n)]
    # Cells are independent and seeded, so they run in parallel and give the same numbers as a serial run.
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        cells = pool.map(_cell_job, [(e, VARIANTS[v], n, args.trials, args.seed) for v, n, e in keys])
        for (variant, n, entry), cell in zip(keys, cells, strict=True):
            results[(variant, n, entry.label)] = cell
            print(
                f"{variant:>13} N={n:<3} {entry.label:<38} P(best)={cell.p_best:.3f} calls={cell.pairwise_calls:.1f}",
                flush=True,
            )
    for variant in args.variants:
        for n in args.sizes:
            rows = [(e.label, results[(variant, n, e.label)]) for e in strategies(n)]
            sections.append(f"### {variant}, N = {n} ({args.trials} trials)\n\n{table(rows)}\n")

    robustness = []
    for n in args.sizes:
        labels = [e.label for e in strategies(n)]
        robustness += [
            f"#### N = {n}",
            "",
            "| strategy | " + " | ".join(args.variants) + " |",
            "|---|" + "---:|" * len(args.variants),
            *(
                f"| {label} | " + " | ".join(f"{results[(v, n, label)].p_best:.3f}" for v in args.variants) + " |"
                for label in labels
            ),
            "",
        ]

    invariance = []
    if args.invariance_trials:
        invariance = [
            "| N | strategy | P(best) b=0.5 | P(best) b=0 | difference ± paired s.e. |",
            "|---:|---|---:|---:|---:|",
        ]
        pairs = [
            (n, entry)
            for n in args.invariance_sizes
            for entry in strategies(n)
            if entry.config.swap and not entry.uses_principle and entry.config.strategy != "principle"
        ]
        jobs = [(e, VARIANTS[v], n, args.invariance_trials, args.seed) for n, e in pairs for v in ("base", "no_bias")]
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            cells = list(pool.map(_cell_job, jobs))
        for k, (n, entry) in enumerate(pairs):
            biased, unbiased = cells[2 * k], cells[2 * k + 1]
            diff = biased.hits - unbiased.hits
            se = float(diff.std(ddof=1) / math.sqrt(len(diff)))
            invariance.append(
                f"| {n} | {entry.label} | {biased.p_best:.3f} | {unbiased.p_best:.3f} | {diff.mean():+.3f} ± {se:.3f} |"
            )
            print(f"invariance N={n} {entry.label}: {diff.mean():+.3f} ± {se:.3f}", flush=True)

    report = [
        "# Selection benchmark",
        "",
        f"Made by `python -m bench.selection --trials {args.trials}` in {time.perf_counter() - started:.0f} s. "
        "Simulated judges: bench/simulated_judges.py. ± is one standard error.",
        "",
        *sections,
        "### P(best) per judge variant",
        "",
        *robustness,
    ]
    if invariance:
        report += [
            f"### Bias invariance of swap designs ({args.invariance_trials} paired trials: same qualities and noise "
            "stream, bias 0.5 against 0)",
            "",
            *invariance,
            "",
        ]
    (args.out / "selection.md").write_text("\n".join(report))
    plot(results, args.sizes, args.out / "selection.png")
    print(f"wrote {args.out / 'selection.md'} and {args.out / 'selection.png'}")


if __name__ == "__main__":
    main()
