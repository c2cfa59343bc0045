"""Tenant fairness, in simulation: a light job's latency while a heavy job offers twice what the service can do.

This is a simulation, and says so. What is real: the router's core — ``JudgingService`` with its admission (weighted
fair queueing between tenants, each tenant's own limits, 429 and 503), the pairwise judge's call lane (fair queueing
too), the cohort table of ``/v1/reward``, the pair design and Bradley–Terry — and the real ``PairwiseJudge`` (prompts
built, answers parsed). What is simulated is bench/fleet_sim.py's, reused as it is: one pairwise judge replica
serving by continuous batching (``max_num_seqs`` 128, a decode step of 15 ms + 0.3 ms per running sequence, 0.3 s of
prefill), reasoning lengths from NeMo-Gym users' reports (median 8,192 tokens, cut at 16,384: ~21% of calls are
truncated and retried), the router's CPU charged per call as measured, and a virtual clock.

Each request is one group of ``ROLLOUTS`` rollouts judged by NVIDIA's circular design (one order per pair, so one
call per rollout), sent two ways: ``/v1/rank`` (the group whole) and ``/v1/reward`` (every rollout its own request,
all at once; the router's cohort table gathers them). Two tenants of equal weight:

* **heavy** sends open-loop Poisson arrivals at ``HEAVY_FACTOR`` (2) × capacity; what is refused is not sent again,
  so the offered load stays at twice capacity. Its own limits: ``HEAVY_LIMITS``;
* **light** sends open-loop Poisson arrivals at ``LIGHT_FACTOR`` (10%) of capacity; a refused request is sent again
  after its Retry-After, as the project's client does, and its latency counts from the first attempt.

**Capacity** is measured first, in the same run and configuration: the groups per second the service completes while
one tenant keeps ``CAPACITY_OUTSTANDING`` groups outstanding (every running slot busy, a queue behind them). The
light tenant's p50 is measured alone (no heavy load, the same arrivals) and under the heavy load; target: under load
within 1.5× of alone. Configurations compared: the judge lane's ``max_inflight_calls`` (None, the default: every call
goes to the engine, whose own queue is first come first served; 128: the engine's ``max_num_seqs``, so the router's
fair lane decides who is next; 32 and 16: smaller batches, faster steps, less throughput), and, at 128, one without
``router.tenants`` (one queue for both jobs). Then the heavy tenant's own limits tightened under load (capacity stays
the service's): ``max_judge_calls`` keeps its calls in the engine's batch few (a small batch steps fast), and
``max_concurrent_requests`` below the router's keeps admission slots free for the light tenant.

    python -m bench.tenant_fairness [--paths rank reward] [--lanes none 128 32 16 none/16/24] [--light-requests 100]

Writes bench/results/tenant_fairness.md (and .json).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from bench import fleet_sim as sim
from deployments.hosting import cpu_model
from deployments.pairwise.judge import PairwiseJudge, PairwiseSettings
from serve_app.config import AppConfig
from serve_app.core.judge_pool import Judges
from serve_app.core.refusal import Refusal
from serve_app.core.service import JudgingService
from serve_app.core.stats import NullMetrics, RequestStats, record
from serve_app.protocols.genrm_api import RankRequest, RewardRequest

Path_ = Literal["rank", "reward"]

ROLLOUTS = 8  # rollouts per group (one call each in the circular design)
RUNNING, QUEUED = 32, 128  # configs/gpu.yaml's router.max_concurrent_requests and max_queued_requests
HEAVY_LIMITS = {"max_concurrent_requests": 32, "max_queued_requests": 64}  # its 97th request gets 429
CAPACITY_OUTSTANDING = HEAVY_LIMITS["max_concurrent_requests"] + HEAVY_LIMITS["max_queued_requests"]
HEAVY_FACTOR, LIGHT_FACTOR = 2.0, 0.10
RETRY_AFTER_S = 5
TARGET = 1.5  # light p50 under load / light p50 alone
RESULTS = Path(__file__).parent / "results"


class TenantTokens(NullMetrics):
    """The router's metrics as this benchmark reads them: every update is dropped but ``genrm_judge_tokens``, added
    up by (tenant, kind) — the counter the router exports, fed by the same ``record``."""

    def __init__(self) -> None:
        self.tokens: Counter[tuple[str, str]] = Counter()
        outer = self

        class _Tokens:
            def inc(self, value: float, tags: dict[str, str]) -> None:
                outer.tokens[(tags["tenant"], tags["kind"])] += int(value)

        self.judge_tokens = _Tokens()


@dataclasses.dataclass
class TenantLoad:
    """What one tenant sent and got in one run (latencies of the groups that were answered, in virtual seconds)."""

    sent: int = 0
    answered: int = 0
    refused: Counter[int] = dataclasses.field(default_factory=Counter)  # HTTP status -> refusals (every attempt)
    latencies: list[float] = dataclasses.field(default_factory=list)
    window_s: float = 0.0
    answered_in_window: int = 0

    @property
    def throughput(self) -> float:
        """Groups answered per second while the light tenant's requests were out."""
        return self.answered_in_window / self.window_s if self.window_s else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def arrivals(rate: float, count: int, rng: random.Random) -> list[float]:
    """``count`` Poisson arrival times (seconds from 0) at ``rate`` per second."""
    times, t = [], 0.0
    for _ in range(count):
        t += rng.expovariate(rate)
        times.append(t)
    return times


def config(lane: int | None, tenants: bool, heavy: Mapping[str, int] | None = None) -> AppConfig:
    """``heavy``: the heavy tenant's limits that differ from ``HEAVY_LIMITS`` (``max_judge_calls``, say)."""
    endpoint = {"endpoint": {"base_url": "http://unused/v1", "model": sim.FleetClient.model, "tokenizer": "unused"}}
    router: dict[str, Any] = {
        "selection": {"strategy": "circular", "swap": False, "use_principle": False},
        "max_concurrent_requests": RUNNING,
        "max_queued_requests": QUEUED,
        "max_request_s": 1e9,
        "retry_after_s": RETRY_AFTER_S,
        "cohorts": {"group_size": ROLLOUTS, "strategy": "circular", "group_timeout_s": 600},
    }
    if tenants:
        router["tenants"] = [
            {"name": "heavy", "token_env": "GENRM_TOKEN_HEAVY", **HEAVY_LIMITS, **(heavy or {})},
            {"name": "light", "token_env": "GENRM_TOKEN_LIGHT"},
        ]
    pairwise = {**endpoint, "call_timeout_s": 1e9, "max_call_s": 1e9, "max_inflight_calls": lane}
    return AppConfig.model_validate({"pairwise": pairwise, "router": router})


class Bench:
    """One service over one simulated replica, on its own virtual clock; the two tenants' senders."""

    def __init__(
        self, path: Path_, lane: int | None, tenants: bool, seed: int, heavy: Mapping[str, int] | None = None
    ) -> None:
        self.path = path
        self.tenants = tenants
        self.client = sim.FleetClient(1, "default", seed)
        self.metrics = TenantTokens()
        judge = PairwiseJudge(self.client, PairwiseSettings(prompt_format="rendered", structured_output="compact"))
        self.service = JudgingService(config(lane, tenants, heavy), Judges(pairwise=judge), metrics=self.metrics)
        self.rng = random.Random(seed)
        self.sent = 0

    def tenant(self, name: str) -> str:
        return name if self.tenants else "default"

    def _group(self, name: str) -> tuple[str, list[str]]:
        self.sent += 1
        qualities = [self.rng.randint(0, 9) for _ in range(ROLLOUTS)]
        prompt = f"{name} prompt {self.sent}: solve the task."
        return prompt, [f"{name} rollout {k}, quality {q}" for k, q in enumerate(qualities)]

    async def _once(self, name: str, prompt: str, rollouts: list[str], k: int | None) -> None:
        """One attempt: a whole group (``k`` None) or rollout ``k`` of it; a refusal raises."""
        tenant = self.tenant(name)
        conversation = [{"role": "user", "content": prompt}]
        if k is None:
            stats = RequestStats("rank", tenant=tenant)
            body = RankRequest.model_validate({"conversation": conversation, "candidates": rollouts})
            await self.service.rank(body, stats)
        else:
            stats = RequestStats("reward", tenant=tenant)
            body = {"conversation": conversation, "response": rollouts[k], "group_id": prompt}
            body |= {"group_size": ROLLOUTS, "rollout_index": k}
            await self.service.reward(RewardRequest.model_validate(body), stats)
        record(self.metrics, stats)  # as the route does once the answer is sent (a refusal records itself)

    async def _attempts(self, name: str, prompt: str, rollouts: list[str], k: int | None) -> list[int]:
        """Until answered (the light tenant sends a refused request again after its Retry-After) or refused once
        (the heavy tenant drops it): the statuses of its refusals."""
        refusals: list[int] = []
        while True:
            try:
                await self._once(name, prompt, rollouts, k)
                return refusals
            except Refusal as exc:
                refusals.append(exc.status)
                if name == "heavy":
                    return refusals
                await asyncio.sleep(exc.retry_after_s or RETRY_AFTER_S)

    async def group(self, name: str, load: TenantLoad) -> None:
        """One group sent the path's way; its latency is its last rollout's answer. Refusals count per group: the
        attempts of its most refused request (a cohort's rollouts are refused together)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        prompt, rollouts = self._group(name)
        load.sent += 1
        parts = [None] if self.path == "rank" else list(range(ROLLOUTS))
        refusals = await asyncio.gather(*(self._attempts(name, prompt, rollouts, k) for k in parts))
        load.refused.update(max(refusals, key=len))
        if name == "light" or not any(refusals):
            load.answered += 1
            load.latencies.append(loop.time() - started)

    async def ready(self) -> None:
        while not self.service.readiness.ready:
            await asyncio.sleep(1)
        self.client.cpu = sim.RouterCPU()  # the run's own CPU, not the warm-up's


def capacity(path: Path_, lane: int | None, seed: int = 0, groups: int = 4 * CAPACITY_OUTSTANDING) -> float:
    """Groups per second the service completes with one tenant keeping ``CAPACITY_OUTSTANDING`` outstanding,
    counted from the ``CAPACITY_OUTSTANDING``-th completion (the start-up wave done) to the ``groups``-th."""

    async def main() -> float:
        bench = Bench(path, lane, tenants=True, seed=seed)
        await bench.ready()
        loop = asyncio.get_running_loop()
        load = TenantLoad()
        finished: list[float] = []

        async def closed_loop() -> None:
            while len(finished) < groups:
                answered = load.answered
                await bench.group("heavy", load)
                if load.answered > answered:
                    finished.append(loop.time())
                else:  # refused (outstanding above the tenant's limits): as a client would, wait and send again
                    await asyncio.sleep(RETRY_AFTER_S)

        await asyncio.gather(*(closed_loop() for _ in range(CAPACITY_OUTSTANDING)))
        start, end = sorted(finished)[CAPACITY_OUTSTANDING - 1], sorted(finished)[groups - 1]
        return (groups - CAPACITY_OUTSTANDING) / (end - start)

    return sim.on_virtual_clock(main)


@dataclasses.dataclass
class Run:
    """The light tenant alone or under the heavy load, in one configuration."""

    path: str
    lane: int | None
    heavy_limits: dict[str, int]  # the heavy tenant's limits that differ from HEAVY_LIMITS
    tenants: bool
    heavy_rate: float  # groups per second offered
    light_rate: float
    light: TenantLoad
    heavy: TenantLoad
    tokens: dict[str, dict[str, int]]  # tenant -> kind -> tokens, from genrm_judge_tokens
    mean_batch: float  # running sequences of the replica while busy
    elapsed_s: float  # wall-clock seconds the run took to simulate


def mixed(
    path: Path_,
    lane: int | None,
    *,
    heavy_limits: Mapping[str, int] | None = None,
    tenants: bool,
    heavy_rate: float,
    light_rate: float,
    light_groups: int,
    seed: int = 0,
) -> Run:
    """The light tenant's ``light_groups`` Poisson arrivals, alone (``heavy_rate`` 0) or once the heavy tenant's
    load has filled its limits; the heavy tenant keeps sending until the light tenant's last group is answered."""
    wall = time.perf_counter()

    async def main() -> Run:
        bench = Bench(path, lane, tenants, seed, heavy_limits)
        await bench.ready()
        loop = asyncio.get_running_loop()
        light, heavy = TenantLoad(), TenantLoad()
        stop = asyncio.Event()
        heavy_tasks: list[asyncio.Future[None]] = []
        window: list[float] = []
        heavy_done: list[float] = []

        async def heavy_group() -> None:
            answered = heavy.answered
            await bench.group("heavy", heavy)
            if heavy.answered > answered:
                heavy_done.append(loop.time())

        async def heavy_source() -> None:
            rng = random.Random(seed + 1)
            while not stop.is_set():
                await asyncio.sleep(rng.expovariate(heavy_rate))
                heavy_tasks.append(asyncio.ensure_future(heavy_group()))

        source = asyncio.ensure_future(heavy_source()) if heavy_rate > 0 else None
        if source is not None:  # steady state: the heavy tenant's queue is full and its first groups answered
            while not (heavy.refused and heavy.answered >= RUNNING):
                await asyncio.sleep(10)
        started = loop.time()
        window.append(started)
        light_tasks = []
        for at in arrivals(light_rate, light_groups, random.Random(seed + 2)):
            await asyncio.sleep(max(0.0, started + at - loop.time()))
            light_tasks.append(asyncio.ensure_future(bench.group("light", light)))
        await asyncio.gather(*light_tasks)
        window.append(loop.time())
        stop.set()
        if source is not None:
            source.cancel()
            for task in heavy_tasks:
                task.cancel()
            await asyncio.gather(source, *heavy_tasks, return_exceptions=True)
        for load in (light, heavy):
            load.window_s = window[1] - window[0]
        heavy.answered_in_window = sum(window[0] <= t <= window[1] for t in heavy_done)
        light.answered_in_window = light.answered
        replica = bench.client.replicas[0]
        names = ("heavy", "light") if tenants else ("default",)
        return Run(
            path=path,
            lane=lane,
            heavy_limits=dict(heavy_limits or {}),
            tenants=tenants,
            heavy_rate=heavy_rate,
            light_rate=light_rate,
            light=light,
            heavy=heavy,
            tokens={n: {k: bench.metrics.tokens[(n, k)] for k in ("prompt", "completion")} for n in names},
            mean_batch=replica.seq_s / max(replica.busy_s, 1e-9),
            elapsed_s=0.0,
        )

    run = sim.on_virtual_clock(main)
    run.elapsed_s = time.perf_counter() - wall
    return run


@dataclasses.dataclass
class Case:
    """One configuration: its capacity and the light tenant alone and under load (and, optionally, without
    tenants: one queue for both jobs)."""

    path: str
    lane: int | None
    heavy_limits: dict[str, int]  # the heavy tenant's limits that differ from HEAVY_LIMITS
    capacity: float  # groups per second
    alone: Run
    loaded: Run
    one_queue: Run | None = None

    @property
    def ratio(self) -> float:
        return percentile(self.loaded.light.latencies, 0.5) / percentile(self.alone.light.latencies, 0.5)


def measure(
    path: Path_,
    lane: int | None,
    light_groups: int,
    one_queue: bool,
    seed: int = 0,
    heavy_limits: Mapping[str, int] | None = None,
) -> Case:
    """``heavy_limits`` override the heavy tenant's under load; capacity is the service's with ``HEAVY_LIMITS``, so
    what tighter limits cost shows in the heavy tenant's share of it."""
    cap = capacity(path, lane, seed)
    rates = {"heavy_rate": HEAVY_FACTOR * cap, "light_rate": LIGHT_FACTOR * cap, "light_groups": light_groups}
    alone = mixed(path, lane, tenants=True, **{**rates, "heavy_rate": 0.0}, seed=seed)
    loaded = mixed(path, lane, heavy_limits=heavy_limits, tenants=True, **rates, seed=seed)
    fifo = mixed(path, lane, tenants=False, **rates, seed=seed) if one_queue else None
    return Case(path, lane, dict(heavy_limits or {}), cap, alone, loaded, fifo)


def _lane(lane: int | None) -> str:
    return "none (default)" if lane is None else str(lane)


def _heavy(limits: Mapping[str, int]) -> str:
    limits = {**HEAVY_LIMITS, **limits}
    return ", ".join(f"`{k}` {v}" for k, v in limits.items() if k != "max_queued_requests")


def setup(spec: str) -> tuple[int | None, dict[str, int]]:
    """``LANE[/CALLS[/RUNNING]]``: the lane's max_inflight_calls ('none'), and the heavy tenant's max_judge_calls
    and max_concurrent_requests under load."""
    lane, *heavy = spec.split("/")
    names = ("max_judge_calls", "max_concurrent_requests")
    return (None if lane == "none" else int(lane)), {k: int(v) for k, v in zip(names, heavy, strict=False)}


def step_s(batch: float) -> float:
    """The simulated replica's decode step with ``batch`` sequences running."""
    return sim.STEP_BASE_S + sim.STEP_PER_SEQ_S * batch


def verdict(ratio: float) -> str:
    """The target met or missed, and by how much."""
    if ratio <= TARGET:
        return f"met ({ratio:.2f}× ≤ {TARGET:g}×)"
    return f"missed by {ratio / TARGET:.2f}×"


def _refusals(load: TenantLoad) -> str:
    return ", ".join(f"{n} × {s}" for s, n in sorted(load.refused.items())) or "0"


def _minutes(values: Sequence[float], q: float) -> str:
    return f"{percentile(values, q) / 60:.1f}"


def report(cases: Sequence[Case], cpu: str, light_groups: int, elapsed_s: float) -> str:
    lines = [
        "# Tenant fairness, in simulation (bench/tenant_fairness.py)",
        "",
        "**A simulation, not a measurement of GPUs or of the CPU default.** Real: the router's core "
        "(`JudgingService`: admission with weighted fair queueing and each tenant's own limits, the pairwise "
        "judge's fair call lane, the cohort table of `/v1/reward`, the circular design) and the real "
        "`PairwiseJudge`. Simulated, with bench/fleet_sim.py's model: one pairwise judge replica serving by "
        "continuous batching, on a virtual clock.",
        "",
        "Parameters:",
        "",
        f"- replica: `max_num_seqs` {sim.MAX_NUM_SEQS}, decode step {sim.STEP_BASE_S * 1000:g} ms + "
        f"{sim.STEP_PER_SEQ_S * 1000:g} ms per running sequence, prefill {sim.PREFILL_S:g} s; reasoning tokens "
        f"lognormal, median {sim.MEDIAN_TOKENS:.0f}, sigma {sim.SIGMA}, cut at {sim.MAX_TOKENS} (a cut call is "
        "retried once); the router's CPU charged per call as measured;",
        f"- a group: {ROLLOUTS} rollouts, circular design, one order per pair ({ROLLOUTS} calls); `/v1/rank` sends "
        f"it whole, `/v1/reward` as {ROLLOUTS} per-rollout requests at once (one cohort);",
        f"- router: {RUNNING} running + {QUEUED} queued requests (configs/gpu.yaml's), `max_open_cohorts` 256 "
        f"(the default), Retry-After {RETRY_AFTER_S} s; tenants `heavy` (own limits "
        f"{HEAVY_LIMITS['max_concurrent_requests']} running + {HEAVY_LIMITS['max_queued_requests']} queued) and "
        "`light` (none of its own), weight 1 each;",
        f"- capacity: groups per minute completed while one tenant keeps {CAPACITY_OUTSTANDING} groups outstanding, "
        "measured first, in the same run and configuration;",
        f"- heavy: open-loop Poisson arrivals at {HEAVY_FACTOR:g}× capacity, a refused group dropped (the offered "
        f"load stays {HEAVY_FACTOR:g}×); light: open-loop Poisson arrivals at {LIGHT_FACTOR:.0%} of capacity, "
        f"{light_groups} groups, a refused request sent again after its Retry-After, latency from the first "
        "attempt to the group's last answer; under load, the light groups start once the heavy tenant has been "
        "refused and had its first groups answered, and the heavy tenant sends until the last light group is "
        "answered;",
        f"- target: the light tenant's p50 under load within {TARGET:g}× of its p50 alone;",
        "- engine step ratio: the decode step at the replica's mean batch under load over the step at its mean "
        "batch alone — the slowdown every call gets from sharing the engine, whatever the router does; the rest "
        "(ratio / engine step ratio) is the light tenant's waiting in the router (admission, the judge lane) and "
        "for its refused attempts.",
        "",
        f"Simulated on {cpu} in {elapsed_s / 60:.1f} min of wall-clock time. Times are virtual.",
        "",
        "| path | lane `max_inflight_calls` | heavy tenant's limits under load | capacity (groups/min) | "
        "light p50 alone "
        "(min) | light p50 under load (min) | ratio | target | engine step ratio | rest | light refusals | heavy sent "
        "| heavy 429 | heavy 503 | heavy groups/min (of capacity) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        loaded = case.loaded
        step_ratio = step_s(loaded.mean_batch) / step_s(case.alone.mean_batch)
        lines.append(
            f"| `/v1/{case.path}` | {_lane(case.lane)} | {_heavy(case.heavy_limits)} | "
            f"{case.capacity * 60:.2f} | {_minutes(case.alone.light.latencies, 0.5)} | "
            f"{_minutes(loaded.light.latencies, 0.5)} | "
            f"{case.ratio:.2f}× | {verdict(case.ratio)} | {step_ratio:.2f}× | {case.ratio / step_ratio:.2f}× | "
            f"{_refusals(loaded.light)} | "
            f"{loaded.heavy.sent} | {loaded.heavy.refused[429]} | {loaded.heavy.refused[503]} | "
            f"{loaded.heavy.throughput * 60:.2f} ({loaded.heavy.throughput / case.capacity:.0%}) |"
        )
    lines += [
        "",
        "Without `router.tenants` — both jobs one tenant, so one first-come-first-served queue — same load:",
        "",
        "| path | lane `max_inflight_calls` | light p50 (min) | ratio to alone | light refusals | heavy sent | "
        "heavy 503 | heavy groups/min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        if (run := case.one_queue) is not None:
            ratio = percentile(run.light.latencies, 0.5) / percentile(case.alone.light.latencies, 0.5)
            lines.append(
                f"| `/v1/{case.path}` | {_lane(case.lane)} | {_minutes(run.light.latencies, 0.5)} | {ratio:.2f}× | "
                f"{_refusals(run.light)} | {run.heavy.sent} | {run.heavy.refused[503]} | "
                f"{run.heavy.throughput * 60:.2f} |"
            )
    lines += [
        "",
        "Judge tokens per tenant under load, as the router's `genrm_judge_tokens` counter adds them up (the "
        "simulated judge reports its reasoning tokens as completion tokens, and a quarter of the prompt's "
        "characters as prompt tokens):",
        "",
        "| path | lane | tenant | groups answered | completion tokens | per group | prompt tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        if case.heavy_limits:
            continue  # the same tokens per group as without the cap
        for name, load in (("heavy", case.loaded.heavy), ("light", case.loaded.light)):
            used = case.loaded.tokens[name]
            # every group judged counts, the heavy tenant's last ones too (answered after the window)
            lines.append(
                f"| `/v1/{case.path}` | {_lane(case.lane)} | {name} | {load.answered} | {used['completion']:,} | "
                f"{used['completion'] / max(load.answered, 1):,.0f} | {used['prompt']:,} |"
            )
    return "\n".join(lines) + "\n"


def summary(cases: Sequence[Case]) -> list[dict[str, Any]]:
    out = []
    for case in cases:
        row: dict[str, Any] = {"path": case.path, "lane": case.lane, "heavy_limits": case.heavy_limits}
        row["capacity_per_min"] = case.capacity * 60
        for name in ("alone", "loaded", "one_queue"):
            run = getattr(case, name)
            if run is None:
                continue
            row[name] = {
                "light_p50_s": percentile(run.light.latencies, 0.5),
                "light_p90_s": percentile(run.light.latencies, 0.9),
                "light_answered": run.light.answered,
                "light_refused": dict(run.light.refused),
                "heavy_sent": run.heavy.sent,
                "heavy_refused": dict(run.heavy.refused),
                "heavy_per_min": run.heavy.throughput * 60,
                "mean_batch": run.mean_batch,
                "tokens": run.tokens,
                "elapsed_s": run.elapsed_s,
            }
        row["ratio"] = case.ratio
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", nargs="+", default=["rank", "reward"], choices=["rank", "reward"])
    parser.add_argument(
        "--lanes",
        nargs="+",
        default=["none", "128", "32", "16", "none/24", "none/24/24", "none/20/20", "none/16/24"],
        help="the lane's max_inflight_calls ('none'), then optionally /the heavy tenant's max_judge_calls and "
        "/max_concurrent_requests under load",
    )
    parser.add_argument("--light-requests", type=int, default=100, help="light groups per run")
    parser.add_argument("--out", type=Path, default=RESULTS / "tenant_fairness.md")
    args = parser.parse_args(argv)
    # a truncated call degrades its group's answer, and the router warns each time: thousands of lines here
    logging.getLogger("genrm_ensemble.router").setLevel(logging.ERROR)
    setups = [setup(spec) for spec in args.lanes]
    started = time.perf_counter()
    cases = []
    for path in args.paths:
        for lane, heavy_limits in setups:
            one_queue = lane == sim.MAX_NUM_SEQS and not heavy_limits
            case = measure(path, lane, args.light_requests, one_queue, heavy_limits=heavy_limits)
            print(json.dumps(summary([case])[0]), flush=True)
            cases.append(case)
    args.out.write_text(report(cases, cpu_model(), args.light_requests, time.perf_counter() - started))
    args.out.with_suffix(".json").write_text(json.dumps(summary(cases), indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
