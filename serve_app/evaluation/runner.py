"""Run evaluation sets through the service and score them.

Every item is sent to the running service's own routes — ``/v1/principle_score`` for the principle judge,
``/v1/compare`` (both orders) for the pairwise judge, ``/v1/best_of_n`` for best-of-N — and what the judges
returned is appended to ``outputs.jsonl`` in the output folder as soon as the item is done. A stopped run resumes
where it stopped: items already in the file are not sent again. Scores are computed from the stored outputs only,
so a report can be rebuilt without a service.

The ensemble needs no calls of its own: its verdict on two responses is what the router's selection code
(:func:`policies.selection.select_best`, round robin, both orders, principle rewards) makes of the two judges'
stored outputs, with the service's default weights.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from policies.debias import combine_results
from policies.selection import SelectionConfig, select_best
from policies.verdicts import PairwiseResult, PrincipleResult, mean_reward
from serve_app.client.http import AsyncGenRMClient, ServiceError, ServiceRefused
from serve_app.evaluation import metrics
from serve_app.evaluation.records import (
    BestOfNRecord,
    HelpSteer3Record,
    JudgeBenchRecord,
    RMBenchRecord,
    item_id,
    load_records,
)
from serve_app.evaluation.report import EvaluationResults, RunMetadata

JUDGES = ("principle", "pairwise", "ensemble")
#: items in flight against a service that does not report its capacity
DEFAULT_CONCURRENCY = 4
OUTPUTS = "outputs.jsonl"


# --- what one item produced ------------------------------------------------------------------------------------


class Pair(BaseModel):
    """Both orders of one comparison: ``forward`` shows ``a`` first."""

    forward: PairwiseResult
    backward: PairwiseResult


class Picked(BaseModel):
    index: int | None = None
    judge_calls: int = 0
    failure: str | None = None


class ItemOutputs(BaseModel):
    """The judges' raw answers for one item (one line of outputs.jsonl)."""

    benchmark: str
    item: str
    #: response key -> principle results (RM-Bench "c0".."r2", JudgeBench "A"/"B", HelpSteer3 "1"/"2")
    principle: dict[str, list[PrincipleResult] | None] = Field(default_factory=dict)
    #: "a|b" -> both orders of the comparison of response a with response b
    pairwise: dict[str, Pair | None] = Field(default_factory=dict)
    #: strategy -> the best-of-N answer
    bestofn: dict[str, Picked] = Field(default_factory=dict)


class OutputStore:
    """outputs.jsonl: one finished item per line, appended and flushed at once, read back on resume."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / OUTPUTS
        self.done: dict[tuple[str, str], ItemOutputs] = {}
        if self.path.exists():
            for n, line in enumerate(self.path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    item = ItemOutputs.model_validate_json(line)
                except ValueError:  # a line cut short by a kill: that item runs again
                    print(f"{self.path}:{n}: unreadable line skipped (the item will run again)", file=sys.stderr)
                    continue
                self.done[(item.benchmark, item.item)] = item

    def add(self, item: ItemOutputs) -> None:
        with self.path.open("a") as f:
            f.write(item.model_dump_json() + "\n")
        self.done[(item.benchmark, item.item)] = item


# --- the service ---------------------------------------------------------------------------------------------------


class EvaluationService:
    """The evaluation's client of the HTTP API, on :class:`~serve_app.client.AsyncGenRMClient`: a 503 with
    Retry-After (admission full, a judge warming up) is waited out and sent again for as long as it takes, so the
    run goes as fast as the service admits; other refusals become missing verdicts, counted in ``refusals``."""

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 3600) -> None:
        self.client = AsyncGenRMClient(base_url, token=token, timeout_s=timeout_s, max_retries=100_000)
        self.refusals: Tally[str] = Tally()  # "timeout" / HTTP status -> count

    @property
    def retried(self) -> int:
        return self.client.retried

    async def _call(self, send: Any) -> Any:
        try:
            return await send
        except ServiceRefused as exc:
            self.refusals["timeout" if "timed out" in str(exc.detail) else str(exc.status)] += 1
            raise

    async def wait_ready(self, timeout_s: float = 1800, poll_s: float = 5) -> int:
        """Wait until every judge has answered its warm-up call; returns the service's capacity (requests it runs
        at once)."""
        print(f"evaluate: waiting for {self.client.base_url}/readyz", file=sys.stderr, flush=True)
        return (await self.client.wait_ready(timeout_s=timeout_s, poll_s=poll_s)).capacity

    async def principle(
        self, conversation: list[dict[str, str]], response: str, principles: list[str]
    ) -> list[PrincipleResult] | None:
        send = self.client.principle_score(conversation=conversation, response=response, principles=principles)
        try:
            return list((await self._call(send)).results)
        except ServiceError:
            return None  # e.g. the judge was unavailable: a missing verdict, not a stopped run

    async def compare(self, conversation: list[dict[str, str]], a: str, b: str) -> Pair | None:
        try:
            out = await self._call(self.client.compare(conversation=conversation, response_1=a, response_2=b))
        except ServiceError:
            return None
        return Pair(forward=out.forward, backward=out.backward)

    async def best_of_n(
        self, conversation: list[dict[str, str]], candidates: list[str], strategy: str, principles: list[str]
    ) -> Picked:
        send = self.client.best_of_n(
            conversation=conversation, candidates=candidates, strategy=strategy, principles=principles
        )
        try:
            out = await self._call(send)
        except ServiceError as exc:
            return Picked(failure=str(exc))
        return Picked(index=out.index, judge_calls=out.pairwise_calls + out.principle_calls)

    async def models(self) -> dict[str, str]:
        return {j.role: j.model for j in (await self.client.models()).judges}

    async def aclose(self) -> None:
        await self.client.aclose()


def _messages(turns: Iterable[Any]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in turns]


# --- running items -------------------------------------------------------------------------------------------------


async def _rmbench(svc: EvaluationService, r: RMBenchRecord, principles: list[str]) -> ItemOutputs:
    conversation = [{"role": "user", "content": r.prompt}]
    texts = {**{f"c{i}": t for i, t in enumerate(r.chosen)}, **{f"r{j}": t for j, t in enumerate(r.rejected)}}
    keys = [f"c{i}|r{j}" for i in range(3) for j in range(3)]
    rewards = asyncio.gather(*(svc.principle(conversation, t, principles) for t in texts.values()))
    pairs = asyncio.gather(*(svc.compare(conversation, *(texts[k] for k in key.split("|"))) for key in keys))
    reward_list, pair_list = await asyncio.gather(rewards, pairs)
    return ItemOutputs(
        benchmark="rmbench",
        item=item_id(r),
        principle=dict(zip(texts, reward_list, strict=True)),
        pairwise=dict(zip(keys, pair_list, strict=True)),
    )


async def _two_responses(
    svc: EvaluationService,
    benchmark: str,
    item: str,
    conversation: list[dict[str, str]],
    a: str,
    b: str,
    names: tuple[str, str],
    principles: list[str],
) -> ItemOutputs:
    ra, rb, pair = await asyncio.gather(
        svc.principle(conversation, a, principles),
        svc.principle(conversation, b, principles),
        svc.compare(conversation, a, b),
    )
    return ItemOutputs(
        benchmark=benchmark, item=item, principle={names[0]: ra, names[1]: rb}, pairwise={"|".join(names): pair}
    )


async def _bestofn(
    svc: EvaluationService, r: BestOfNRecord, strategies: list[str], principles: list[str]
) -> ItemOutputs:
    conversation = _messages(r.messages)
    picks = await asyncio.gather(*(svc.best_of_n(conversation, r.candidates, s, principles) for s in strategies))
    return ItemOutputs(benchmark="bestofn", item=item_id(r), bestofn=dict(zip(strategies, picks, strict=True)))


async def _run_item(
    svc: EvaluationService, benchmark: str, record: Any, principles: list[str], strategies: list[str]
) -> ItemOutputs:
    if benchmark == "rmbench":
        return await _rmbench(svc, record, principles)
    if benchmark == "judgebench":
        conversation = [{"role": "user", "content": record.question}]
        return await _two_responses(
            svc, benchmark, item_id(record), conversation, record.response_A, record.response_B, ("A", "B"), principles
        )
    if benchmark == "helpsteer3":
        return await _two_responses(
            svc,
            benchmark,
            item_id(record),
            _messages(record.context),
            record.response1,
            record.response2,
            ("1", "2"),
            principles,
        )
    return await _bestofn(svc, record, strategies, principles)


def item_failures(item: ItemOutputs) -> tuple[int, int]:
    """(failed judge calls, of which timeouts) in one item's outputs: a refused request counts for all its calls."""
    failed = timeouts = 0
    for results in item.principle.values():
        for r in results if results is not None else [PrincipleResult(principle="", failure="request refused")]:
            if r.failure is not None:
                failed += 1
                timeouts += "timed out" in r.failure
    for pair in item.pairwise.values():
        for r in (pair.forward, pair.backward) if pair is not None else (PairwiseResult(failure="refused"),) * 2:
            if r.failure is not None:
                failed += 1
                timeouts += "timed out" in r.failure
    failed += sum(p.failure is not None for p in item.bestofn.values())
    return failed, timeouts


class Progress:
    """A line on stderr every few seconds: items done, rate, failed calls, time left.

    The rate is taken over the last :attr:`WINDOW` finished items, not since the start: with several items in
    flight the first ones finish late, and a whole-run average would promise far too much time at first.
    """

    WINDOW = 10

    def __init__(self, benchmark: str, total: int, already: int) -> None:
        self.benchmark, self.total, self.done = benchmark, total, already
        self.t0 = self.last = time.monotonic()
        self.finished: list[float] = []  # monotonic times of this run's finished items
        self.failed = self.timeouts = 0

    def step(self, item: ItemOutputs | None = None) -> None:
        self.done += 1
        now = time.monotonic()
        self.finished.append(now)
        if item is not None:
            failed, timeouts = item_failures(item)
            self.failed += failed
            self.timeouts += timeouts
        if now - self.last >= 5 or self.done == self.total:
            self.last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def rate(self, now: float) -> float:
        """Items per second over the recent window (from the run's start while fewer items have finished)."""
        recent = self.finished[-self.WINDOW :]
        since = self.finished[-self.WINDOW - 1] if len(self.finished) > self.WINDOW else self.t0
        return len(recent) / max(now - since, 1e-9)

    def line(self, now: float) -> str:
        rate = self.rate(now)
        left = (self.total - self.done) / rate if rate else float("inf")
        return (
            f"{self.benchmark}: {self.done}/{self.total} items ({100 * self.done / max(self.total, 1):.0f}%), "
            f"{rate * 60:.2f}/min, {self.failed} failed judge calls ({self.timeouts} timeouts), "
            f"~{left / 60:.0f} min left"
        )


async def run_benchmark(
    svc: EvaluationService,
    store: OutputStore,
    benchmark: str,
    records: Sequence[Any],
    *,
    principles: list[str],
    strategies: list[str],
    slots: asyncio.Semaphore,
) -> None:
    todo = [r for r in records if (benchmark, item_id(r)) not in store.done]
    progress = Progress(benchmark, len(records), len(records) - len(todo))
    if not todo:
        print(f"{benchmark}: all {len(records)} items already done", file=sys.stderr)
        return

    async def one(record: Any) -> None:
        async with slots:
            item = await _run_item(svc, benchmark, record, principles, strategies)
            store.add(item)
            progress.step(item)

    await asyncio.gather(*(one(r) for r in todo))


# --- scoring from stored outputs ----------------------------------------------------------------------------------


def _margin(pair: Pair | None) -> float | None:
    """The debiased preference for the first response of the pair (> 0: it is better)."""
    if pair is None:
        return None
    return combine_results(0, 1, [pair.forward], [pair.backward]).margin


def ensemble_margin(
    pair: Pair | None, a: list[PrincipleResult] | None, b: list[PrincipleResult] | None
) -> float | None:
    """score(a) − score(b) as the router's selection code ranks the two from the stored outputs; None when
    neither judge said anything usable about them."""
    if _margin(pair) is None and (mean_reward(a) is None or mean_reward(b) is None):
        return None
    failed = PairwiseResult(failure="no stored answer")

    async def pairwise(i: int, j: int) -> PairwiseResult:
        if pair is None:
            return failed
        return pair.forward if (i, j) == (0, 1) else pair.backward

    async def principle(k: int) -> list[PrincipleResult]:
        return list((a if k == 0 else b) or [])

    config = SelectionConfig(strategy="round_robin", retries=0)
    result = asyncio.run(select_best(2, pairwise, principle, config))
    score = {c.index: c.score for c in result.candidates}
    return score[0] - score[1]


def _better(x: float | None, y: float | None) -> bool | None:
    return None if x is None or y is None else x > y


def _ab(value: float | None) -> metrics.Verdict | None:
    """A preference for A (> 0) or B (< 0) as a JudgeBench verdict; a tie or nothing is no verdict."""
    if value is None or value == 0:
        return None
    return "A>B" if value > 0 else "B>A"


def _first_preferred(result: PairwiseResult) -> float | None:
    return result.verdict.margin if result.verdict is not None else None


def score_rmbench(records: Sequence[RMBenchRecord], store: OutputStore) -> dict[str, metrics.RMBenchScores]:
    rows: dict[str, list[tuple[str, metrics.Cells]]] = {j: [] for j in JUDGES}
    for r in records:
        out = store.done.get(("rmbench", item_id(r)))
        if out is None:
            continue
        reward = {k: mean_reward(v) for k, v in out.principle.items()}
        rows["principle"].append(
            (r.domain, metrics.rmbench_cells([reward[f"c{i}"] for i in range(3)], [reward[f"r{j}"] for j in range(3)]))
        )
        pair_cells = [[_better(_margin(out.pairwise[f"c{i}|r{j}"]), 0.0) for j in range(3)] for i in range(3)]
        rows["pairwise"].append((r.domain, pair_cells))
        ensemble_cells = [
            [
                _better(
                    ensemble_margin(out.pairwise[f"c{i}|r{j}"], out.principle[f"c{i}"], out.principle[f"r{j}"]), 0.0
                )
                for j in range(3)
            ]
            for i in range(3)
        ]
        rows["ensemble"].append((r.domain, ensemble_cells))
    return {j: metrics.rmbench_scores(v) for j, v in rows.items() if v}


def _two_response_verdicts(out: ItemOutputs, names: tuple[str, str]) -> dict[str, tuple[Any, Any]]:
    """Per judge, (verdict with the first response shown first, verdict with it shown second) as preferences for
    the first response: > 0 prefers it. Order-free judges give the same value twice."""
    a, b = (out.principle.get(n) for n in names)
    pair = out.pairwise.get("|".join(names))
    ra, rb = mean_reward(a), mean_reward(b)
    principle = None if ra is None or rb is None else ra - rb
    forward = _first_preferred(pair.forward) if pair else None
    backward = -m if pair and (m := _first_preferred(pair.backward)) is not None else None
    ensemble = ensemble_margin(pair, a, b)
    return {"principle": (principle, principle), "pairwise": (forward, backward), "ensemble": (ensemble, ensemble)}


def score_judgebench(
    records: Sequence[JudgeBenchRecord], store: OutputStore
) -> tuple[dict[str, metrics.JudgeBenchScores], metrics.PositionConsistency | None]:
    rows: dict[str, list[Any]] = {j: [] for j in JUDGES}
    orders = []
    for r in records:
        out = store.done.get(("judgebench", item_id(r)))
        if out is None:
            continue
        for judge, (fwd, bwd) in _two_response_verdicts(out, ("A", "B")).items():
            rows[judge].append((r.source, r.label, _ab(fwd), _ab(bwd)))
        orders.append((rows["pairwise"][-1][2], rows["pairwise"][-1][3]))
    scores = {j: metrics.judgebench_scores(v) for j, v in rows.items() if v}
    return scores, metrics.position_consistency(orders) if orders else None


def score_helpsteer3(
    records: Sequence[HelpSteer3Record], store: OutputStore
) -> tuple[dict[str, metrics.HelpSteer3Scores], metrics.PositionConsistency | None]:
    rows: dict[str, list[Any]] = {j: [] for j in JUDGES}
    orders = []
    for r in records:
        out = store.done.get(("helpsteer3", item_id(r)))
        if out is None:
            continue
        verdicts = _two_response_verdicts(out, ("1", "2"))
        for judge, (fwd, bwd) in verdicts.items():
            # HelpSteer3's sign: negative = response1 better; the pairwise judge's two orders are summed.
            total = None if fwd is None and bwd is None else (fwd or 0.0) + (bwd or 0.0)
            rows[judge].append((r.domain, r.overall_preference, None if total is None else -_sign(total)))
        fwd, bwd = verdicts["pairwise"]
        orders.append((_ab(fwd), _ab(bwd)))
    scores = {j: metrics.helpsteer3_scores(v) for j, v in rows.items() if v}
    return scores, metrics.position_consistency(orders) if orders else None


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def score_bestofn(records: Sequence[BestOfNRecord], store: OutputStore) -> metrics.BestOfNScores | None:
    rows = []
    for r in records:
        out = store.done.get(("bestofn", item_id(r)))
        if out is None:
            continue
        correct = r.candidates_correct()
        outcomes = {s: (None if p.index is None else correct[p.index], p.judge_calls) for s, p in out.bestofn.items()}
        rows.append((correct, outcomes))
    return metrics.bestofn_scores(rows) if rows else None


# --- the whole evaluation ------------------------------------------------------------------------------------------

Benchmark = Literal["rmbench", "judgebench", "helpsteer3", "bestofn"]


class EvaluationRequest(BaseModel):
    """What to evaluate (the CLI's arguments)."""

    files: dict[Benchmark, Path]
    out: Path
    principles: list[str] = ["correctness"]
    strategies: list[str] = ["knockout", "round_robin", "adaptive"]
    limit: int | None = Field(default=None, ge=1, description="only the first N items of each file")
    sample: int | None = Field(
        default=None, ge=1, description="a fixed random subset of N items of each file (seeded: the same every run)"
    )
    seed: int = Field(default=0, ge=0)
    concurrency: int | None = Field(
        default=None, ge=1, description="items in flight; default: the capacity the service reports on /readyz"
    )
    rmbench_domain: str | None = None  # for RM-Bench records without one; default: the file name's


def load_all(request: EvaluationRequest) -> dict[str, list[Any]]:
    loaded: dict[str, list[Any]] = {}
    for benchmark, path in request.files.items():
        domain = request.rmbench_domain if benchmark == "rmbench" else None
        records = load_records(path, benchmark, rmbench_domain=domain)
        if request.sample is not None and request.sample < len(records):
            keep = sorted(np.random.default_rng(request.seed).choice(len(records), request.sample, replace=False))
            records = [records[k] for k in keep]
        loaded[benchmark] = records[: request.limit] if request.limit else records
    return loaded


def score_all(loaded: dict[str, list[Any]], store: OutputStore, metadata: RunMetadata) -> EvaluationResults:
    results = EvaluationResults(metadata=metadata)
    if "rmbench" in loaded:
        results.rmbench = score_rmbench(loaded["rmbench"], store)
    if "judgebench" in loaded:
        results.judgebench, consistency = score_judgebench(loaded["judgebench"], store)
        if consistency is not None:
            results.position_consistency["judgebench"] = consistency
    if "helpsteer3" in loaded:
        results.helpsteer3, consistency = score_helpsteer3(loaded["helpsteer3"], store)
        if consistency is not None:
            results.position_consistency["helpsteer3"] = consistency
    if "bestofn" in loaded:
        results.bestofn = score_bestofn(loaded["bestofn"], store)
    return results


async def evaluate(
    request: EvaluationRequest, base_url: str, token: str | None = None, service: EvaluationService | None = None
) -> dict[str, list[Any]]:
    """Send every item not yet in the output folder; returns the loaded records. ``service`` (else one made for
    ``base_url``) keeps its refusal counts for the caller to read; it is closed at the end either way."""
    loaded = load_all(request)
    store = OutputStore(request.out)
    svc = service or EvaluationService(base_url, token)
    try:
        capacity = await svc.wait_ready()
        concurrency = request.concurrency or capacity or DEFAULT_CONCURRENCY
        print(f"evaluate: {concurrency} items in flight", file=sys.stderr, flush=True)
        models = await svc.models()
        run = {"service": base_url, "models": models, **request.model_dump(mode="json"), "concurrency": concurrency}
        (request.out / "run.json").write_text(json.dumps(run, indent=1))
        # All sets at once under one limit: the engines batch whatever is in flight.
        slots = asyncio.Semaphore(concurrency)
        await asyncio.gather(
            *(
                run_benchmark(
                    svc,
                    store,
                    benchmark,
                    records,
                    principles=request.principles,
                    strategies=request.strategies,
                    slots=slots,
                )
                for benchmark, records in loaded.items()
            )
        )
    finally:
        await svc.aclose()
    return loaded


def run_models(folder: Path) -> dict[str, str]:
    """The judge models the last run in ``folder`` was served by (from its run.json)."""
    path = folder / "run.json"
    return json.loads(path.read_text()).get("models", {}) if path.exists() else {}
