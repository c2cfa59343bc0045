"""A simulated judge fitted to real both-order verdicts: the published JudgeBench judgments in ../shared/data.

Each JudgeBench pair has a labelled winner W and loser L and was judged twice, once in each order, by a real judge
(o1-mini with the Arena-Hard prompt; Skywork-Reward-Gemma-2-27B, a reward model). Each judgment says which shown
response is better, or a tie. The model is bench/simulated_judges.py's, with one addition real judges need — an
error that belongs to the pair and repeats in both orders (a judge that misreads a pair misreads it either way):

    m_{W first} =  s·g + b + u + ε₁,     m_{L first} = −s·g + b − u + ε₂,
    g = q_W − q_L ~ half-normal(√2),     u ~ N(0, ρ),     ε_k ~ N(0, 1 − ρ),

where s is the judge's strength, b its first-position bias, ρ the share of its noise that belongs to the pair. A
judgment says "first better" when m > t, "second better" when m < −t and a tie in between (t: the tie band). The
two judgments of a pair share g and u, so the model gives the probability of each of the 3 × 3 joint outcomes:

    P(o₁, o₂) = E_{g,u}[ P(o₁ | s·g + b + u) · P(o₂ | −s·g + b − u) ],

taken by quadrature (Gauss–Legendre over g's half-normal quantiles, Gauss–Hermite over u). (s, b, t, ρ) maximise
the multinomial likelihood of the observed joint outcomes. The noise's total variance is fixed at 1 (its scale and
s are not separately identified), and the gap's spread is the simulator's (qualities N(0, 1)), so s is the
strength at JudgeBench's difficulty. The simulator uses s, b and ρ (its rankings have no tie, so t is fitted only
to explain the observed ties).

    python -m bench.judge_fit

Writes bench/results/judge_fit.md: the fitted parameters, the observed and fitted joint outcomes, and whether the
frozen variants in bench/simulated_judges.py (``FITTED``) are these fits.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize, special, stats

from bench.simulated_judges import FITTED, VARIANTS
from serve_app.local_service import shared_path

RESULTS = Path(__file__).parent / "results"
DATA = shared_path("data", "judgebench", "outputs")
SOURCES = {
    "judgebench_o1_mini": "gpt-4o_arena_hard_o1-mini.jsonl",
    "judgebench_skywork_rm": "gpt-4o_reward_model_Skywork-Reward-Gemma-2-27B.jsonl",
}
#: both-order verdicts of the CPU quality config's judge on JudgeBench pairs, kept by ``python -m serve_app evaluate``
#: (its outputs.jsonl, beliefs included), and the JudgeBench file whose labels they are scored against
OWN = {
    "cpu_quality_qwen_1_5b": (
        Path(__file__).parent / "results" / "judge_fit_cpu_quality" / "outputs.jsonl",
        shared_path("data", "judgebench", "judgebench_gpt-4o-2024-05-13.jsonl"),
    )
}
OUTCOMES = ("W", "T", "L")  # the labelled winner judged better, a tie, the loser judged better
_G_NODES, _G_WEIGHTS = np.polynomial.legendre.leggauss(48)
_U_NODES, _U_WEIGHTS = special.roots_hermitenorm(24)


@dataclass(frozen=True)
class Fit:
    strength: float  # s
    bias: float  # b
    tie_band: float  # t
    pair_share: float  # ρ
    pairs: int
    log_likelihood: float
    stderr: tuple[float, float, float, float] = (float("nan"),) * 4  # from the curvature at the optimum


def joint_outcomes(records: Iterable[dict]) -> Counter[tuple[str, str]]:
    """(outcome with W shown first, outcome with L shown first) per pair with both judgments readable. In the
    files ``judgments[0]`` shows A first and ``judgments[1]`` shows B first, its decision in that swapped
    orientation ("A>B": the first shown, B, is better)."""
    counts: Counter[tuple[str, str]] = Counter()
    for record in records:
        a_first, b_first = (j.get("decision") for j in record["judgments"][:2])
        if a_first not in ("A>B", "B>A", "A=B") or b_first not in ("A>B", "B>A", "A=B"):
            continue

        def said(decision: str, first_is_winner: bool) -> str:
            if decision == "A=B":
                return "T"
            return "W" if (decision == "A>B") == first_is_winner else "L"

        a_wins = record["label"] == "A>B"
        by_order = {"A": said(a_first, a_wins), "B": said(b_first, not a_wins)}
        counts[(by_order["A"], by_order["B"]) if a_wins else (by_order["B"], by_order["A"])] += 1
    return counts


def read(path: Path) -> Counter[tuple[str, str]]:
    with path.open() as f:
        return joint_outcomes(json.loads(line) for line in f if line.strip())


def judgebench_labels(judgebench: Path) -> dict[str, str]:
    """pair_id -> "A>B" or "B>A", from a JudgeBench file."""
    with judgebench.open() as f:
        return {r["pair_id"]: r["label"] for r in map(json.loads, filter(str.strip, f))}


def read_evaluation(outputs: Path, judgebench: Path) -> Counter[tuple[str, str]]:
    """The joint outcomes of our own judge's both-order verdicts (an evaluation's outputs.jsonl) on JudgeBench
    pairs. A verdict's sampled ranking decides (1–3: the first shown is better); the scale has no tie."""
    labels = judgebench_labels(judgebench)
    records = []
    with outputs.open() as f:
        for item in map(json.loads, filter(str.strip, f)):
            pair = (item.get("pairwise") or {}).get("A|B") or {}
            if item.get("benchmark") != "judgebench" or item["item"] not in labels:
                continue

            def decision(call: dict | None) -> str | None:
                ranking = ((call or {}).get("verdict") or {}).get("ranking")
                return None if ranking is None else "A>B" if ranking <= 3 else "B>A"

            # the backward call showed B first, and its decision is in that orientation, as in the published files
            judgments = [{"decision": decision(pair.get("forward"))}, {"decision": decision(pair.get("backward"))}]
            records.append({"label": labels[item["item"]], "judgments": judgments})
    return joint_outcomes(records)


def _outcome_probs(m: np.ndarray, tie_band: float, sd: float) -> np.ndarray:
    """P(first better), P(tie), P(second better) for margins ``m`` before the call's noise (sd ``sd``); stacked on
    a new last axis."""
    above = stats.norm.sf((tie_band - m) / sd)
    below = stats.norm.cdf((-tie_band - m) / sd)
    return np.stack([above, 1.0 - above - below, below], axis=-1)


def cell_probabilities(strength: float, bias: float, tie_band: float, pair_share: float) -> np.ndarray:
    """The 3 × 3 matrix P(o_W-first, o_L-first) over ``OUTCOMES`` (rows: W shown first; columns: L shown first)."""
    gap = np.sqrt(2.0) * stats.norm.ppf(0.5 + 0.5 * (0.5 + 0.5 * _G_NODES))  # half-normal quantiles at the nodes
    u = np.sqrt(pair_share) * _U_NODES
    sd = np.sqrt(max(1.0 - pair_share, 1e-9))
    g, uu = np.meshgrid(gap, u, indexing="ij")
    first = _outcome_probs(strength * g + bias + uu, tie_band, sd)  # W first: "first better" is W
    second = _outcome_probs(-strength * g + bias - uu, tie_band, sd)[..., ::-1]  # L first: reorder to W, T, L
    weights = np.outer(_G_WEIGHTS / 2.0, _U_WEIGHTS / np.sqrt(2 * np.pi))
    return np.einsum("gu,gua,gub->ab", weights, first, second)


def _matrix(counts: Counter[tuple[str, str]]) -> np.ndarray:
    return np.array([[counts.get((a, b), 0) for b in OUTCOMES] for a in OUTCOMES], dtype=np.float64)


def fit(counts: Counter[tuple[str, str]]) -> Fit:
    """Maximum-likelihood (s, b, t, ρ) for the joint outcomes ``counts``."""
    observed = _matrix(counts)

    def nll(x: np.ndarray) -> float:
        p = cell_probabilities(*x)
        return -float(np.sum(observed * np.log(np.clip(p, 1e-12, None))))

    bounds = [(0.01, 5.0), (-3.0, 3.0), (0.0, 2.0), (0.0, 0.995)]
    best = min(
        (optimize.minimize(nll, np.array(x0), method="L-BFGS-B", bounds=bounds) for x0 in _starts()),
        key=lambda r: r.fun,
    )
    s, b, t, rho = (float(v) for v in best.x)
    return Fit(s, b, t, rho, int(observed.sum()), -float(best.fun), _stderr(nll, best.x, bounds))


def _stderr(nll: Callable[[np.ndarray], float], x: np.ndarray, bounds: list[tuple[float, float]]) -> tuple:
    """Standard errors from the inverse of a central-difference Hessian of the negative log-likelihood; nan for a
    parameter at its bound (its curvature there says nothing)."""
    h = 1e-3
    free = [k for k, (lo, hi) in enumerate(bounds) if lo + 2 * h < x[k] < hi - 2 * h]
    out = [float("nan")] * len(x)
    if not free:
        return tuple(out)

    def at(i: int, j: int, di: float, dj: float) -> float:
        y = x.copy()
        y[i] += di
        y[j] += dj
        return nll(y)

    hess = np.zeros((len(free), len(free)))
    for a, i in enumerate(free):
        for b, j in enumerate(free):
            hess[a, b] = (at(i, j, h, h) - at(i, j, h, -h) - at(i, j, -h, h) + at(i, j, -h, -h)) / (4 * h * h)
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return tuple(out)
    for a, k in enumerate(free):
        out[k] = float(np.sqrt(cov[a, a])) if cov[a, a] > 0 else float("nan")
    return tuple(out)


def _starts() -> list[tuple[float, float, float, float]]:
    return [(0.7, 0.3, 0.1, 0.3), (0.3, 0.0, 0.05, 0.7), (1.0, 0.5, 0.2, 0.05)]


def one_call_accuracy(strength: float, bias: float, pair_share: float) -> float:
    """P(a call prefers the better response), averaged over both orders, the simulator's way (no tie band)."""
    p = cell_probabilities(strength, bias, 0.0, pair_share)
    return float(0.5 * (p[0, :].sum() + p[:, 0].sum()))


def report(fits: dict[str, tuple[Fit, Counter[tuple[str, str]]]]) -> str:
    lines = [
        "# A simulated judge fitted to real both-order verdicts (bench/judge_fit.py)",
        "",
        "`python -m bench.judge_fit`: both-order judgments of JudgeBench pairs (GPT-4o split) fitted by maximum "
        "likelihood to the model in bench/judge_fit.py's docstring: strength s, first-position bias b, tie band t, "
        "and ρ, the share of the judge's noise that belongs to the pair and repeats in both orders (± a standard "
        "error from the likelihood's curvature; none for a parameter at its bound). The published judgments of "
        "two judges (../shared/data/judgebench/outputs, 350 pairs) and our CPU quality config's own "
        "(configs/cpu-quality.yaml's Qwen2.5-Coder-1.5B as the pairwise judge alone, `python -m serve_app "
        "evaluate` on a sample of the pairs; its outputs, beliefs included, in judge_fit_cpu_quality/). The "
        "simulator's base judge is s 0.707, b 0.5, ρ 0.",
        "",
        "| judge | pairs | s | b | t | ρ | one call right (simulator, no ties) | frozen variant matches |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, (f, _) in fits.items():
        frozen = FITTED[name]
        same = all(
            abs(a - b) < 0.01
            for a, b in ((f.strength, frozen.strength), (f.bias, frozen.bias), (f.pair_share, frozen.pair_noise))
        )
        values = (f.strength, f.bias, f.tie_band, f.pair_share)
        cells = " | ".join(_with_se(v, se) for v, se in zip(values, f.stderr, strict=True))
        lines.append(
            f"| `{name}` | {f.pairs} | {cells} | {one_call_accuracy(f.strength, f.bias, f.pair_share):.3f} | "
            f"{'yes' if same else 'NO'} |"
        )
    lines += ["", "Joint outcomes (rows: the winner shown first; columns: the loser shown first), observed / fitted:"]
    for name, (f, counts) in fits.items():
        observed = _matrix(counts)
        expected = cell_probabilities(f.strength, f.bias, f.tie_band, f.pair_share) * observed.sum()
        lines += ["", f"`{name}`:", "", "| W first \\ L first | winner | tie | loser |", "|---|---:|---:|---:|"]
        for i, a in enumerate(("winner", "tie", "loser")):
            cells = " | ".join(f"{observed[i, j]:.0f} / {max(expected[i, j], 0.0):.1f}" for j in range(3))
            lines.append(f"| {a} | {cells} |")
    base = VARIANTS["base"]
    lines += [
        "",
        f"For comparison, the base judge's joint outcomes per 100 pairs (winner/winner, winner/loser, loser/winner, "
        f"loser/loser): {_four(base.strength, base.bias, base.pair_noise)}; o1-mini's fit: "
        f"{_four(*(lambda f: (f.strength, f.bias, f.pair_share))(fits['judgebench_o1_mini'][0]))}.",
        "",
    ]
    return "\n".join(lines)


def _with_se(value: float, se: float) -> str:
    return f"{value:.3f}" if not np.isfinite(se) else f"{value:.3f} ± {se:.3f}"


def _four(strength: float, bias: float, pair_share: float) -> str:
    p = cell_probabilities(strength, bias, 0.0, pair_share) * 100
    return ", ".join(f"{p[i, j]:.0f}" for i, j in ((0, 0), (0, 2), (2, 0), (2, 2)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the folder of the published JudgeBench outputs")
    args = parser.parse_args(argv)
    fits = {}
    sources = {name: (lambda file=file: read(args.data / file)) for name, file in SOURCES.items()}
    sources |= {name: (lambda paths=paths: read_evaluation(*paths)) for name, paths in OWN.items()}
    for name, load in sources.items():
        counts = load()
        fits[name] = (fit(counts), counts)
        print(name, fits[name][0], flush=True)
    text = report(fits)
    (RESULTS / "judge_fit.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
