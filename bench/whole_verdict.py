"""Which form of the whole-verdict model (policies.whole_verdict) to use, and what it buys per judge call.

1. **Real both-order verdicts.** Our CPU quality judge's verdicts on 60 JudgeBench pairs (kept by
   ``python -m serve_app evaluate``, bench/results/judge_fit_cpu_quality), each pair judged in both orders: per form,
   the posterior P(labelled winner is stronger) of the pair's two calls, scored by pair accuracy and log-loss, with
   paired bootstrap intervals of each form's difference from the whole verdict (1:1).
2. **The frozen simulated judges** (bench/simulated_judges.py): Spearman ρ of each form on paired trials (the same
   groups and noise for every design) at N calls (circular, one order) and about 2N (Swiss, one order), against
   NVIDIA's rule at N and today's Swiss with both orders at 3N–4N, the issue's targets: at N, ρ at least 0.05 above
   NVIDIA's rule; at 2N, within 0.02 of Swiss with both orders.

    python -m bench.whole_verdict [--trials 1000] [--sizes 8 16] [--variants base ...]

Writes bench/results/whole_verdict.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import numpy as np
from scipy.stats import norm

from bench.judge_fit import OWN, judgebench_labels
from bench.rank_quality import Design, nvidia_circular, ours, trials_of
from bench.selection_rounds import paired
from bench.simulated_judges import VARIANTS
from deployments.hosting import cpu_model
from policies.debias import combine_orders
from policies.verdicts import PairVerdict
from policies.whole_verdict import fit_whole_verdict

RESULTS = Path(__file__).parent / "results"
#: (w_r, w_s): the ranking margin's and each helpfulness score's weight
FORMS = {
    "ranking only": (1.0, 0.0),
    "scores only": (0.0, 1.0),
    "whole verdict 1:1": (1.0, 1.0),
    "whole verdict 1:4": (0.25, 1.0),
}
REFERENCE_FORM = "whole verdict 1:1"


def _verdict(call: dict | None) -> PairVerdict | None:
    fields = (call or {}).get("verdict")
    if not fields:
        return None
    return PairVerdict.model_validate({k: v for k, v in fields.items() if k in PairVerdict.model_fields})


def real_pairs(outputs: Path, judgebench: Path) -> list[tuple[PairVerdict | None, PairVerdict | None, bool]]:
    """(verdict with A shown first, verdict with B shown first, A is the labelled winner) per JudgeBench pair."""
    labels = judgebench_labels(judgebench)
    pairs = []
    with outputs.open() as f:
        for item in map(json.loads, filter(str.strip, f)):
            calls = (item.get("pairwise") or {}).get("A|B") or {}
            if item.get("benchmark") == "judgebench" and item["item"] in labels:
                forward, backward = _verdict(calls.get("forward")), _verdict(calls.get("backward"))
                pairs.append((forward, backward, labels[item["item"]] == "A>B"))
    return pairs


def p_winner(
    forward: PairVerdict | None, backward: PairVerdict | None, a_wins: bool, form: tuple[float, float]
) -> float:
    """The form's posterior P(the labelled winner is the stronger) from the pair's two calls."""
    comparison = combine_orders(0, 1, forward, backward)
    fit = fit_whole_verdict(2, [comparison], w_margin=form[0], w_scores=form[1])
    gap = fit.theta[0] - fit.theta[1]
    sd = float(np.sqrt(fit.covariance[0, 0] + fit.covariance[1, 1] - 2 * fit.covariance[0, 1]))
    p_a = float(norm.cdf(gap / sd))
    return p_a if a_wins else 1.0 - p_a


def real_table(pairs: list[tuple[PairVerdict | None, PairVerdict | None, bool]], seed: int) -> list[str]:
    probs = {name: np.array([p_winner(f, b, a, form) for f, b, a in pairs]) for name, form in FORMS.items()}
    accuracy = {name: np.where(p > 0.5, 1.0, np.where(p == 0.5, 0.5, 0.0)) for name, p in probs.items()}
    loss = {name: -np.log(np.clip(p, 1e-9, 1.0)) for name, p in probs.items()}
    rng = np.random.default_rng(seed)
    boot = rng.integers(0, len(pairs), size=(2000, len(pairs)))

    def interval(values: dict[str, np.ndarray], name: str) -> str:
        d = values[name] - values[REFERENCE_FORM]
        means = d[boot].mean(axis=1)
        return f"{d.mean():+.3f} [{np.percentile(means, 2.5):+.3f}, {np.percentile(means, 97.5):+.3f}]"

    lines = [
        f"| form (w_r, w_s) | pair accuracy | log-loss | accuracy − {REFERENCE_FORM} | log-loss − {REFERENCE_FORM} |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, form in FORMS.items():
        lines.append(
            f"| {name} {form} | {accuracy[name].mean():.3f} | {loss[name].mean():.3f} | "
            f"{interval(accuracy, name)} | {interval(loss, name)} |"
        )
    return lines


NVIDIA = "NVIDIA circular, 1 order, mean score"
SWISS_SWAP = "swiss + swap (today's cohort default)"


def _whole(name: str) -> dict[str, object]:
    """The SelectionConfig fields of whole-verdict strengths in form ``name`` (FORMS)."""
    w_r, w_s = FORMS[name]
    return {"strengths": "whole_verdict", "whole_verdict_margin_weight": w_r, "whole_verdict_score_weight": w_s}


def simulated_designs() -> dict[str, tuple[Design, str]]:
    """name -> (design, budget label)."""
    out: dict[str, tuple[Design, str]] = {
        "NVIDIA circular, 1 order, mean score": (nvidia_circular(), "N"),
        "circular, 1 order, Bradley–Terry (today)": (ours("circular", swap=False), "N"),
    }
    for name in FORMS:
        out[f"circular, 1 order, {name}"] = (ours("circular", swap=False, **_whole(name)), "N")
    out["swiss, 1 order, + position bias (pooled; today)"] = (ours("swiss", swap=False, position="pooled"), "2N")
    for name in FORMS:
        out[f"swiss, 1 order, {name}"] = (ours("swiss", swap=False, **_whole(name)), "2N")
    for name in ("scores only", "whole verdict 1:4"):
        # more Swiss rounds than log2 N, cut at 2N calls: the budget, not the round count, ends it
        out[f"swiss to 2N, 1 order, {name}"] = (
            ours("swiss", swap=False, budget=2, swiss_rounds=64, **_whole(name)),
            "2N",
        )
    out[SWISS_SWAP] = (ours("swiss"), "3N–4N")
    for name in ("scores only", "whole verdict 1:4", "whole verdict 1:1"):
        out[f"swiss + swap, {name}"] = (ours("swiss", **_whole(name)), "3N–4N")
    return out


def _verdict_on(difference: float, half_width: float, target: float) -> str:
    """Whether a paired difference (mean ± half_width, 95%) reaches ``target``: met when the whole interval does."""
    if difference - half_width >= target:
        return f"**met** (≥ {target:+.2f})"
    if difference >= target:
        return f"not shown (interval reaches {difference - half_width:+.3f})"
    return f"missed by {target - difference:.3f}"


async def simulated(variant: str, n: int, trials: int, seed: int) -> list[str]:
    model = VARIANTS[variant]
    runs = {name: await trials_of(design, n, trials, seed, model) for name, (design, _) in simulated_designs().items()}
    budgets = {name: budget for name, (_, budget) in simulated_designs().items()}
    lines = [
        "",
        f"`{variant}`, N = {n}, {trials} paired trials",
        "",
        "| design | budget | calls | Spearman ρ | − NVIDIA's rule | − Swiss + swap | target |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    nvidia, swiss_swap = runs[NVIDIA][0], runs[SWISS_SWAP][0]
    for name, (rhos, calls) in runs.items():
        d_nvidia = rhos - nvidia
        d_swap = rhos - swiss_swap
        half_n = 1.96 * d_nvidia.std(ddof=1) / np.sqrt(trials)
        half_s = 1.96 * d_swap.std(ddof=1) / np.sqrt(trials)
        target = ""
        if budgets[name] == "N" and name != NVIDIA:
            target = _verdict_on(d_nvidia.mean(), half_n, 0.05)
        elif budgets[name] == "2N":
            target = _verdict_on(d_swap.mean(), half_s, -0.02)
        lines.append(
            f"| {name} | {budgets[name]} | {calls.mean():.1f} | {rhos.mean():.3f} | {paired(rhos, nvidia)} | "
            f"{paired(rhos, swiss_swap)} | {target} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=RESULTS / "whole_verdict.md")
    args = parser.parse_args(argv)
    outputs, judgebench = OWN["cpu_quality_qwen_1_5b"]
    pairs = real_pairs(outputs, judgebench)
    lines = [
        "# The whole verdict: which form, and what it buys per call",
        "",
        f"`python -m bench.whole_verdict --trials {args.trials}` (CPU: {cpu_model()}; a simulation: the numbers do "
        "not depend on it).",
        "",
        f"## Real both-order verdicts: {len(pairs)} JudgeBench pairs, our CPU quality judge",
        "",
        "Per pair, the form's posterior P(labelled winner stronger) from its two calls (one in each order); "
        "intervals: 95% paired bootstrap.",
        "",
        *real_table(pairs, args.seed),
        "",
        "## Simulated judges",
        "",
        "Differences are paired (the same groups and judge noise), mean ± 95% interval.",
    ]
    for variant in args.variants:
        for n in args.sizes:
            block = asyncio.run(simulated(variant, n, args.trials, args.seed))
            print("\n".join(block), flush=True)
            lines += block
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
