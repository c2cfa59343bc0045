"""Soft verdicts: the judge's belief over rankings (its logprobs) against its one sampled ranking.

The simulated judge of bench/simulated_judges.py draws its margin as m = s·Δq + b + ε with ε ~ N(0, 1). Here that
noise is split in two: a part the judge believes (ε_c ~ N(0, 1 − σ²), its misreading of this pair) and a part
that is only sampling (η ~ N(0, σ²)). Its belief over rankings is P(r) = P(μ + η falls in ranking r's bin) with
μ = s·Δq + b + ε_c, the sampled ranking is a draw from that belief, and the belief is reported as logprobs at the
ranking digit. The sampled rankings have exactly the base judge's distribution, so σ² = 0.5 is the base judge with
half its noise being sampling noise; σ² → 0 makes the belief a point mass (soft = sampled).

Measured, for the same groups and noise: N = 2 (one pair, both orders) pair accuracy and position consistency (the
two orders lean the same way); N = 8 and 16 Spearman ρ with the latent quality, top-1 accuracy and consistency.

    python -m bench.soft_verdicts [--trials 300]

Writes bench/results/soft_verdicts.md. :func:`pair_table` scores real pairwise results the same way (a later step
runs it on real records: both orders of each chosen/rejected pair).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr
from scipy.stats import spearmanr

from bench.simulated_judges import RANKING_CUTS, JudgeModel, SimulatedJudges, score_from_perception
from policies.debias import combine_orders
from policies.selection import SelectionConfig, select_best
from policies.verdicts import PairVerdict, PairwiseResult, VerdictMode, belief_from_logprobs

RESULTS = Path(__file__).parent / "results"
MODES: tuple[VerdictMode, ...] = ("sampled", "soft")


def ranking_belief(mu: float, sampling_sd: float) -> np.ndarray:
    """P(r) for r = 1..6 when the judge writes the ranking of μ + η, η ~ N(0, sampling_sd²)."""
    # P(r ≤ k) = P(μ + η > cut_k) for the descending cuts; the last level takes the rest.
    above = ndtr((mu - RANKING_CUTS) / sampling_sd)
    cumulative = np.concatenate([above, [1.0]])
    return np.diff(np.concatenate([[0.0], cumulative]))


class BeliefJudges(SimulatedJudges):
    """The base simulated judge whose ranking is sampled from a belief that it also reports (as logprobs)."""

    def __init__(
        self, quality: Sequence[float], model: JudgeModel, rng: np.random.Generator, sampling_share: float
    ) -> None:
        super().__init__(quality, model, rng)
        if not 0.0 < sampling_share < 1.0:
            raise ValueError("sampling_share must be in (0, 1)")
        self.sampling_sd = float(np.sqrt(sampling_share))
        self.belief_sd = float(np.sqrt(1.0 - sampling_share))

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        self.pairwise_calls += 1
        s, b = self.model.strength, self.model.bias
        p1 = s * self.quality[first] + b / 2 + self._noise(np.sqrt(0.5))
        p2 = s * self.quality[second] - b / 2 + self._noise(np.sqrt(0.5))
        mu = s * (self.quality[first] - self.quality[second]) + b + self._noise(self.belief_sd)
        belief = ranking_belief(mu, self.sampling_sd)
        ranking = 1 + int(self.rng.choice(6, p=belief))
        with np.errstate(divide="ignore"):  # a level with no mass has logprob −inf: the engine would not list it
            logprobs = dict(zip(range(1, 7), np.log(belief).tolist(), strict=True))
        verdict = PairVerdict(
            score_1=score_from_perception(p1),
            score_2=score_from_perception(p2),
            ranking=ranking,
            ranking_probs=belief_from_logprobs(logprobs),
        )
        return PairwiseResult(verdict=verdict)


# ---- real or simulated pairs in both orders ------------------------------------------------------------------


@dataclass(frozen=True)
class OrderedPair:
    """One labelled pair judged in both orders: ``forward`` showed the better response first, ``backward`` second."""

    forward: PairVerdict | None
    backward: PairVerdict | None


@dataclass(frozen=True)
class PairRow:
    mode: VerdictMode
    pairs: int
    judged: int  # pairs with a margin in this mode
    with_belief: int  # pairs where both orders carried a belief
    accuracy: float  # margin > 0 counts 1, a margin of 0 half, over the judged pairs
    consistency: float | None  # two-order pairs whose orders lean the same way


def pair_table(pairs: Sequence[OrderedPair]) -> list[PairRow]:
    """Pair accuracy and position consistency of sampled and soft verdicts over the same labelled pairs."""
    rows = []
    for mode in MODES:
        comparisons = [combine_orders(0, 1, p.forward, p.backward, verdicts=mode) for p in pairs]
        margins = [c.margin for c in comparisons if c.margin is not None]
        consistent = [c.consistent for c in comparisons if c.consistent is not None]
        rows.append(
            PairRow(
                mode=mode,
                pairs=len(pairs),
                judged=len(margins),
                with_belief=sum(
                    p.forward is not None
                    and p.backward is not None
                    and p.forward.ranking_probs is not None
                    and p.backward.ranking_probs is not None
                    for p in pairs
                ),
                accuracy=float(np.mean([1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins]))
                if margins
                else float("nan"),
                consistency=float(np.mean(consistent)) if consistent else None,
            )
        )
    return rows


def pair_table_markdown(rows: Sequence[PairRow]) -> list[str]:
    lines = [
        "| verdicts | pairs | judged | both orders with belief | pair accuracy | consistency |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        consistency = "–" if r.consistency is None else f"{r.consistency:.3f}"
        lines.append(f"| {r.mode} | {r.pairs} | {r.judged} | {r.with_belief} | {r.accuracy:.3f} | {consistency} |")
    return lines


# ---- the simulation -------------------------------------------------------------------------------------------


async def simulated_pairs(trials: int, share: float, seed: int) -> list[OrderedPair]:
    pairs = []
    for t in range(trials):
        quality = np.sort(np.random.default_rng([seed, 2, t]).normal(size=2))[::-1].copy()  # index 0 is better
        judges = BeliefJudges(quality, JudgeModel(), np.random.default_rng([seed, 2, t, 1]), share)
        forward, backward = await judges.pairwise(0, 1), await judges.pairwise(1, 0)
        pairs.append(OrderedPair(forward.verdict, backward.verdict))
    return pairs


async def group_cell(n: int, strategy: str, share: float, trials: int, seed: int) -> dict[str, tuple[float, ...]]:
    """Per mode: (Spearman ρ, its standard error, top-1 accuracy, consistency) over ``trials`` groups."""
    out: dict[str, list[tuple[float, float, float]]] = {m: [] for m in MODES}
    for t in range(trials):
        quality = np.random.default_rng([seed, n, t]).normal(size=n)
        for mode in MODES:  # the same judge noise for both modes: only the reading of the verdicts differs
            judges = BeliefJudges(quality, JudgeModel(), np.random.default_rng([seed, n, t, 1]), share)
            config = SelectionConfig(
                strategy=strategy,  # type: ignore[arg-type]
                use_principle=False,
                seed=t,
                verdicts=mode,
                strengths="bradley_terry",
            )
            result = await select_best(n, judges.pairwise, None, config)
            scores = [c.score for c in sorted(result.candidates, key=lambda c: c.index)]
            rho = spearmanr(scores, quality).statistic
            consistency = 1.0 - (result.swap_inconsistency or 0.0)
            out[mode].append(
                (0.0 if np.isnan(rho) else float(rho), float(result.best == int(np.argmax(quality))), consistency)
            )
    summary = {}
    for mode, rows in out.items():
        a = np.array(rows)
        summary[mode] = (a[:, 0].mean(), a[:, 0].std() / np.sqrt(len(a)), a[:, 1].mean(), a[:, 2].mean())
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--pair-trials", type=int, default=20000)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    lines = [
        "# Soft verdicts: the ranking belief against the sampled ranking",
        "",
        f"`python -m bench.soft_verdicts --trials {args.trials} --pair-trials {args.pair_trials}`: base simulated "
        "judge (s = 0.707, first-position bias b = 0.5), its margin noise split into belief noise and sampling noise "
        "σ²; the sampled ranking is a draw from the belief, which is reported as logprobs. The same groups and the "
        "same judge noise for both readings.",
    ]
    for share in args.shares:
        lines += [
            "",
            f"## sampling share σ² = {share:g}",
            "",
            f"N = 2, one pair in both orders, {args.pair_trials} pairs",
            "",
        ]
        lines += pair_table_markdown(pair_table(asyncio.run(simulated_pairs(args.pair_trials, share, args.seed))))
        for n, strategy in ((8, "swiss"), (8, "round_robin"), (16, "swiss")):
            lines += [
                "",
                f"N = {n}, {strategy.replace('_', '-')} + swap, {args.trials} groups",
                "",
                "| verdicts | Spearman ρ | top-1 accuracy | consistency |",
                "|---|---:|---:|---:|",
            ]
            cell = asyncio.run(group_cell(n, strategy, share, args.trials, args.seed))
            for mode, (rho, se, top1, consistency) in cell.items():
                lines.append(f"| {mode} | {rho:.3f} ± {se:.3f} | {top1:.3f} | {consistency:.3f} |")
        print("\n".join(lines), flush=True)
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soft_verdicts.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
