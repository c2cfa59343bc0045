"""Prefix-cache affinity on a real judge fleet: Serve's default router against its two affinity routers, one run.

    python -m bench.fleet_bench                      # configs/cpu-fleet.yaml, 12 groups × 4 rollouts
    python -m bench.fleet_bench --groups 16 --kv-mib 384 --variants default affinity prefix

Starts a Ray cluster of its own (own temp folder, random ports; nothing else on the machine is touched) and deploys
``configs/cpu-fleet.yaml`` (two pairwise replicas, one principle replica) once per variant, each time sending the
same burst of new groups:

* ``single``: the pairwise judge as one replica with the fleet's whole KV cache (``--single-kv-mib``, default
  twice ``--kv-mib``), both its engines' threads and the fleet's whole ``max_ongoing_requests``: the hit rate a
  fleet would reach if its replicas shared one cache (with one replica's cache it would thrash like the default
  router, and be no reference);
* ``default``: two replicas, ``request_router_config`` removed (Serve's PowerOfTwoChoices router);
* ``affinity``: two replicas with ``ConsistentHashRouter`` (each batch's ``session_id``: its group's key);
* ``prefix``: two replicas with Serve's ``PrefixCacheAffinityRouter`` (as ``deployments.routing`` keeps it to live
  replicas; each batch's ``prompt``: its group's key; a new key goes to the replica holding the least text, a known
  one to the replica it went to).

The burst: every group its own long conversation (a district report, ~1.3k tokens as a judge prompt), half of the
groups arriving as per-rollout ``/v1/reward`` cohorts and half in one ``/v1/rank_batch``, all at once. Each pairwise
replica's KV cache is cut to ``--kv-mib`` (``kv_cache_memory_bytes``: ``VLLM_CPU_KVCACHE_SPACE`` takes whole GiB
only) so that the burst's prompts do not fit one replica, but half of them do. The principle judge is not called
(``use_principle`` off, as in bench/rl_burst.py): affinity concerns the replicated pairwise judge.

Read from each pairwise replica's own counters on Ray's metrics endpoint, before and after the burst: vLLM's prompt
tokens by source (``local_cache_hit`` / ``local_compute``, label ``ReplicaId``), its finished requests (judge calls)
and Serve's request counter of the deployment (Ray calls: one ``chat_many`` per group and round). From the client:
p50/p99 of the ``/v1/reward`` requests and the ``/v1/rank_batch``'s time. Separately, the burst's ``/v1/rank_batch``
is replayed through the router's real code against instant stand-in judges, once with per-group batching and once
with one batch per moment, to count the Ray calls per-group batching adds to a step.

Writes bench/results/fleet_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import logging
import os
import socket
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.prefix_cache import CANDIDATES, long_conversation
from bench.ray_metrics import metrics_text
from bench.rl_burst import _percentile, burst_config
from deployments.hosting import cpu_model
from serve_app.local_service import ROOT

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("single", "default", "affinity", "prefix")
#: the request router of each two-replica variant (None: Serve's default, PowerOfTwoChoices)
ROUTERS: dict[str, dict[str, Any] | None] = {
    "default": None,
    "affinity": {
        "request_router_class": "ray.serve.experimental.consistent_hash_router.ConsistentHashRouter",
        "request_router_kwargs": {"num_virtual_nodes": 100, "num_fallback_replicas": 1},
    },
    "prefix": {
        "request_router_class": "deployments.routing.LiveReplicaAffinityRouter",
        "request_router_kwargs": {"do_eviction": True},
    },
}
#: the variants that route a group's calls by its key, each measured against the default router
AFFINITY_VARIANTS = ("affinity", "prefix")
TOKENS = "ray_vllm_prompt_tokens_by_source"
FINISHED = "ray_vllm_request_success"
RAY_CALLS = "ray_serve_deployment_request_counter"
BLOCK_SIZE = 128  # vLLM CPU's default (vllm/platforms/cpu.py)
HIT, COMPUTE = "local_cache_hit", "local_compute"
#: targets of the fleet issue, in points of hit rate
WITHIN_SINGLE, DEFAULT_SHORTFALL = 0.03, 0.10

Group = tuple[list[dict[str, str]], list[str]]  # (conversation, rollouts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "cpu-fleet.yaml")
    parser.add_argument("--groups", type=int, default=12, help="groups in the burst: half cohorts, half rank_batch")
    parser.add_argument("--rollouts", type=int, default=4, choices=range(2, len(CANDIDATES) + 1), metavar="R")
    parser.add_argument("--turns", type=int, default=3, help="report sections in each group's conversation")
    parser.add_argument("--strategy", default="adaptive", help="pair design of every group (the config's default)")
    parser.add_argument("--kv-mib", type=int, default=288, help="KV cache of each pairwise replica")
    parser.add_argument("--single-kv-mib", type=int, default=None, help="the single replica's; default 2 × --kv-mib")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--port", type=int, default=0, help="HTTP port of the bench's Serve proxy; 0: a free one")
    parser.add_argument("--out", type=Path, default=RESULTS / "fleet_bench.md")
    args = parser.parse_args(argv)
    if args.groups < 2:
        parser.error("--groups must be at least 2 (one cohort group, one rank_batch group)")
    if args.single_kv_mib is None:
        args.single_kv_mib = 2 * args.kv_mib
    return args


# ---- the workload ------------------------------------------------------------------------------------------------


def burst_groups(groups: int, rollouts: int, turns: int) -> list[Group]:
    """Each group its own conversation: a district line first, so that no two groups share a prefix block beyond
    the judge's instructions (vLLM chains block hashes), and rollouts rotated through the candidate summaries."""
    out = []
    for g in range(groups):
        conversation = long_conversation(turns)
        first = conversation[0]
        conversation[0] = {**first, "content": f"I am the council clerk of district {g + 1}. {first['content']}"}
        out.append((conversation, [CANDIDATES[(g + k) % len(CANDIDATES)] for k in range(rollouts)]))
    return out


def rank_batch_body(groups: Sequence[Group]) -> dict[str, Any]:
    return {"groups": [{"conversation": c, "candidates": r} for c, r in groups]}


def variant_args(document: Mapping[str, Any], variant: str, kv_mib: int, single_kv_mib: int) -> dict[str, Any]:
    """The application args of one variant: the fleet config (with bench/rl_burst.py's burst settings) with the
    pairwise judge's KV cache cut, and its replica count or request router changed."""
    args = copy.deepcopy(document["applications"][0]["args"])
    llm = args["pairwise"]["hosted"]["llm_config"]
    # VLLM_CPU_KVCACHE_SPACE wins over kv_cache_memory_bytes and takes whole GiB only
    llm.get("runtime_env", {}).get("env_vars", {}).pop("VLLM_CPU_KVCACHE_SPACE", None)
    llm.setdefault("engine_kwargs", {})["kv_cache_memory_bytes"] = (
        single_kv_mib if variant == "single" else kv_mib
    ) * 2**20
    deployment = llm.setdefault("deployment_config", {})
    if variant == "single":
        replicas = deployment.get("num_replicas", 1)
        deployment["num_replicas"] = 1
        # the fleet's batches in flight: a replica's bound is its share of them (see configs/cpu-fleet.yaml)
        if "max_ongoing_requests" in deployment:
            deployment["max_ongoing_requests"] *= replicas
        # the two fleet engines' threads (Ray gives each half-CPU engine one), so that the reference is not slower
        llm.setdefault("runtime_env", {}).setdefault("env_vars", {})["OMP_NUM_THREADS"] = "2"
    elif ROUTERS[variant] is None:
        deployment.pop("request_router_config", None)
    else:
        deployment["request_router_config"] = copy.deepcopy(ROUTERS[variant])
    return args


# ---- counters from Ray's metrics page ----------------------------------------------------------------------------


def by_label(text: str, name: str, label: str, **match: str) -> dict[str, float]:
    """Counter ``name``'s samples whose labels include ``match``, summed per value of ``label``."""
    base = name.removesuffix("_total")
    out: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        if family.name != base:
            continue
        for s in family.samples:
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in match.items()):
                out[s.labels.get(label, "")] += s.value
    return dict(out)


@dataclass
class ReplicaCounts:
    hit: float = 0.0
    computed: float = 0.0
    finished: float = 0.0

    @property
    def tokens(self) -> float:
        return self.hit + self.computed

    @property
    def hit_rate(self) -> float:
        return self.hit / self.tokens if self.tokens else float("nan")


def replica_counts(text: str, model: str) -> dict[str, ReplicaCounts]:
    """The pairwise model's counters per vLLM replica (``ReplicaId``)."""
    hit = by_label(text, TOKENS, "ReplicaId", model_name=model, source=HIT)
    computed = by_label(text, TOKENS, "ReplicaId", model_name=model, source=COMPUTE)
    finished = by_label(text, FINISHED, "ReplicaId", model_name=model)
    return {
        r: ReplicaCounts(hit.get(r, 0.0), computed.get(r, 0.0), finished.get(r, 0.0))
        for r in {*hit, *computed, *finished}
    }


def counts_delta(
    before: Mapping[str, ReplicaCounts],
    after: Mapping[str, ReplicaCounts],
    skip: set[str] = frozenset(),  # type: ignore[assignment]
) -> dict[str, ReplicaCounts]:
    """Per replica, what ``after`` added to ``before``; replicas in ``skip`` (earlier variants', whose last values
    may linger on the page) are left out."""
    zero = ReplicaCounts()
    return {
        r: ReplicaCounts(
            a.hit - before.get(r, zero).hit,
            a.computed - before.get(r, zero).computed,
            a.finished - before.get(r, zero).finished,
        )
        for r, a in sorted(after.items())
        if r not in skip
    }


def pooled(counts: Mapping[str, ReplicaCounts]) -> ReplicaCounts:
    return ReplicaCounts(
        sum(c.hit for c in counts.values()),
        sum(c.computed for c in counts.values()),
        sum(c.finished for c in counts.values()),
    )


def settled(read: Callable[[], Any], every_s: float = 6.0, timeout_s: float = 90.0) -> Any:
    """``read()`` once two reads ``every_s`` apart agree (Ray exports replica metrics every few seconds)."""
    last = read()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(every_s)
        now = read()
        if now == last:
            return now
        last = now
    return last


# ---- one variant ------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    variant: str
    replicas: dict[str, ReplicaCounts]
    ray_calls: dict[str, float]  # per route of the HTTP request that made them
    wall_s: float
    reward_latencies: list[float]
    rank_batch_s: float
    statuses: list[int]
    router_calls: int  # pairwise calls the answers report (a cohort's once)
    failed_calls: int
    start_s: float
    engine_cpu_s: float = float("nan")  # CPU time of the pairwise replicas' processes (engines included) in the burst
    load: tuple[float, float] = (float("nan"), float("nan"))  # the machine's 1-min load average, at start and end

    @property
    def total(self) -> ReplicaCounts:
        return pooled(self.replicas)


async def send_burst(base: str, cohorts: Sequence[Group], batch: Sequence[Group]) -> dict[str, Any]:
    """Every cohort's rollouts as their own ``/v1/reward`` requests and the batch groups as one ``/v1/rank_batch``,
    all at once."""
    import httpx

    latencies: list[float] = []
    statuses: list[int] = []
    cohort_calls: dict[str, tuple[int, int]] = {}
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
    async with httpx.AsyncClient(base_url=base, timeout=3600, limits=limits) as http:

        async def reward(g: int, k: int) -> None:
            conversation, rollouts = cohorts[g]
            body = {
                "conversation": conversation,
                "response": rollouts[k],
                "group_id": f"fleet-bench-{g}",
                "group_size": len(rollouts),
                "rollout_index": k,
            }
            started = time.monotonic()
            r = await http.post("/v1/reward", json=body)
            latencies.append(time.monotonic() - started)
            statuses.append(r.status_code)
            if r.status_code == 200:
                out = r.json()
                cohort_calls[out["cohort_id"]] = (out["pairwise_calls"], out["failed_calls"])

        async def rank_batch() -> tuple[float, int, int]:
            started = time.monotonic()
            r = await http.post("/v1/rank_batch", json=rank_batch_body(batch))
            wall = time.monotonic() - started
            statuses.append(r.status_code)
            results = [e["result"] for e in r.json()["results"] if e["status"] == 200] if r.status_code == 200 else []
            return wall, sum(x["pairwise_calls"] for x in results), sum(x["failed_calls"] for x in results)

        started = time.monotonic()
        (rank_s, batch_calls, batch_failed), *_ = await asyncio.gather(
            rank_batch(), *(reward(g, k) for g in range(len(cohorts)) for k in range(len(cohorts[g][1])))
        )
        wall = time.monotonic() - started
    return {
        "wall_s": wall,
        "latencies": latencies,
        "rank_batch_s": rank_s,
        "statuses": statuses,
        "router_calls": batch_calls + sum(c for c, _ in cohort_calls.values()),
        "failed_calls": batch_failed + sum(f for _, f in cohort_calls.values()),
    }


def pairwise_cpu_s() -> float:
    """CPU seconds used so far by this process's pairwise replicas and their vLLM engine processes. The cluster is
    this process's own (``ray.init(address="local")``), so its replicas are among this process's descendants; the
    CPU they used does not depend on what else runs on the machine, unlike judge calls per second."""
    import psutil

    total = 0.0
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if p.cmdline()[:1] and p.cmdline()[0].startswith("ray::ServeReplica:genrm:pairwise"):
                for q in [p, *p.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        t = q.cpu_times()
                        total += t.user + t.system
    return total


def run_variant(variant: str, app_args: dict[str, Any], base: str, groups: Sequence[Group], seen: set[str]) -> Outcome:
    import httpx
    from ray import serve

    from deployments.hosting import deployment_name
    from deployments.pairwise import host as pairwise_host
    from serve_app.app import build_app

    llm = app_args["pairwise"]["hosted"]["llm_config"]
    model = llm["model_loading_config"]["model_id"]
    deployment = deployment_name(pairwise_host.NAME_PREFIX, model)
    started = time.monotonic()
    serve.run(build_app(app_args), name="genrm", route_prefix="/")
    with httpx.Client(base_url=base, timeout=60) as client:
        deadline = time.monotonic() + 900
        while client.get("/readyz").status_code != 200:  # every judge answered its warm-up call
            if time.monotonic() > deadline:
                raise RuntimeError(f"{variant}: the judges did not come up")
            time.sleep(3)
    start_s = time.monotonic() - started

    def read() -> tuple[dict[str, ReplicaCounts], dict[str, float]]:
        text = metrics_text()
        calls = by_label(text, RAY_CALLS, "route", deployment=deployment, application="genrm")
        return replica_counts(text, model), calls

    before, calls_before = settled(read)
    half = len(groups) // 2
    cpu_before, load_before = pairwise_cpu_s(), os.getloadavg()[0]
    burst = asyncio.run(send_burst(base, groups[:half], groups[half:]))
    cpu_s, load_after = pairwise_cpu_s() - cpu_before, os.getloadavg()[0]
    after, calls_after = settled(read)
    replicas = counts_delta(before, after, seen)
    seen.update(after)
    serve.delete("genrm")
    return Outcome(
        variant=variant,
        replicas=replicas,
        ray_calls={route: n - calls_before.get(route, 0.0) for route, n in calls_after.items()},
        wall_s=burst["wall_s"],
        reward_latencies=burst["latencies"],
        rank_batch_s=burst["rank_batch_s"],
        statuses=burst["statuses"],
        router_calls=burst["router_calls"],
        failed_calls=burst["failed_calls"],
        start_s=start_s,
        engine_cpu_s=cpu_s,
        load=(load_before, load_after),
    )


# ---- Ray calls of a step, per-group batching or not ----------------------------------------------------------------


def replay_ray_calls(body: dict[str, Any], strategy: str, per_group: bool) -> tuple[int, int]:
    """(Ray calls, judge calls) of one ``/v1/rank_batch`` through the router's real code (``JudgingService``, the
    real ``PairwiseJudge`` and ``ServeHandleClient``) against an instant stand-in for the judge deployment.
    ``per_group=False`` sends every call without its affinity key and batch scope: one batch per moment, as before
    affinity. The
    stand-in answers every batch after the same short delay, so the groups' rounds stay in step: the one-batch
    count is its best case."""
    import contextvars

    from bench.instant_judges import InstantPairwise
    from deployments.engine_client import AFFINITY_KEY, CALL_SCOPE, Completion, ServeHandleClient
    from deployments.pairwise.judge import PairwiseJudge, PairwiseSettings
    from serve_app.config import AppConfig
    from serve_app.core.judge_pool import Judges
    from serve_app.core.service import JudgingService
    from serve_app.core.stats import NullMetrics
    from serve_app.protocols.genrm_api import RankBatchRequest

    server = InstantPairwise.func_or_class()

    class Many:
        def options(self, *, session_id: str) -> Many:
            return self

        async def remote(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
            await asyncio.sleep(0.05)
            return await server.chat_many(bodies)

    class Handle:
        chat_many = Many()

    class Unkeyed(ServeHandleClient):
        async def chat(self, request: dict[str, Any]) -> Completion:
            context = contextvars.copy_context()
            context.run(AFFINITY_KEY.set, None)
            context.run(CALL_SCOPE.set, None)
            return await asyncio.create_task(super().chat(request), context=context)

    client = (ServeHandleClient if per_group else Unkeyed)(Handle(), model="replay")
    groups = len(body["groups"])
    config = AppConfig.model_validate(
        {
            "pairwise": {"endpoint": {"base_url": "http://unused/v1", "model": "replay", "tokenizer": "unused"}},
            "router": {
                "max_candidates": 32,
                "max_concurrent_requests": groups,
                "selection": {"strategy": strategy, "use_principle": False},
            },
        }
    )
    settings = PairwiseSettings(prompt_format="rendered", structured_output="compact")

    async def main() -> int:
        service = JudgingService(config, Judges(pairwise=PairwiseJudge(client, settings)), metrics=NullMetrics())
        while not service.readiness.ready:  # its warm-up call is not the step's
            await asyncio.sleep(0.05)
        client.sent = 0
        answer, stats = await service.rank_batch(RankBatchRequest.model_validate(body))
        assert answer.judged == groups, answer
        return sum(s.calls.total() for s in stats)

    judge_calls = asyncio.run(main())
    return client.sent, judge_calls


# ---- the report ----------------------------------------------------------------------------------------------------


@dataclass
class Shape:
    """What the burst asks of a replica's KV cache: one judge prompt's tokens, and KV bytes per token."""

    prompt_tokens: int
    kv_bytes_per_token: int

    def kv_tokens(self, mib: int) -> int:
        blocks = mib * 2**20 // (BLOCK_SIZE * self.kv_bytes_per_token)
        return blocks * BLOCK_SIZE


def shape(groups: Sequence[Group], config: Mapping[str, Any]) -> Shape:
    """One pairwise call of the first group as the engine sees it (chat template applied), and the KV bytes per
    token of the pairwise engine (K and V × layers × KV heads × head size × the dtype it runs here)."""
    from transformers import AutoConfig, AutoTokenizer

    from deployments.hosting import resolve_cpu_dtype
    from deployments.pairwise.judge import PairwiseJudge, PairwiseSettings
    from serve_app.local_service import cpu_default_model_folder

    folder = str(cpu_default_model_folder())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    judge = PairwiseJudge(None, PairwiseSettings(prompt_format="rendered", structured_output="compact"))  # type: ignore[arg-type]
    conversation, rollouts = groups[0]
    messages = judge.messages(conversation, (rollouts[0], rollouts[1]), None)
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
    model = AutoConfig.from_pretrained(folder)
    head = getattr(model, "head_dim", None) or model.hidden_size // model.num_attention_heads
    llm = resolve_cpu_dtype(config["applications"][0]["args"]["pairwise"]["hosted"]["llm_config"])
    dtype = llm.get("engine_kwargs", {}).get("dtype", "bfloat16")
    width = 4 if dtype in ("float32", "float") else 2
    return Shape(len(encoded["input_ids"]), 2 * model.num_hidden_layers * model.num_key_value_heads * head * width)


def fits(burst: Shape, kv_tokens: int, args: argparse.Namespace) -> str:
    """Whether the burst's prompts fit one fleet replica's cache, and half of them (what affinity gives each)."""
    whole = args.groups * burst.prompt_tokens
    half = (args.groups + 1) // 2 * burst.prompt_tokens
    if whole <= kv_tokens:
        return "**the whole burst's prompts fit one fleet replica's cache**: no pressure for affinity to relieve."
    return (
        "the burst's prompts do not fit one fleet replica's cache, "
        + ("half of them do." if half <= kv_tokens else "**nor does half of them**.")
        + " A running call also holds its own blocks beyond the shared prompt."
    )


def _calls_per_ray_call(o: Outcome) -> str:
    ray_calls = sum(o.ray_calls.values())
    return f"{o.total.finished / ray_calls:.1f}" if ray_calls else "-"


def pairwise_bound(document: Mapping[str, Any]) -> int | str:
    """The pairwise judge's ``max_ongoing_requests`` in the config ``document``: the batches a replica takes before
    the affinity router sends a group's calls to the fallback replica."""
    llm = document["applications"][0]["args"]["pairwise"]["hosted"]["llm_config"]
    return llm.get("deployment_config", {}).get("max_ongoing_requests", "Serve's default")


def report(
    args: argparse.Namespace, outcomes: Sequence[Outcome], burst: Shape, replay: Mapping[str, int], bound: int | str
) -> str:
    half = args.groups // 2
    kv, single_kv = burst.kv_tokens(args.kv_mib), burst.kv_tokens(args.single_kv_mib)
    config = args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
    lines = [
        "# Prefix-cache affinity on the CPU fleet (bench/fleet_bench.py)",
        "",
        f"`python -m bench.fleet_bench --groups {args.groups} --rollouts {args.rollouts} --turns {args.turns} "
        f"--strategy {args.strategy} --kv-mib {args.kv_mib} --single-kv-mib {args.single_kv_mib}` on `{config}` "
        f"(each pairwise replica's `max_ongoing_requests`: {bound}).",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, **shared with other work running at the same time**: the "
        "variants ran one after another in one run (in the order of the table) and are compared with each other, "
        "not with other runs. SmolLM2-135M-Instruct on vLLM's CPU build, block size 128.",
        "",
        f"Burst: {args.groups} groups of {args.rollouts} rollouts sent at once — {half} as per-rollout "
        f"`/v1/reward` cohorts ({half * args.rollouts} requests), {args.groups - half} in one `/v1/rank_batch` — "
        f"design `{args.strategy}` in both orders, pairwise judge only. Each group has its own conversation "
        f"({2 * args.turns + 1} messages); one pairwise prompt is {burst.prompt_tokens:,} tokens, so the groups' "
        f"prompts are ~{args.groups * burst.prompt_tokens:,} tokens against a KV cache of {kv:,} tokens per "
        f"pairwise replica ({args.kv_mib} MiB; {single_kv:,} tokens for the single replica): {fits(burst, kv, args)}",
        "",
        "| variant | pairwise replicas | prompt tokens | from cache | hit rate | per replica: hit rate (judge calls) "
        "| judge calls | judge calls/s | CPU s per judge call | Ray calls | /v1/reward p50 s | p99 s | rank_batch s "
        "| burst s | load | non-200 |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    names = {
        "single": f"one, {args.single_kv_mib} MiB KV and 2 threads (the fleet's)",
        "default": f"two × {args.kv_mib} MiB KV, Serve's default router",
        "affinity": f"two × {args.kv_mib} MiB KV, ConsistentHashRouter",
        "prefix": f"two × {args.kv_mib} MiB KV, LiveReplicaAffinityRouter (Serve's PrefixCacheAffinityRouter)",
    }
    for o in outcomes:
        t = o.total
        per = ", ".join(f"{c.hit_rate:.1%} ({c.finished:.0f})" for c in o.replicas.values())
        lat = o.reward_latencies or [float("nan")]
        lines.append(
            f"| {o.variant} | {names[o.variant]} | {t.tokens:,.0f} | {t.hit:,.0f} | {t.hit_rate:.1%} | {per} | "
            f"{t.finished:.0f} | {t.finished / o.wall_s:.2f} | {o.engine_cpu_s / max(t.finished, 1):.2f} | "
            f"{sum(o.ray_calls.values()):.0f} | {statistics.median(lat):.1f} | {_percentile(lat, 0.99):.1f} | "
            f"{o.rank_batch_s:.1f} | {o.wall_s:.1f} | {o.load[0]:.1f} → {o.load[1]:.1f} | "
            f"{sum(s != 200 for s in o.statuses)} |"
        )
    lines += [
        "",
        "Hit rate: vLLM's `prompt_tokens_by_source` counters of each pairwise replica (label `ReplicaId`), "
        "`local_cache_hit` / (`local_cache_hit` + `local_compute`), summed over the replicas, read before and after "
        "the burst. Judge calls: the replicas' finished requests (vLLM's `request_success`). Ray calls: Serve's "
        "request counter of the pairwise deployment (one `chat_many` per group and round). Latencies: the client's, "
        "per HTTP request. Judge calls/s: judge calls over the whole burst's time. CPU s per judge call: CPU time of "
        "the pairwise replicas' processes (vLLM engines included) during the burst, per judge call: the cost of a "
        "call whatever else the machine ran. Load: the machine's 1-minute load average when the burst started and "
        "ended (2 cores). Engine start-up (not in the "
        "table): " + ", ".join(f"{o.variant} {o.start_s:.0f} s" for o in outcomes) + ".",
        "",
        "## Targets",
        "",
        *targets({o.variant: o for o in outcomes}),
        "",
        "## Ray calls of a step with per-group batching",
        "",
        f"The burst's `/v1/rank_batch` ({args.groups - half} groups, design `{args.strategy}`) replayed through the "
        "router's real code (`JudgingService`, `PairwiseJudge`, `ServeHandleClient`) against an instant stand-in "
        f"judge: {replay['judge_calls']} judge calls in {replay['per_group']} Ray calls with one batch per group and "
        f"round (affinity), {replay['per_moment']} with one batch per moment (every call without its key, as before "
        f"affinity): **{replay['per_group'] - replay['per_moment']} more Ray calls per step "
        f"({replay['per_group'] / max(replay['per_moment'], 1):.1f}×)**. The stand-in answers every batch after the "
        "same delay, so the groups' rounds stay in step: one batch per moment is at its best there, and the "
        "difference is the most per-group batching adds. On the real engines, whose groups' rounds drift apart, "
        "the burst's `/v1/rank_batch` made "
        + ", ".join(f"{o.ray_calls.get('/v1/rank_batch', 0):.0f} ({o.variant})" for o in outcomes)
        + " Ray calls, and the whole burst one Ray call per "
        + ", ".join(f"{_calls_per_ray_call(o)} judge calls ({o.variant})" for o in outcomes)
        + ".",
    ]
    return "\n".join(lines) + "\n"


def targets(by: Mapping[str, Outcome]) -> list[str]:
    """Per affinity router, one line per target of the fleet issue, met or missed and by how much."""
    out = []
    rate = {v: o.total.hit_rate for v, o in by.items()}
    for v in (v for v in AFFINITY_VARIANTS if v in by):
        name = ROUTERS[v]["request_router_class"].rsplit(".", 1)[1]  # type: ignore[index]
        if "single" in rate:
            gap = rate["single"] - rate[v]
            verdict = "met" if gap <= WITHIN_SINGLE else f"missed by {100 * (gap - WITHIN_SINGLE):.1f} points"
            out.append(
                f"- {name}: hit rate within {100 * WITHIN_SINGLE:.0f} points of a single replica's: "
                f"{rate[v]:.1%} against {rate['single']:.1%} ({-100 * gap:+.1f} points): **{verdict}**."
            )
        if "default" in rate:
            short = rate[v] - rate["default"]
            verdict = (
                "met" if short >= DEFAULT_SHORTFALL else f"missed by {100 * (DEFAULT_SHORTFALL - short):.1f} points"
            )
            vs_single = (
                f", {100 * (rate['single'] - rate['default']):.1f} below the single replica" if "single" in rate else ""
            )
            out.append(
                f"- {name}: the default router's shortfall (burst sized for >= {100 * DEFAULT_SHORTFALL:.0f} points): "
                f"{rate['default']:.1%}, {100 * short:.1f} points below {v}{vs_single}: **{verdict}**."
            )
            a, d = (by[x].total.finished / by[x].wall_s for x in (v, "default"))
            ca, cd = (by[x].engine_cpu_s / max(by[x].total.finished, 1) for x in (v, "default"))
            verdict = "met" if a >= d else f"missed by {1 - a / d:.0%}"
            out.append(
                f"- {name}: throughput not below the default router's: {a:.2f} against {d:.2f} judge calls/s "
                f"({a / d - 1:+.0%}): **{verdict}**; the pairwise replicas' CPU per judge call: {ca:.2f} s against "
                f"{cd:.2f} s ({ca / cd - 1:+.0%})."
            )
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)  # the replicas inherit it, and it would win over the bench's size
    groups = burst_groups(args.groups, args.rollouts, args.turns)
    half = args.groups // 2
    document = burst_config(args.config, args.strategy, args.groups)
    burst = shape(groups, document)
    step = rank_batch_body(groups[half:])
    replay = dict(zip(("per_group", "judge_calls"), replay_ray_calls(step, args.strategy, True), strict=True))
    replay["per_moment"] = replay_ray_calls(step, args.strategy, False)[0]
    print(f"replay: {replay}; {burst}", flush=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Ray's logging setup would print every request

    import ray
    from ray import serve

    port = args.port or _free_port()
    base = f"http://127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="fleet-bench-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    # address="local": a cluster of this process's own (random ports), never one already running on the machine
    ray.init(
        address="local",
        num_cpus=2,
        _temp_dir=temp,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    outcomes: list[Outcome] = []
    seen: set[str] = set()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for variant in args.variants:
            app_args = variant_args(document, variant, args.kv_mib, args.single_kv_mib)
            print(f"{variant}: starting", flush=True)
            outcome = run_variant(variant, app_args, base, groups, seen)
            t = outcome.total
            print(
                f"{variant}: hit rate {t.hit_rate:.1%} over {t.tokens:.0f} tokens, {t.finished:.0f} judge calls in "
                f"{outcome.wall_s:.1f} s, Ray calls {outcome.ray_calls}, per replica "
                f"{ {r[-8:]: round(c.hit_rate, 3) for r, c in outcome.replicas.items()} }",
                flush=True,
            )
            outcomes.append(outcome)
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()  # stops the cluster this process started, and only it
    text = report(args, outcomes, burst, replay, pairwise_bound(document))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
