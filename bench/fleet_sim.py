"""Capacity of a pairwise-judge fleet, in simulation: the router's real code against simulated judge replicas.

This is a simulation, and says so. What is real: the router's core (``JudgingService.rank_batch``: admission, the
judge lane, duplicate grouping, the pair designs, Bradley–Terry), the real ``PairwiseJudge`` (its prompts built and
its answers parsed) and the judge client's affinity key. What is simulated: the judge replicas and the clock.

* **The clock** is virtual: an asyncio loop whose time jumps to the next timer when nothing is ready, so a step of
  thousands of calls that would take hours of engine time runs in seconds.
* **A replica** serves calls by continuous batching: at most ``max_num_seqs`` sequences decode together, each decode
  step advances every running sequence by one token and takes ``step_s(b) = STEP_BASE_S + STEP_PER_SEQ_S * b`` for
  ``b`` running sequences; a call first pays ``PREFILL_S``. Waiting calls join at the next step.
* **Reasoning tokens per call** are drawn from a lognormal fixed from a cited source before any run: NeMo-Gym users
  report that an 8,192-token judge cap left about half of the verdicts unfinished and a 65,535 cap fewer than 1%
  (NVIDIA-NeMo/Gym#1215). So the median is 8,192 tokens and the 99th percentile about 60,000: sigma =
  ln(60000 / 8192) / 2.326 = 0.86. Calls are cut at NVIDIA's ``max_output_tokens`` 16,384 (the recipe's and
  configs/gpu.yaml's cap).
* **Routing** over replicas: Serve's default (power of two choices on queue length) or affinity (the fleet configs'
  ``PrefixCacheAffinityRouter`` on the call's affinity key: a new group to the replica given the fewest groups so
  far, its later calls to that replica, waiting there while it is full).
* **The router's CPU is charged as measured in the same run**: every call holds the one router process for the mean
  CPU time per call measured so far (``time.process_time`` over the run), so a router cannot scale for free.

Parameters not from a source are stated here and in the report: STEP_BASE_S, STEP_PER_SEQ_S, PREFILL_S (a TP-8
replica of a 22B-active MoE on H100: ~15 ms per decode step alone, ~55 ms at 128 sequences, and 0.3 s to prefill a
judge prompt of a few thousand tokens — plausible round numbers, not measurements).

    python -m bench.fleet_sim [--designs circular swiss adaptive] [--replicas 1 2 4 8] [--routing affinity default]

Writes bench/results/fleet_sim.md (the table) and fleet_sim.png (scaling and the slowest call's share).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import math
import random
import re
import selectors
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from deployments.engine_client import AFFINITY_KEY, Completion
from deployments.hosting import cpu_model
from deployments.pairwise.judge import PairwiseJudge, PairwiseSettings
from serve_app.config import AppConfig
from serve_app.core.judge_pool import Judges
from serve_app.core.service import JudgingService
from serve_app.core.stats import NullMetrics
from serve_app.protocols.genrm_api import RankBatchRequest

#: the step shape of NVIDIA's Nemotron 3 Super RLHF recipe: prompts per step and rollouts per prompt
PROMPTS, ROLLOUTS = 128, 16
MAX_NUM_SEQS = 128  # configs/gpu.yaml's pairwise engine
MAX_TOKENS = 16384  # NVIDIA's GenRM max_output_tokens
MEDIAN_TOKENS, SIGMA = 8192.0, 0.86  # NVIDIA-NeMo/Gym#1215, see the module docstring
STEP_BASE_S, STEP_PER_SEQ_S, PREFILL_S = 0.015, 0.0003, 0.3  # assumed, see the module docstring
_QUALITY = re.compile(r"quality (\d+)")
T = TypeVar("T")


class VirtualClock:
    """Makes a fresh event loop run on virtual time: ``loop.time()`` is the clock, and a wait for the next timer
    advances it instead of sleeping. Only for loops without real I/O."""

    def __init__(self) -> None:
        self.now = 0.0

    def loop(self) -> asyncio.AbstractEventLoop:
        clock = self

        class Selector(selectors.DefaultSelector):
            def select(self, timeout: float | None = None) -> list[Any]:
                events = super().select(0)
                if not events and timeout:
                    clock.now += timeout
                return events

        loop = asyncio.SelectorEventLoop(Selector())
        loop.time = lambda: clock.now  # type: ignore[method-assign]
        return loop


def on_virtual_clock(make: Callable[[], Awaitable[T]]) -> T:
    """``make()`` run on a fresh virtual clock; what it leaves running (calls, cohorts being judged, an engine) is
    cancelled before the loop closes."""
    loop = VirtualClock().loop()
    try:
        result = loop.run_until_complete(make())
        if rest := asyncio.all_tasks(loop):
            for task in rest:
                task.cancel()
            loop.run_until_complete(asyncio.wait(rest))
        return result
    finally:
        loop.close()


class Replica:
    """One judge replica serving by continuous batching (see the module docstring)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.running: list[list[Any]] = []  # [tokens left, future, virtual time it started decoding]
        self.waiting: list[tuple[int, asyncio.Future[float]]] = []
        self.busy_s = 0.0  # virtual time with at least one sequence running
        self.seq_s = 0.0  # integral of running sequences over time
        self._engine: asyncio.Task[None] | None = None

    @property
    def load(self) -> int:
        return len(self.running) + len(self.waiting)

    async def generate(self, tokens: int) -> float:
        """Returns the seconds the call ran in the engine (its wait for a free sequence slot not counted)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting.append((tokens, future))
        if self._arrived is not None:
            self._arrived.set()
        if self._engine is None or self._engine.done():
            self._engine = asyncio.ensure_future(self._run())
        return await future

    _arrived: asyncio.Event | None = None

    async def _run(self) -> None:
        """Decode steps, taken together while nothing changes: the batch runs until its shortest sequence ends,
        unless a call arrives with a free slot, which joins after the step in progress (as step by step). One
        timer per change instead of one per token keeps hours of virtual decoding cheap to simulate."""
        loop = asyncio.get_running_loop()
        self._arrived = asyncio.Event()
        while self.running or self.waiting:
            while self.waiting and len(self.running) < MAX_NUM_SEQS:
                tokens, future = self.waiting.pop(0)
                steps = tokens + math.ceil(PREFILL_S / STEP_BASE_S)  # prefill as steps
                self.running.append([steps, future, loop.time()])
            step = STEP_BASE_S + STEP_PER_SEQ_S * len(self.running)
            left = min(seq[0] for seq in self.running)
            started = loop.time()
            self._arrived.clear()
            if len(self.running) < MAX_NUM_SEQS:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left * step)
            else:
                await asyncio.sleep(left * step)
            taken = min(left, max(1, math.ceil((loop.time() - started) / step - 1e-9)))
            await asyncio.sleep(max(0.0, started + taken * step - loop.time()))  # the step in progress ends
            self.busy_s += taken * step
            self.seq_s += taken * step * len(self.running)
            for seq in self.running:
                seq[0] -= taken
            for seq in [s for s in self.running if s[0] <= 0]:
                self.running.remove(seq)
                if not seq[1].done():
                    seq[1].set_result(loop.time() - seq[2])


@dataclasses.dataclass
class RouterCPU:
    """The router process as a resource: each call holds it for the mean CPU per call measured so far."""

    started: float = dataclasses.field(default_factory=time.process_time)
    calls: int = 0
    held_s: float = 0.0
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    @property
    def per_call_s(self) -> float:
        return (time.process_time() - self.started) / max(self.calls, 1)

    async def charge(self) -> None:
        self.calls += 1
        async with self.lock:
            cost = self.per_call_s
            self.held_s += cost
            await asyncio.sleep(cost)


class FleetClient:
    """The pairwise judge's client over a simulated fleet: routes each call, waits for its replica, and answers a
    verdict that prefers the higher "quality N" (no position bias), as a judge model would answer it."""

    model = "simulated-genrm"

    def __init__(self, replicas: int, routing: str, seed: int) -> None:
        self.replicas = [Replica(f"r{k}") for k in range(replicas)]
        self.routing = routing
        self.rng = random.Random(seed)
        self.cpu = RouterCPU()
        self.latencies: list[float] = []  # per call: sent to answered
        self.run_times: list[float] = []  # per call: its time in the engine, queueing for a slot not counted
        self.truncated = 0
        self.homes: dict[str, Replica] = {}  # affinity: each group key's replica
        self.keys_held: collections.Counter[str] = collections.Counter()

    def _pick(self) -> Replica:
        key = AFFINITY_KEY.get()
        if self.routing == "affinity" and key is not None:
            # Serve's PrefixCacheAffinityRouter on the group key (deployments/routing.py): a key it has routed goes
            # to the same replica, and waits there when that one is full; a new key to the replica that has been
            # given the fewest (the least text in the router's prefix tree)
            if key not in self.homes:
                self.homes[key] = min(self.replicas, key=lambda r: self.keys_held[r.name])
                self.keys_held[self.homes[key].name] += 1
            return self.homes[key]
        a, b = self.rng.sample(self.replicas, 2) if len(self.replicas) > 1 else (self.replicas[0],) * 2
        return a if a.load <= b.load else b

    async def chat(self, request: dict[str, Any]) -> Completion:
        await self.cpu.charge()
        loop = asyncio.get_running_loop()
        started = loop.time()
        tokens = int(self.rng.lognormvariate(math.log(MEDIAN_TOKENS), SIGMA))
        cut = tokens > MAX_TOKENS
        self.truncated += cut
        self.run_times.append(await self._pick().generate(min(tokens, MAX_TOKENS)))
        self.latencies.append(loop.time() - started)
        # usage as an engine reports it: the tokens generated, and the prompt at ~4 characters a token
        usage = {
            "prompt_tokens": len(request["messages"][-1]["content"]) // 4,
            "completion_tokens": min(tokens, MAX_TOKENS),
        }
        if cut:  # the verdict never came: a failed call, as a truncated answer is
            return Completion(text="", finish_reason="length", **usage)
        found = [int(q) for q in _QUALITY.findall(request["messages"][-1]["content"])]
        first, second = found[-2:] if len(found) >= 2 else (0, 0)
        ranking = 2 if first > second else 5 if second > first else 3
        verdict = {"score_1": min(5, 1 + first), "score_2": min(5, 1 + second), "ranking": ranking}
        return Completion(text=json.dumps(verdict), finish_reason="stop", **usage)


@dataclasses.dataclass
class Outcome:
    design: str
    replicas: int
    routing: str
    calls: int
    makespan_s: float
    slowest_call_s: float  # the longest call's own time in an engine
    calls_per_s: float
    router_cpu_per_call_ms: float
    router_busy: float  # share of the makespan the router process was busy
    replica_busy: float  # mean share of the makespan a replica had work
    mean_batch: float  # mean running sequences of a busy replica
    truncated: float


def step_body(design: str, seed: int, prompts: int = PROMPTS, rollouts: int = ROLLOUTS) -> RankBatchRequest:
    rng = random.Random(seed)
    groups = []
    for p in range(prompts):
        qualities = [rng.randint(0, 9) for _ in range(rollouts)]
        groups.append(
            {
                "conversation": [{"role": "user", "content": f"Prompt {p}: solve the task."}],
                "candidates": [f"rollout {k}, quality {q}" for k, q in enumerate(qualities)],
                "strategy": design,
                **({"swap": False} if design == "circular" else {}),
                "use_principle": False,
                "seed": seed,
            }
        )
    return RankBatchRequest(groups=groups)


def run(
    design: str, replicas: int, routing: str, seed: int = 0, prompts: int = PROMPTS, rollouts: int = ROLLOUTS
) -> Outcome:
    clock = VirtualClock()
    loop = clock.loop()
    client = FleetClient(replicas, routing, seed)
    endpoint = {"endpoint": {"base_url": "http://unused/v1", "model": client.model, "tokenizer": "unused"}}
    config = AppConfig.model_validate(
        {
            "pairwise": {**endpoint, "call_timeout_s": 1e9, "max_inflight_calls": 100_000, "max_call_s": 1e9},
            "router": {
                "max_candidates": max(rollouts, 2),
                "max_concurrent_requests": prompts,
                "max_batch_groups": prompts,
                "max_request_s": 1e9,
                "cohorts": {"enabled": False},  # the step comes as one rank_batch
            },
        }
    )

    async def main() -> tuple[float, int]:
        judge = PairwiseJudge(client, PairwiseSettings(prompt_format="rendered", structured_output="compact"))
        service = JudgingService(config, Judges(pairwise=judge), metrics=NullMetrics())
        while not service.readiness.ready:
            await asyncio.sleep(1)
        client.latencies.clear()
        client.run_times.clear()
        client.cpu = RouterCPU()  # the step's own CPU, not the setup's
        for r in client.replicas:
            r.busy_s = r.seq_s = 0.0
        started = loop.time()
        answer, stats = await service.rank_batch(step_body(design, seed, prompts, rollouts))
        assert answer.judged == prompts, answer.failed
        return loop.time() - started, sum(s.calls.total() for s in stats)

    try:
        makespan, calls = loop.run_until_complete(main())
    finally:
        loop.close()
    busy = [r.busy_s for r in client.replicas]
    return Outcome(
        design=design,
        replicas=replicas,
        routing=routing,
        calls=calls,
        makespan_s=makespan,
        slowest_call_s=max(client.run_times),
        calls_per_s=calls / makespan,
        router_cpu_per_call_ms=1000 * client.cpu.per_call_s,
        router_busy=client.cpu.held_s / makespan,
        replica_busy=sum(busy) / len(busy) / makespan,
        mean_batch=sum(r.seq_s for r in client.replicas) / max(sum(busy), 1e-9),
        truncated=client.truncated / max(len(client.latencies), 1),
    )


def report(outcomes: Sequence[Outcome]) -> str:
    one = {o.design: o.calls_per_s for o in outcomes if o.replicas == 1}
    lines = [
        "# Fleet capacity, in simulation (bench/fleet_sim.py)",
        "",
        "A simulation: the router's real code (`JudgingService.rank_batch`, the pair designs, the real "
        "`PairwiseJudge`) against simulated continuous-batching replicas on a virtual clock; parameters in the "
        "module docstring. One step of NVIDIA's RLHF shape, 128 prompts × 16 rollouts, submitted at once as one "
        "`/v1/rank_batch`; the router's CPU charged per call as measured in the same run.",
        "",
        f"Machine (router CPU): {cpu_model()}.",
        "",
        "| design | replicas | routing | calls | makespan (min) | slowest call (min, share) | calls/s | vs N × one |"
        " router CPU/call (ms) | router busy | replica busy | mean batch | truncated |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        scale = o.calls_per_s / (o.replicas * one[o.design]) if o.design in one else float("nan")
        lines.append(
            f"| {o.design} | {o.replicas} | {o.routing} | {o.calls} | {o.makespan_s / 60:.1f} | "
            f"{o.slowest_call_s / 60:.1f} ({o.slowest_call_s / o.makespan_s:.0%}) | {o.calls_per_s:.2f} | "
            f"{scale:.0%} | {o.router_cpu_per_call_ms:.2f} | {o.router_busy:.1%} | {o.replica_busy:.0%} | "
            f"{o.mean_batch:.0f} | {o.truncated:.0%} |"
        )
    return "\n".join(lines) + "\n"


def plot(outcomes: Sequence[Outcome], path: Path) -> None:
    """Left: throughput against replicas, as a multiple of one replica's (the diagonal is linear scaling). Right:
    the slowest call's share of the makespan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one = {(o.design, o.routing): o.calls_per_s for o in outcomes if o.replicas == 1}
    fig, (speed, tail) = plt.subplots(1, 2, figsize=(10, 4))
    counts = sorted({o.replicas for o in outcomes})
    speed.plot(counts, counts, color="grey", linestyle=":", label="linear")
    colours = {design: f"C{k}" for k, design in enumerate(dict.fromkeys(o.design for o in outcomes))}
    for (design, routing), base in sorted(one.items()):
        rows = sorted((o for o in outcomes if (o.design, o.routing) == (design, routing)), key=lambda o: o.replicas)
        line = {"color": colours[design], "linestyle": "-" if routing == "default" else "--", "marker": "o"}
        x = [o.replicas for o in rows]
        speed.plot(x, [o.calls_per_s / base for o in rows], label=f"{design}, {routing} routing", **line)
        tail.plot(x, [o.slowest_call_s / o.makespan_s for o in rows], **line)
    speed.set(xlabel="pairwise replicas", ylabel="judge calls/s, × one replica's", xticks=counts)
    tail.set(xlabel="pairwise replicas", ylabel="slowest call / makespan", xticks=counts, ylim=(0, 1))
    speed.legend(fontsize=7)
    fig.suptitle("One step of 128 × 16, simulated replicas (bench/fleet_sim.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", nargs="+", default=["circular", "swiss", "adaptive"])
    parser.add_argument("--replicas", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--routing", nargs="+", default=["affinity", "default"], choices=["affinity", "default"])
    parser.add_argument("--out", type=Path, default=Path("bench/results/fleet_sim.md"))
    args = parser.parse_args(argv)
    outcomes = []
    for design in args.designs:
        for replicas in args.replicas:
            for routing in args.routing:
                outcome = run(design, replicas, routing)
                print(json.dumps(dataclasses.asdict(outcome)), flush=True)
                outcomes.append(outcome)
    figure = args.out.with_suffix(".png")
    args.out.write_text(report(outcomes) + f"\n![scaling]({figure.name})\n")
    plot(outcomes, figure)
    print(f"wrote {args.out} and {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
