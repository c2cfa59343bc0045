"""The quality table: every way of reading the judges, scored on one run of real records.

One seeded sample of real records (RM-Bench chat and safety, JudgeBench GPT-4o split) goes through a running
service with the evaluation runner, which stores each item's raw judge answers (both orders of every pair, with
the ranking belief when the engine returned logprobs, and the principle rewards). Every method below is then
scored from those stored answers alone, so they are compared on the same judge noise and cost nothing extra:

- pairwise, one order: the forward call only (RM-Bench shows the chosen response first, JudgeBench shows A first),
  and the expectation over a random order (the mean of the forward-only and backward-only scores);
- pairwise, both orders, sampled rankings, debiased (:func:`policies.debias.combine_orders`, ``verdicts="sampled"``);
- the same with soft verdicts (``verdicts="soft"``: the expected margin of the ranking belief);
- pairwise, both orders, each order its own verdict (JudgeBench's rule, as the evaluation report scores it);
- principle only (reward difference); the ensemble (the runner's scoring: the router's selection code);
- style control: one 2-response pair cannot separate style from quality, so the style effect β is fitted once on
  all the run's pairs (:func:`bench.style_control.style_effect_of_records`, soft outcomes) and each pair's
  verdict is read with that effect removed; a cross-fitted variant fits β without the pair's own record.

Sample: per set, the records whose characters (prompt plus all responses) are at most the cap, in a seeded random
order, the first K of them (a larger K extends a smaller one, so a run can grow and resume).

    python -m bench.quality_table --url http://127.0.0.1:8000 [--rmbench-chat 8] [--rmbench-safety 8] \
        [--judgebench 10] [--seed 0] --out DIR [--report-only]

Writes DIR/outputs.jsonl (the runner's store), DIR/timing.json, DIR/quality_table.json and the Markdown table
(default bench/results/quality_table.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from scipy.stats import binomtest

from bench.style_control import StyleJudgedPair, style_effect_of_records
from policies.debias import combine_results
from policies.style import FEATURES, StyleEffect, style_features
from policies.verdicts import MAX_MARGIN, PairVerdict, PairwiseResult, PrincipleResult, VerdictMode, mean_reward
from serve_app.evaluation import metrics
from serve_app.evaluation.records import JudgeBenchRecord, RMBenchRecord, item_id, load_records
from serve_app.evaluation.runner import (
    EvaluationRequest,
    EvaluationService,
    OutputStore,
    Pair,
    ensemble_margin,
    evaluate,
    run_models,
)
from serve_app.local_service import shared_path

ROOT = Path(__file__).resolve().parents[1]
DATA = shared_path("data")
RMBENCH_FILES: dict[str, tuple[str, ...]] = {
    "chat": ("rmbench/chat_filtered.json",),
    "safety": ("rmbench/safety-refuse_filtered.json", "rmbench/safety-response_filtered.json"),
}
JUDGEBENCH_FILE = "judgebench/judgebench_gpt-4o-2024-05-13.jsonl"
TABLE = ROOT / "bench" / "results" / "quality_table.md"
BOOTSTRAP = 2000
#: fewest records per domain for a bootstrap interval
MIN_BOOTSTRAP = 5

# --- the sample ------------------------------------------------------------------------------------------------


def record_chars(record: RMBenchRecord | JudgeBenchRecord) -> int:
    """Characters the judges read for one record, across all its responses (the cost driver on CPU)."""
    if isinstance(record, RMBenchRecord):
        return len(record.prompt) + sum(len(t) for t in (*record.chosen, *record.rejected))
    return len(record.question) + len(record.response_A) + len(record.response_B)


def pick(records: Sequence[Any], k: int, seed: Sequence[int], max_chars: int) -> list[Any]:
    """The first ``k`` records under the cap in a seeded random order: a prefix, so a larger k extends a smaller."""
    pool = [r for r in records if record_chars(r) <= max_chars]
    order = np.random.default_rng(list(seed)).permutation(len(pool))
    return [pool[i] for i in order[:k]]


@dataclass(frozen=True)
class RecordSample:
    chat: int = 8
    safety: int = 8
    judgebench: int = 10
    seed: int = 0
    rmbench_max_chars: int = 4000
    judgebench_max_chars: int = 3000


def select(sample: RecordSample, data: Path = DATA) -> dict[str, list[Any]]:
    """The run's records per benchmark. RM-Bench ids are prefixed with their file's domain: the per-domain files
    reuse ids, and the runner keys its store by id."""
    rmbench: list[RMBenchRecord] = []
    for index, (domain, files) in enumerate(RMBENCH_FILES.items()):
        pooled = [
            r.model_copy(update={"id": f"{r.domain}/{r.id}"})
            for name in files
            for r in load_records(data / name, "rmbench")
        ]
        rmbench += pick(pooled, getattr(sample, domain), (sample.seed, index), sample.rmbench_max_chars)
    judgebench = load_records(data / JUDGEBENCH_FILE, "judgebench")
    picked = pick(judgebench, sample.judgebench, (sample.seed, 2), sample.judgebench_max_chars)
    return {k: v for k, v in (("rmbench", rmbench), ("judgebench", picked)) if v}


# --- the run ---------------------------------------------------------------------------------------------------


def sizes(selected: dict[str, list[Any]]) -> dict[str, int]:
    """Records per set: RM-Bench chat, RM-Bench safety (both files), JudgeBench."""
    rmbench = [metrics.rmbench_domain(r.domain) for r in selected.get("rmbench", [])]
    return {
        "chat": rmbench.count("chat"),
        "safety": rmbench.count("safety"),
        "judgebench": len(selected.get("judgebench", [])),
    }


class TimedService(EvaluationService):
    """The runner's client, adding up how long each kind of call took (for the time each method costs)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.seconds = {"principle": 0.0, "compare": 0.0}

    async def principle(self, *args: Any, **kwargs: Any) -> list[PrincipleResult] | None:
        started = time.monotonic()
        try:
            return await super().principle(*args, **kwargs)
        finally:
            self.seconds["principle"] += time.monotonic() - started

    async def compare(self, *args: Any, **kwargs: Any) -> Pair | None:
        started = time.monotonic()
        try:
            return await super().compare(*args, **kwargs)
        finally:
            self.seconds["compare"] += time.monotonic() - started


def run(url: str, selected: dict[str, list[Any]], out: Path) -> None:
    """Send what is not yet stored in ``out``; adds this invocation's wall and call times to out/timing.json."""
    out.mkdir(parents=True, exist_ok=True)
    timing_path = out / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    already = len(OutputStore(out).done)
    # The runner reads files; the sample lives in a temporary copy outside the repository only for the run.
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for benchmark, records in selected.items():
            path = Path(tmp) / f"{benchmark}.jsonl"
            path.write_text("".join(json.dumps(r.model_dump(mode="json")) + "\n" for r in records))
            files[benchmark] = path
        svc = TimedService(url)
        started = time.monotonic()
        asyncio.run(evaluate(EvaluationRequest(files=files, out=out), url, service=svc))  # type: ignore[arg-type]
        wall = time.monotonic() - started
    sent = len(OutputStore(out).done) - already
    timing = {
        "wall_s": timing.get("wall_s", 0.0) + wall,
        "items_sent": timing.get("items_sent", 0) + sent,
        "principle_s": timing.get("principle_s", 0.0) + svc.seconds["principle"],
        "compare_s": timing.get("compare_s", 0.0) + svc.seconds["compare"],
        "refusals": dict(Counter(timing.get("refusals", {})) + svc.refusals),
        # A run grown in steps (the sample is a prefix) keeps each step's size and time.
        "invocations": [
            *timing.get("invocations", []),
            {"sizes": sizes(selected), "wall_s": wall, "items_sent": sent},
        ],
    }
    timing_path.write_text(json.dumps(timing, indent=1))


# --- the stored pairs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredPair:
    """One labelled pair as the runner stored it: the forward call showed ``first`` first."""

    benchmark: str
    item: str
    group: str  # RM-Bench domain as in the record, or JudgeBench source
    first: str
    second: str
    first_is_better: bool
    pair: Pair | None
    principle_first: list[PrincipleResult] | None
    principle_second: list[PrincipleResult] | None
    cell: tuple[int, int] | None = None  # RM-Bench (chosen style i, rejected style j)

    @property
    def better(self) -> str:
        return self.first if self.first_is_better else self.second

    @property
    def worse(self) -> str:
        return self.second if self.first_is_better else self.first


def stored_pairs(selected: dict[str, list[Any]], store: OutputStore) -> list[StoredPair]:
    pairs = []
    for r in selected.get("rmbench", []):
        out = store.done.get(("rmbench", item_id(r)))
        if out is None:
            continue
        for i in range(3):
            for j in range(3):
                pairs.append(
                    StoredPair(
                        "rmbench",
                        r.id,
                        r.domain,
                        r.chosen[i],
                        r.rejected[j],
                        True,
                        out.pairwise.get(f"c{i}|r{j}"),
                        out.principle.get(f"c{i}"),
                        out.principle.get(f"r{j}"),
                        (i, j),
                    )
                )
    for r in selected.get("judgebench", []):
        out = store.done.get(("judgebench", item_id(r)))
        if out is None:
            continue
        pairs.append(
            StoredPair(
                "judgebench",
                r.pair_id,
                r.source,
                r.response_A,
                r.response_B,
                r.label == "A>B",
                out.pairwise.get("A|B"),
                out.principle.get("A"),
                out.principle.get("B"),
            )
        )
    return pairs


def _verdict(result: PairwiseResult | None) -> PairVerdict | None:
    return None if result is None else result.verdict


def _orders(p: StoredPair) -> tuple[PairVerdict | None, PairVerdict | None]:
    """(forward, backward) verdicts; forward shows ``first`` first."""
    return (_verdict(p.pair.forward), _verdict(p.pair.backward)) if p.pair is not None else (None, None)


def _better_first(p: StoredPair) -> tuple[PairVerdict | None, PairVerdict | None]:
    """The two verdicts reoriented: the first of them shows the better response first."""
    fwd, bwd = _orders(p)
    return (fwd, bwd) if p.first_is_better else (bwd, fwd)


def _for_better(p: StoredPair, preference_for_first: float | None) -> float | None:
    if preference_for_first is None:
        return None
    return preference_for_first if p.first_is_better else -preference_for_first


def _combined(p: StoredPair, mode: VerdictMode) -> float | None:
    """The two orders' debiased margin for the first response."""
    if p.pair is None:
        return None
    return combine_results(0, 1, [p.pair.forward], [p.pair.backward], verdicts=mode).margin


def consistent(p: StoredPair, mode: VerdictMode) -> bool | None:
    """Whether both orders lean to the same response (None unless both orders answered)."""
    if p.pair is None:
        return None
    return combine_results(0, 1, [p.pair.forward], [p.pair.backward], verdicts=mode).consistent


# --- the methods -----------------------------------------------------------------------------------------------

#: (key, row label), in table order; "random_order" is the mean of the forward-only and backward-only scores.
METHODS: tuple[tuple[str, str], ...] = (
    ("forward", "pairwise, one order (forward call: chosen / A shown first)"),
    ("random_order", "pairwise, one order, random (mean of forward-only and backward-only)"),
    ("sampled", "pairwise, both orders, sampled, debiased"),
    ("soft", "pairwise, both orders, soft (belief's expected margin), debiased"),
    ("two_verdicts", "pairwise, both orders, each its own verdict (JudgeBench's rule)"),
    ("principle", "principle only (reward difference)"),
    ("ensemble", "ensemble (router's selection: both orders + principle)"),
    ("style", "style control: both orders sampled, pooled β removed"),
    ("style_crossfit", "style control, cross-fitted (β fitted without the pair's record)"),
)
#: judge calls per RM-Bench record (9 pairs, 6 responses) and per JudgeBench pair, by method
CALLS: dict[str, tuple[int, int]] = {
    "forward": (9, 1),
    "random_order": (9, 1),
    "sampled": (18, 2),
    "soft": (18, 2),
    "two_verdicts": (18, 2),
    "principle": (6, 2),
    "ensemble": (24, 4),
    "style": (18, 2),
    "style_crossfit": (18, 2),
}
#: share of the run's (principle, compare) call time each method needs: one order is half of a compare request
TIME_SHARE: dict[str, tuple[float, float]] = {
    "forward": (0, 0.5),
    "random_order": (0, 0.5),
    "sampled": (0, 1),
    "soft": (0, 1),
    "two_verdicts": (0, 1),
    "principle": (1, 0),
    "ensemble": (1, 1),
    "style": (0, 1),
    "style_crossfit": (0, 1),
}


def _judged_pairs(pairs: Sequence[StoredPair]) -> list[StyleJudgedPair]:
    return [StyleJudgedPair(p.better, p.worse, *_better_first(p)) for p in pairs]


def _raw_features(texts: Sequence[str]) -> np.ndarray:
    return np.array([[style_features(t)[k] for k in FEATURES] for t in texts], dtype=np.float64).reshape(
        -1, len(FEATURES)
    )


def style_offsets(effect: StyleEffect, train: Sequence[StoredPair], pairs: Sequence[StoredPair]) -> list[float]:
    """βᵀ(z_better − z_worse) for each of ``pairs``, with z standardised as the fit standardised it: over the
    texts of the pairs it was fitted on that had a verdict."""
    fitted = [p for p in train if _combined(p, "sampled") is not None]
    if not effect.fitted or not fitted or not pairs:
        return [0.0] * len(pairs)
    raw = _raw_features([t for p in fitted for t in (p.better, p.worse)])
    centre, spread = raw.mean(axis=0), raw.std(axis=0)
    beta = np.array([effect.coefficients.get(k, 0.0) for k in FEATURES])
    scale = np.where(spread > 1e-12, spread, np.inf)  # a constant feature standardises to 0, as in the fit
    better = (_raw_features([p.better for p in pairs]) - centre) / scale
    worse = (_raw_features([p.worse for p in pairs]) - centre) / scale
    return ((better - worse) @ beta).tolist()


def style_free(margin: float | None, offset: float) -> float | None:
    """The pair's preference for the better response once the style effect is removed.

    Under the pooled model the pair's soft outcome y = (m + 2.5)/5 satisfies logit(y) = d + βᵀΔz, so the
    style-free preference d is positive exactly when y > σ(βᵀΔz); returned as y − σ(βᵀΔz) (its sign is the
    verdict; a unanimous margin of ±2.5 cannot be overturned).
    """
    if margin is None:
        return None
    return (margin + MAX_MARGIN) / (2 * MAX_MARGIN) - float(expit(offset))


@dataclass
class Preferences:
    """Per method, one preference for the better response per stored pair (> 0: right; None: no verdict)."""

    values: dict[str, list[float | None]]
    effect: StyleEffect
    crossfit_betas: list[dict[str, float]] = field(default_factory=list)


def preferences(pairs: Sequence[StoredPair]) -> Preferences:
    values: dict[str, list[float | None]] = {}
    fwd = [_orders(p)[0] for p in pairs]
    bwd = [_orders(p)[1] for p in pairs]
    values["forward"] = [_for_better(p, v.margin if v else None) for p, v in zip(pairs, fwd, strict=True)]
    values["backward"] = [
        _for_better(p, -v.margin if v and v.margin is not None else None) for p, v in zip(pairs, bwd, strict=True)
    ]
    values["sampled"] = [_for_better(p, _combined(p, "sampled")) for p in pairs]
    values["soft"] = [_for_better(p, _combined(p, "soft")) for p in pairs]
    principle = []
    for p in pairs:
        a, b = mean_reward(p.principle_first), mean_reward(p.principle_second)
        principle.append(_for_better(p, None if a is None or b is None else a - b))
    values["principle"] = principle
    values["ensemble"] = [_for_better(p, ensemble_margin(p.pair, p.principle_first, p.principle_second)) for p in pairs]
    # Style control: β from all the run's pairs, then (cross-fitted) from all pairs but the record's own.
    effect = style_effect_of_records(_judged_pairs(pairs), outcome_mode="soft")
    offsets = style_offsets(effect, pairs, pairs)
    values["style"] = [style_free(m, o) for m, o in zip(values["sampled"], offsets, strict=True)]
    crossfit: list[float | None] = [None] * len(pairs)
    betas = []
    for item in dict.fromkeys((p.benchmark, p.item) for p in pairs):
        inside = [k for k, p in enumerate(pairs) if (p.benchmark, p.item) == item]
        train = [p for p in pairs if (p.benchmark, p.item) != item]
        held = style_effect_of_records(_judged_pairs(train), outcome_mode="soft")
        betas.append(held.coefficients)
        for k, o in zip(inside, style_offsets(held, train, [pairs[k] for k in inside]), strict=True):
            crossfit[k] = style_free(values["sampled"][k], o)
    values["style_crossfit"] = crossfit
    return Preferences(values, effect, betas)


# --- scores ----------------------------------------------------------------------------------------------------


def _right(preference: float | None) -> bool | None:
    return None if preference is None else preference > 0


def rmbench_rows(pairs: Sequence[StoredPair], prefs: Sequence[float | None]) -> dict[str, tuple[str, list]]:
    """Per RM-Bench record: (domain, 3×3 cells) of one method (a tie or a missing verdict is wrong)."""
    rows: dict[str, tuple[str, list]] = {}
    for p, v in zip(pairs, prefs, strict=True):
        if p.benchmark != "rmbench" or p.cell is None:
            continue
        _, cells = rows.setdefault(p.item, (p.group, [[None] * 3 for _ in range(3)]))
        cells[p.cell[0]][p.cell[1]] = _right(v)
    return rows


def _ab(p: StoredPair, preference_for_better: float | None) -> metrics.Verdict | None:
    right = _right(preference_for_better)
    if right is None or preference_for_better == 0:
        return None
    a_better = p.first_is_better == right
    return "A>B" if a_better else "B>A"


def judgebench_rows(pairs: Sequence[StoredPair], prefs: Sequence[float | None]) -> list[tuple]:
    """(source, label, verdict, verdict) per JudgeBench pair: one verdict stands for both orders."""
    return [
        (p.group, "A>B" if p.first_is_better else "B>A", _ab(p, v), _ab(p, v))
        for p, v in zip(pairs, prefs, strict=True)
        if p.benchmark == "judgebench"
    ]


def two_verdict_rows(pairs: Sequence[StoredPair], prefs: Preferences) -> list[tuple]:
    """(source, label, forward verdict, backward verdict): each order counts, as JudgeBench scores it."""
    fwd, bwd = prefs.values["forward"], prefs.values["backward"]
    return [
        (p.group, "A>B" if p.first_is_better else "B>A", _ab(p, f), _ab(p, b))
        for p, f, b in zip(pairs, fwd, bwd, strict=True)
        if p.benchmark == "judgebench"
    ]


def _variants(method: str) -> tuple[str, ...]:
    """The preference lists a method's score averages: a random order is either order with probability ½."""
    return ("forward", "backward") if method == "random_order" else (method,)


@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    def text(self) -> str:
        if self.value is None:
            return "–"
        if self.low is None or self.high is None:
            return f"{self.value:.1f}"
        return f"{self.value:.1f} [{self.low:.0f}, {self.high:.0f}]"


def wilson(correct: int, n: int) -> Interval:
    """Binomial proportion in percent with its Wilson 95% interval."""
    if n == 0:
        return Interval(None)
    ci = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    return Interval(100 * correct / n, 100 * ci.low, 100 * ci.high, n)


def _resample(groups: dict[str, list[str]], rng: np.random.Generator) -> list[str]:
    """Records drawn with replacement within each domain (the overall is a mean of domains, so each keeps its n)."""
    return [ids[k] for ids in groups.values() for k in rng.integers(0, len(ids), len(ids))]


def _percentiles(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    low, high = np.percentile(present, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class MethodScores:
    rmbench: dict[str, Interval] = field(default_factory=dict)  # easy / normal / hard / overall / per domain
    judgebench: Interval = field(default_factory=lambda: Interval(None))
    consistency: dict[str, Interval] = field(default_factory=dict)  # per benchmark
    rmbench_vs_sampled: Interval = field(default_factory=lambda: Interval(None))
    judgebench_vs_sampled: Interval = field(default_factory=lambda: Interval(None))


RMBENCH_KEYS = ("easy", "normal", "hard", "overall")


def _rm_values(rows_by_variant: list[dict[str, tuple[str, list]]], ids: list[str]) -> dict[str, float]:
    """RM-Bench's official numbers (and per-domain accuracies) of one method over ``ids``, averaged over the
    method's variants (all of its numbers are means of cells, so the average is the random-order expectation)."""
    per = []
    for rows in rows_by_variant:
        s = metrics.rmbench_scores([rows[i] for i in ids])
        per.append({**{k: getattr(s, k) for k in RMBENCH_KEYS}, **{d: v.accuracy for d, v in s.domains.items()}})
    return {k: float(np.mean([p[k] for p in per])) for k in per[0]}


def _jb_value(rows_by_variant: list[dict[str, tuple]], ids: list[str]) -> float:
    return float(np.mean([metrics.judgebench_scores([rows[i] for i in ids]).accuracy for rows in rows_by_variant]))


def score(
    pairs: Sequence[StoredPair], prefs: Preferences, seed: int = 0, draws: int = BOOTSTRAP
) -> dict[str, MethodScores]:
    """Every method's numbers with 95% intervals (RM-Bench: bootstrap over records within domains; JudgeBench:
    Wilson, or the bootstrap for a mean of two orders) and its paired difference from the both-orders sampled
    reading. Every method is scored on the same resamples, so the differences are paired."""
    rm_ids: dict[str, list[str]] = {}
    for p in pairs:
        if p.benchmark == "rmbench":
            ids = rm_ids.setdefault(metrics.rmbench_domain(p.group), [])
            if p.item not in ids:
                ids.append(p.item)
    all_rm = [i for ids in rm_ids.values() for i in ids]
    jb_ids = [p.item for p in pairs if p.benchmark == "judgebench"]
    rng = np.random.default_rng(seed)
    # Resampling a handful of records only replays them: below MIN_BOOTSTRAP per domain no interval is given.
    rm_enough = bool(rm_ids) and min(len(ids) for ids in rm_ids.values()) >= MIN_BOOTSTRAP
    rm_draws = [_resample(rm_ids, rng) for _ in range(draws)] if rm_enough else []
    jb_draws = [_resample({"all": jb_ids}, rng) for _ in range(draws)] if len(jb_ids) >= MIN_BOOTSTRAP else []

    def rm_rows(method: str) -> list[dict[str, tuple[str, list]]]:
        return [rmbench_rows(pairs, prefs.values[v]) for v in _variants(method)]

    def jb_rows(method: str) -> list[dict[str, tuple]]:
        if method == "two_verdicts":
            return [dict(zip(jb_ids, two_verdict_rows(pairs, prefs), strict=True))]
        return [dict(zip(jb_ids, judgebench_rows(pairs, prefs.values[v]), strict=True)) for v in _variants(method)]

    ref_rm = [_rm_values(rm_rows("sampled"), d)["overall"] for d in rm_draws]
    ref_jb = [_jb_value(jb_rows("sampled"), d) for d in jb_draws]
    out: dict[str, MethodScores] = {}
    for method, _ in METHODS:
        s = MethodScores()
        if rm_ids and method != "two_verdicts":
            rows = rm_rows(method)
            point = _rm_values(rows, all_rm)
            boot = [_rm_values(rows, d) for d in rm_draws]
            for key, value in point.items():
                n = len(rm_ids[key]) if key in rm_ids else len(all_rm)
                s.rmbench[key] = Interval(value, *_percentiles([b[key] for b in boot]), n)
            diffs = [b["overall"] - r for b, r in zip(boot, ref_rm, strict=True)]
            s.rmbench_vs_sampled = Interval(
                point["overall"] - _rm_values(rm_rows("sampled"), all_rm)["overall"], *_percentiles(diffs), len(all_rm)
            )
        if jb_ids:
            rows_jb = jb_rows(method)
            boot_jb = [_jb_value(rows_jb, d) for d in jb_draws]
            if len(rows_jb) == 1:
                scores = metrics.judgebench_scores(list(rows_jb[0].values()))
                s.judgebench = wilson(scores.correct, scores.pairs)
            else:
                s.judgebench = Interval(_jb_value(rows_jb, jb_ids), *_percentiles(boot_jb), len(jb_ids))
            diffs = [b - r for b, r in zip(boot_jb, ref_jb, strict=True)]
            s.judgebench_vs_sampled = Interval(
                _jb_value(rows_jb, jb_ids) - _jb_value(jb_rows("sampled"), jb_ids), *_percentiles(diffs), len(jb_ids)
            )
        if method in ("sampled", "soft"):
            for benchmark in ("rmbench", "judgebench"):
                flags = [consistent(p, method) for p in pairs if p.benchmark == benchmark]  # type: ignore[arg-type]
                both = [f for f in flags if f is not None]
                if both:
                    s.consistency[benchmark] = wilson(sum(both), len(both))
        out[method] = s
    return out


def first_shown_share(pairs: Sequence[StoredPair], mode: VerdictMode) -> Interval:
    """How often a call's verdict favoured the response shown first (50%: no position bias)."""
    leans = [
        m > 0 for p in pairs for v in _orders(p) if v is not None and (m := v.margin_as(mode)) is not None and m != 0
    ]
    return wilson(sum(leans), len(leans))


def ensemble_against_soft(ensemble: Sequence[float | None], soft: Sequence[float | None]) -> tuple[int, int, int]:
    """(pairs where the soft margin is not 0, of which the ensemble agrees with it, soft ties the ensemble broke)."""
    both = [(e, s) for e, s in zip(ensemble, soft, strict=True) if e is not None and s is not None]
    decided = [(e, s) for e, s in both if s != 0]
    agree = sum(np.sign(e) == np.sign(s) for e, s in decided)
    return len(decided), agree, sum(e != 0 for e, s in both if s == 0)


def belief_concentration(pairs: Sequence[StoredPair]) -> tuple[int, int, float | None]:
    """(verdicts with a belief, of which > 99% on one ranking, median top probability)."""
    tops = [max(v.ranking_probs) for p in pairs for v in _orders(p) if v is not None and v.ranking_probs is not None]
    return len(tops), sum(t > 0.99 for t in tops), float(np.median(tops)) if tops else None


def steps(timing: dict[str, Any]) -> str:
    """The invocations a grown run took, as ': RM-Bench + JudgeBench items in seconds, …'."""
    runs = timing.get("invocations", [])
    if len(runs) < 2:
        return ""
    shown = [
        f"chat {r['sizes']['chat']} + safety {r['sizes']['safety']} + JudgeBench {r['sizes']['judgebench']} in "
        f"{r['wall_s']:.0f} s"
        for r in runs
    ]
    return ": " + ", then ".join(shown) + " (each later one resumed the earlier)"


def limits(rm_n: dict[str, int], jb_n: int) -> str:
    """The plain statement of what a sample this size can tell, with its numbers."""
    parts = []
    if jb_n:
        chance = wilson(jb_n // 2, jb_n)
        parts.append(
            f"With {jb_n} JudgeBench pairs even a 50% score has the interval [{chance.low:.0f}, {chance.high:.0f}]: "
            "the column can tell a reading far from chance, not one method a few points better than another."
        )
    small = [f"{d} {n}" for d, n in rm_n.items() if 0 < n < MIN_BOOTSTRAP]
    if small:
        parts.append(
            f"RM-Bench has too few records for an interval ({', '.join(small)}): each of its numbers is the "
            "answers of those few prompts (one record moves a domain's cell by 1/n of its range), so read them as "
            "what this judge did on these prompts, not as the benchmark's score."
        )
    parts.append(
        "The paired differences are the sharper test, since every method read the same answers, but they need "
        "hundreds of records to resolve a few points. The records come from the shorter part of each set (the "
        "length cap), so they are not a random sample of it, and the pooled style fit is made on the pairs it "
        "corrects (the cross-fitted row removes that optimism). A 1.5B judge's numbers show how the readings "
        "behave with a weak, position-biased judge: that soft verdicts, debiasing and style control run on real "
        "stored outputs and what they change. They do not predict a GenRM's published accuracy."
    )
    return " ".join(parts)


# --- the report ------------------------------------------------------------------------------------------------


def _display(path: Path) -> str:
    """A path for the table without this machine's layout: relative to the repository, else a placeholder."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return "OUT"


def report(
    argv: Sequence[str], sample: RecordSample, selected: dict[str, list[Any]], out: Path, draws: int = BOOTSTRAP
) -> tuple[str, dict[str, Any]]:
    store = OutputStore(out)
    pairs = stored_pairs(selected, store)
    if not pairs:
        raise SystemExit(f"no stored outputs for the selected records in {out}")
    prefs = preferences(pairs)
    scores = score(pairs, prefs, sample.seed, draws)
    timing = json.loads((out / "timing.json").read_text()) if (out / "timing.json").is_file() else {}
    models = sorted(set(run_models(out).values()))
    rm_records = {(p.item, metrics.rmbench_domain(p.group)) for p in pairs if p.benchmark == "rmbench"}
    rm_n = {d: sum(1 for _, dd in rm_records if dd == d) for d in ("chat", "safety")}
    jb_n = sum(p.benchmark == "judgebench" for p in pairs)
    total_s = timing.get("principle_s", 0.0) + timing.get("compare_s", 0.0)
    with_belief = (
        sum(v is not None and v.ranking_probs is not None for p in pairs for v in _orders(p)),
        sum(v is not None for p in pairs for v in _orders(p)),
    )

    def est_s(method: str) -> str:
        if not total_s or "wall_s" not in timing:
            return "–"
        share_p, share_c = TIME_SHARE[method]
        part = share_p * timing["principle_s"] + share_c * timing["compare_s"]
        return f"{timing['wall_s'] * part / total_s:.0f}"

    # The table shows the command that sent the records; a --report-only rebuild says so below it.
    rebuilt = "--report-only" in argv
    shown_args = [a for a in argv if a != "--report-only"]
    if rebuilt and "--url" not in shown_args and (out / "run.json").is_file():
        shown_args = ["--url", json.loads((out / "run.json").read_text())["service"], *shown_args]
    shown = " ".join(shlex.quote(_display(Path(a)) if Path(a).is_absolute() else a) for a in shown_args)
    lines = [
        "# Quality table: each reading of the judges on the same real records",
        "",
        f"`python -m bench.quality_table {shown}`" + (" (table rebuilt from the stored outputs)" if rebuilt else ""),
        "",
        f"- judge model(s), from /v1/models: {', '.join(f'`{m}`' for m in models) or 'unknown'}",
        f"- records: RM-Bench chat {rm_n['chat']}, safety {rm_n['safety']} (9 chosen × rejected pairs each; "
        f"≤ {sample.rmbench_max_chars} characters of prompt + 6 responses), JudgeBench GPT-4o split {jb_n} pairs "
        f"(≤ {sample.judgebench_max_chars} characters of question + 2 responses); per set a seeded random order "
        f"(seed {sample.seed}) of the records under the cap, the first K",
        f"- judge calls made: {sum(6 + 18 for _ in rm_records) + 4 * jb_n} "
        f"({6 * len(rm_records) + 2 * jb_n} principle, {18 * len(rm_records) + 2 * jb_n} pairwise); calls that "
        f"carried the ranking belief (logprobs): {with_belief[0]} of {with_belief[1]} pairwise verdicts",
        f"- wall time: {timing.get('wall_s', float('nan')):.0f} s for {timing.get('items_sent', '?')} items sent "
        f"(summed over invocations{steps(timing)}; refusals: {timing.get('refusals') or 'none'})",
        "",
        "Accuracy in %, with 95% intervals in brackets: RM-Bench by bootstrap over records within each domain (a "
        "record's 9 cells share its responses, so they are not 9 independent trials; none below "
        f"{MIN_BOOTSTRAP} records per domain), JudgeBench by the Wilson binomial interval over pairs (bootstrap "
        "for the random-order mean). RM-Bench is scored by its official "
        "rule (serve_app/evaluation/metrics.py): Easy / Normal / Hard are the lower triangle, diagonal and upper "
        "triangle of the averaged 3×3 style matrix, a tie is wrong, and Overall is the mean over the domains run "
        f"here ({', '.join(d for d, n in rm_n.items() if n)}; not the leaderboard's four). Consistency: pairs whose "
        "two orders prefer the same response (Wilson, n = pairs with both orders). Calls per RM-Bench record / per "
        "JudgeBench pair; est. s: the run's wall time times the method's share of the summed call time (one order "
        "is half of a compare request), i.e. what the method alone would have cost at this run's throughput.",
        "",
        f"| method | RM-Bench Easy | Normal | Hard | Overall (n = {len(rm_records)}) | JudgeBench (n = {jb_n}) | "
        "consistency RM-Bench | consistency JudgeBench | calls RM / JB | est. s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, label in METHODS:
        s = scores[method]
        rm = [s.rmbench.get(k, Interval(None)).text() for k in ("easy", "normal", "hard", "overall")]
        cons = [s.consistency.get(b, Interval(None)).text() for b in ("rmbench", "judgebench")]
        lines.append(
            f"| {label} | {' | '.join(rm)} | {s.judgebench.text()} | {' | '.join(cons)} | "
            f"{CALLS[method][0]} / {CALLS[method][1]} | {est_s(method)} |"
        )
    lines += [
        "",
        "**Paired differences** from *both orders, sampled* (same records; bootstrap 95% interval of the "
        "difference, in points). An interval that contains 0 means this run cannot tell the two apart.",
        "",
        "| method | RM-Bench Overall − sampled | JudgeBench − sampled |",
        "|---|---:|---:|",
    ]
    for method, label in METHODS:
        if method == "sampled":
            continue
        s = scores[method]
        lines.append(f"| {label} | {s.rmbench_vs_sampled.text()} | {s.judgebench_vs_sampled.text()} |")
    domains = [d for d, n in rm_n.items() if n]
    if domains:
        lines += [
            "",
            "**RM-Bench per domain** (accuracy = mean of Easy, Normal, Hard)",
            "",
            "| method | " + " | ".join(f"{d} (n = {rm_n[d]})" for d in domains) + " |",
            "|---|" + "---:|" * len(domains),
        ]
        for method, label in METHODS:
            if method == "two_verdicts":
                continue
            lines.append(
                f"| {label} | "
                + " | ".join(scores[method].rmbench.get(d, Interval(None)).text() for d in domains)
                + " |"
            )
    effect = prefs.effect
    lines += [
        "",
        "**Fitted style effect** (pooled over all the run's pairs; soft outcomes of the both-orders sampled "
        "margin; β in log-odds per standard deviation of the feature over the run's texts, positive = the judge "
        "favours more of it beyond what the chosen/rejected label explains)",
        "",
        "| feature | β | se | β range when one record is left out |",
        "|---|---:|---:|---:|",
    ]
    for name in FEATURES:
        if name in effect.coefficients:
            held = [b[name] for b in prefs.crossfit_betas if name in b]
            spread = f"{min(held):+.2f} … {max(held):+.2f}" if held else "–"
            lines.append(
                f"| {name} | {effect.coefficients[name]:+.2f} | {effect.stderr.get(name, math.nan):.2f} | {spread} |"
            )
        else:
            lines.append(f"| {name} | not fitted: {effect.not_fitted.get(name, effect.reason or '')} | | |")
    sampled, soft = first_shown_share(pairs, "sampled"), first_shown_share(pairs, "soft")
    decided, agree, broken = ensemble_against_soft(prefs.values["ensemble"], prefs.values["soft"])
    beliefs = belief_concentration(pairs)
    lines += [
        "",
        f"Position bias: the pairwise verdicts favoured the response shown first in {sampled.text()}% of calls "
        f"(sampled ranking, n = {sampled.n}) and {soft.text()}% (belief's expected margin, n = {soft.n}).",
        "",
        "The ensemble reads soft verdicts (the selection's default). On two responses each of its signals "
        "standardises to ±1, so with the default weights (pairwise strength 1, helpfulness 0.5, principle 0.1) it "
        f"follows the soft pairwise verdict and the other two only break its ties: here it agreed on {agree} of "
        f"the {decided} pairs with a non-zero soft margin and broke {broken} soft ties, which every pairwise "
        "reading counts wrong.",
        "",
        f"Beliefs: {beliefs[1]} of {beliefs[0]} pairwise verdicts put more than 99% on one ranking (there soft "
        f"equals sampled); the median top probability was {beliefs[2] if beliefs[2] is None else f'{beliefs[2]:.2f}'}.",
        "",
        "**What this can and cannot show.** " + limits(rm_n, jb_n),
    ]
    data = {
        "argv": list(argv),
        "sample": sample.__dict__,
        "models": models,
        "records": {"rmbench": rm_n, "judgebench": jb_n},
        "timing": timing,
        "style_effect": effect.model_dump(),
        "position_first_share": {"sampled": sampled.__dict__, "soft": soft.__dict__},
        "methods": {
            m: {
                "rmbench": {k: v.__dict__ for k, v in s.rmbench.items()},
                "judgebench": s.judgebench.__dict__,
                "consistency": {k: v.__dict__ for k, v in s.consistency.items()},
                "rmbench_vs_sampled": s.rmbench_vs_sampled.__dict__,
                "judgebench_vs_sampled": s.judgebench_vs_sampled.__dict__,
            }
            for m, s in scores.items()
        },
    }
    return "\n".join(lines) + "\n", data


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="the running service (not needed with --report-only)")
    parser.add_argument("--rmbench-chat", type=int, default=RecordSample.chat, help="RM-Bench chat records (0: none)")
    parser.add_argument(
        "--rmbench-safety", type=int, default=RecordSample.safety, help="RM-Bench safety records, both files"
    )
    parser.add_argument("--judgebench", type=int, default=RecordSample.judgebench, help="JudgeBench pairs (0: none)")
    parser.add_argument("--rmbench-max-chars", type=int, default=RecordSample.rmbench_max_chars)
    parser.add_argument("--judgebench-max-chars", type=int, default=RecordSample.judgebench_max_chars)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="the run's folder (outputs.jsonl, timing)")
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--report-only", action="store_true", help="score the stored outputs, send nothing")
    args = parser.parse_args(argv)
    sample = RecordSample(
        args.rmbench_chat,
        args.rmbench_safety,
        args.judgebench,
        args.seed,
        args.rmbench_max_chars,
        args.judgebench_max_chars,
    )
    selected = select(sample)
    if not args.report_only:
        if not args.url:
            parser.error("--url is needed to send the records (or give --report-only)")
        run(args.url, selected, args.out)
    text, data = report(argv, sample, selected, args.out)
    (args.out / "quality_table.json").write_text(json.dumps(data, indent=1))
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
