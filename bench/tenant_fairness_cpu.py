"""Tenant fairness on the CPU default's real engine: a light job's latency while a heavy job offers twice what the
service can do.

    python -m bench.tenant_fairness_cpu [--phase-s 180] [--rollouts 4] [--heavy-judge-calls 4]

The companion of bench/tenant_fairness.py (a simulation of a GPU replica): here the requests go over HTTP to
`serve run config.yaml` (SmolLM2-135M-Instruct on vLLM's CPU build) with two tenants of equal weight, each its own
bearer token. Each request is one ``/v1/rank`` group of ``--rollouts`` rollouts judged by the circular design in one
order (one pairwise call per rollout, the principle judge off), as in the simulation. Three phases, one run:

1. **capacity**: the heavy tenant keeps ``CAPACITY_OUTSTANDING`` groups outstanding for ``--capacity-s``; groups
   answered per second;
2. **alone**: the light tenant sends open-loop Poisson arrivals at ``LIGHT_FACTOR`` × capacity for ``--phase-s``;
3. **loaded**: the same light arrivals (same seed) while the heavy tenant sends open-loop Poisson arrivals at
   ``HEAVY_FACTOR`` × capacity; what the heavy tenant is refused is not sent again, the light tenant's refusals are
   sent again after their Retry-After (as the project's client does) and its latency counts from the first attempt.

Target (issue): the light tenant's p50 under load within 1.5× of its p50 alone — the target is set on simulated
judges; this reports what the CPU default does. ``--heavy-judge-calls`` gives the heavy tenant a ``max_judge_calls``
(its calls in the engine's batch at most). Writes bench/results/tenant_fairness_cpu.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.tenant_fairness import HEAVY_FACTOR, LIGHT_FACTOR, TARGET, arrivals, percentile, verdict
from deployments.hosting import cpu_model
from serve_app.local_service import ROOT, serve_run_process

RESULTS = Path(__file__).parent / "results"
TOKENS = {"heavy": "GENRM_BENCH_TOKEN_HEAVY", "light": "GENRM_BENCH_TOKEN_LIGHT"}
CAPACITY_OUTSTANDING = 16
#: the heavy tenant's own limits (the router's: 32 running, 64 queued)
HEAVY_LIMITS = {"max_concurrent_requests": 8, "max_queued_requests": 8}


def bench_config(base: Path, heavy_judge_calls: int | None = None) -> dict[str, Any]:
    """``base`` with two tenants, the circular design in one order and no principle judge."""
    document = yaml.safe_load(base.read_text())
    args = document["applications"][0]["args"]
    router = args.setdefault("router", {})
    router.pop("auth_token", None)
    router.pop("auth_token_env", None)
    router["tenants"] = [
        {"name": "heavy", "token_env": TOKENS["heavy"], **HEAVY_LIMITS, "max_judge_calls": heavy_judge_calls},
        {"name": "light", "token_env": TOKENS["light"]},
    ]
    router["selection"] = {**router.get("selection", {}), "strategy": "circular", "swap": False}
    router["selection"]["use_principle"] = False
    router["max_concurrent_requests"], router["max_queued_requests"] = 32, 64
    return document


def group(k: int, rollouts: int) -> dict[str, Any]:
    question = f"Which city is the capital of France? (group {k})"
    answers = ["Paris.", "Lyon.", "It is Paris, on the Seine.", "Marseille.", "Paris, of course.", "Nice."]
    return {
        "conversation": [{"role": "user", "content": question}],
        "candidates": [answers[(k + i) % len(answers)] for i in range(rollouts)],
    }


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    sent: int = 0


async def post(http: httpx.AsyncClient, tenant: str, body: dict[str, Any]) -> httpx.Response:
    return await http.post("/v1/rank", json=body, headers={"Authorization": f"Bearer {os.environ[TOKENS[tenant]]}"})


async def capacity(base: str, seconds: float, rollouts: int) -> float:
    """Groups per second with ``CAPACITY_OUTSTANDING`` outstanding (the heavy tenant's limits lifted by sending as
    the light tenant, which has none of its own)."""
    done = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=600) as http:

        async def worker(w: int) -> None:
            nonlocal done
            k = w
            while time.monotonic() < deadline:
                r = await post(http, "light", group(k, rollouts))
                done += r.status_code == 200
                k += CAPACITY_OUTSTANDING

        started = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(CAPACITY_OUTSTANDING)))
        return done / (time.monotonic() - started)


async def phase(base: str, seconds: float, rate: float, heavy_rate: float, rollouts: int) -> dict[str, Tally]:
    """Open-loop Poisson arrivals of both tenants for ``seconds`` (heavy_rate 0: the light tenant alone); waits for
    every light request to be answered."""
    tallies = {"light": Tally(), "heavy": Tally()}
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
    async with httpx.AsyncClient(base_url=base, timeout=900, limits=limits) as http:

        async def light_request(k: int) -> None:
            started = time.monotonic()
            while True:
                r = await post(http, "light", group(10_000 + k, rollouts))
                if r.status_code == 200:
                    tallies["light"].latencies.append(time.monotonic() - started)
                    return
                tallies["light"].refused[r.status_code] += 1
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))

        async def heavy_request(k: int) -> None:
            r = await post(http, "heavy", group(20_000 + k, rollouts))
            if r.status_code == 200:
                tallies["heavy"].latencies.append(0.0)
            else:
                tallies["heavy"].refused[r.status_code] += 1

        async def send_all(tenant: str, per_s: float, seed: int, send: Any) -> list[asyncio.Task[None]]:
            times = arrivals(per_s, math.ceil(2 * per_s * seconds) + 10, random.Random(seed))
            tasks = []
            started = time.monotonic()
            for k, at in enumerate(t for t in times if t < seconds):
                await asyncio.sleep(max(0.0, started + at - time.monotonic()))
                tasks.append(asyncio.ensure_future(send(k)))
                tallies[tenant].sent += 1
            return tasks

        jobs = [send_all("light", rate, 1, light_request)]
        if heavy_rate:
            jobs.append(send_all("heavy", heavy_rate, 2, heavy_request))
        sent = await asyncio.gather(*jobs)
        await asyncio.gather(*sent[0])  # the light tenant's answers; the heavy tenant's backlog is left to drain
        for task in sent[1] if heavy_rate else []:
            task.cancel()
    return tallies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--capacity-s", type=float, default=60.0)
    parser.add_argument("--phase-s", type=float, default=180.0)
    parser.add_argument("--heavy-judge-calls", type=int, default=None, help="the heavy tenant's max_judge_calls")
    parser.add_argument("--out", type=Path, default=RESULTS / "tenant_fairness_cpu.md")
    args = parser.parse_args(argv)
    for tenant, env in TOKENS.items():
        os.environ.setdefault(env, f"bench-{tenant}-token")
    document = bench_config(Path(ROOT, args.config), args.heavy_judge_calls)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=ROOT, prefix=".tenant-bench-") as f:
        yaml.safe_dump(document, f)
        f.flush()
        with serve_run_process(f.name) as run:
            base = str(run.client.base_url)
            cap = asyncio.run(capacity(base, args.capacity_s, args.rollouts))
            print(f"capacity: {cap * 60:.1f} groups/min", flush=True)
            alone = asyncio.run(phase(base, args.phase_s, LIGHT_FACTOR * cap, 0.0, args.rollouts))
            print(f"alone: p50 {percentile(alone['light'].latencies, 0.5):.2f} s", flush=True)
            loaded = asyncio.run(phase(base, args.phase_s, LIGHT_FACTOR * cap, HEAVY_FACTOR * cap, args.rollouts))
    ratio = percentile(loaded["light"].latencies, 0.5) / percentile(alone["light"].latencies, 0.5)
    heavy = loaded["heavy"]
    text = "\n".join(
        [
            "# Tenant fairness on the CPU default (bench/tenant_fairness_cpu.py)",
            "",
            f"`python -m bench.tenant_fairness_cpu --rollouts {args.rollouts} --capacity-s {args.capacity_s:.0f} "
            f"--phase-s {args.phase_s:.0f}"
            + (f" --heavy-judge-calls {args.heavy_judge_calls}" if args.heavy_judge_calls else "")
            + f"` on `{args.config}` with two tenants of equal weight. Machine: "
            f"{cpu_model()}, {os.cpu_count()} cores; SmolLM2-135M-Instruct on vLLM's CPU build, the pairwise judge "
            f"only. Each request: one `/v1/rank` group of {args.rollouts} rollouts, circular design in one order "
            f"({args.rollouts} judge calls). The heavy tenant's limits: {HEAVY_LIMITS['max_concurrent_requests']} "
            f"running + {HEAVY_LIMITS['max_queued_requests']} queued"
            + (f", at most {args.heavy_judge_calls} judge calls in flight" if args.heavy_judge_calls else "")
            + "; the router's: 32 + 64.",
            "",
            f"Capacity, measured first ({CAPACITY_OUTSTANDING} groups outstanding for {args.capacity_s:.0f} s): "
            f"**{cap * 60:.1f} groups/min**. The light tenant sends {LIGHT_FACTOR:.0%} of it, the heavy tenant "
            f"{HEAVY_FACTOR:.0f}× it, both open-loop Poisson for {args.phase_s:.0f} s.",
            "",
            "| light tenant | requests | p50 s | p90 s | refused attempts |",
            "|---|---:|---:|---:|---|",
            *(
                f"| {name} | {len(t['light'].latencies)} | {percentile(t['light'].latencies, 0.5):.2f} | "
                f"{percentile(t['light'].latencies, 0.9):.2f} | "
                f"{dict(t['light'].refused) or 'none'} |"
                for name, t in (("alone", alone), ("under the heavy load", loaded))
            ),
            "",
            f"Heavy tenant: {heavy.sent} groups sent, {len(heavy.latencies)} answered while the light tenant ran, "
            f"refused {dict(heavy.refused) or 'never'}.",
            "",
            f"Light tenant's p50 under load: {ratio:.2f}× its p50 alone; target {TARGET:g}× (set on simulated "
            f"judges): **{verdict(ratio)}**.",
            "",
        ]
    )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
