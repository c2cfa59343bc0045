"""Load and soak: the CPU default held at twice its configured capacity for five minutes.

Capacity is what the router admits at once: ``router.max_concurrent_requests`` running plus
``max_queued_requests`` waiting (config.yaml: 4 + 16 = 20). Closed-loop clients on loopback keep ``factor`` times
that many best-of-N requests outstanding; a client that is refused waits ``backoff`` seconds (less than the
Retry-After the router sends, to keep the pressure on) and sends again. Measured:

- the excess: how many requests got 503, and how fast (target: at once, without touching a judge);
- the accepted requests: all must finish with 200 (no timeout, no other status), and their latency;
- memory over the run: resident memory of the router replica and of every process `serve run` started (engines,
  Ray, Serve), sampled every 10 s; the slope after the first minute (target: no growth).

    python -m bench.load_soak [--duration-s 300] [--factor 2]

Writes bench/results/load_soak.md and load_soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import yaml

from serve_app.local_service import BASE, CONVERSATION, ROOT, serve_run_process

RESULTS = Path(__file__).parent / "results"
BODY = {
    "conversation": CONVERSATION,
    "candidates": ["The capital of France is Paris.", "I think it is Lyon.", "Paris.", "France has no capital."],
    "principles": ["correctness"],
    "strategy": "knockout",
}


def _router_pid() -> int:
    import ray
    from ray.util.state import list_actors

    if not ray.is_initialized():
        ray.init(address="auto", logging_level="ERROR")
    pids = [
        a.pid
        for a in list_actors(filters=[("state", "=", "ALIVE")], limit=10_000)
        if (a.class_name or "").endswith(":Router")
    ]
    if len(pids) != 1:
        raise RuntimeError(f"expected one router replica, found {pids}")
    return int(pids[0])


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # a process that ended between listing and reading
            continue
    return total


class MemorySampler(threading.Thread):
    def __init__(self, router_pid: int, root_pid: int, every_s: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.router = psutil.Process(router_pid)
        self.root = psutil.Process(root_pid)
        self.every_s = every_s
        self.samples: list[tuple[float, int, int]] = []  # (s since start, router RSS, tree RSS)
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set():
            self.samples.append((time.monotonic() - started, self.router.memory_info().rss, _tree_rss(self.root)))
            self.stop.wait(self.every_s)


async def _client(http: httpx.AsyncClient, deadline: float, backoff_s: float, log: list[dict[str, Any]]) -> None:
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            r = await http.post("/v1/best_of_n", json=BODY)
            status, degraded = r.status_code, bool(r.status_code == 200 and r.json()["degraded"])
        except httpx.HTTPError as exc:
            status, degraded = f"client error: {type(exc).__name__}", False
        log.append({"t": started, "status": status, "latency_s": time.monotonic() - started, "degraded": degraded})
        if status == 503:
            await asyncio.sleep(backoff_s)


async def _load(clients: int, duration_s: float, backoff_s: float) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    async with httpx.AsyncClient(base_url=BASE, timeout=1800, limits=limits) as http:
        deadline = time.monotonic() + duration_s
        await asyncio.gather(*(_client(http, deadline, backoff_s, log) for _ in range(clients)))
    return log


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _slope_mb_per_min(samples: list[tuple[float, int, int]], column: int, skip_s: float) -> float:
    rows = [(t, s[column]) for s in samples if (t := s[0]) >= skip_s]
    if len(rows) < 3:
        return float("nan")
    t, rss = np.array(rows, dtype=float).T
    return float(np.polyfit(t / 60.0, rss / 2**20, 1)[0])


def summarise(
    log: list[dict[str, Any]], samples: list[tuple[float, int, int]], capacity: int, clients: int, duration_s: float
) -> dict[str, Any]:
    ok = [e["latency_s"] for e in log if e["status"] == 200]
    refused = [e["latency_s"] for e in log if e["status"] == 503]
    other = [e for e in log if e["status"] not in (200, 503)]
    mb = 2**20
    after_warmup = [s for s in samples if s[0] >= 60] or samples
    return {
        "capacity": capacity,
        "clients": clients,
        "duration_s": duration_s,
        "requests": len(log),
        "accepted": len(ok),
        "accepted_degraded": sum(e["degraded"] for e in log if e["status"] == 200),
        "accepted_per_min": len(ok) / (duration_s / 60),
        "accepted_p50_s": _pct(ok, 50),
        "accepted_p99_s": _pct(ok, 99),
        "accepted_max_s": max(ok, default=float("nan")),
        "refused_503": len(refused),
        "refused_p50_ms": _pct(refused, 50) * 1000,
        "refused_p99_ms": _pct(refused, 99) * 1000,
        "refused_max_ms": max(refused, default=float("nan")) * 1000,
        "other_outcomes": [str(e["status"]) for e in other],
        "router_rss_mb_first": after_warmup[0][1] / mb,
        "router_rss_mb_last": samples[-1][1] / mb,
        "router_rss_mb_max": max(s[1] for s in samples) / mb,
        "router_rss_slope_mb_per_min": _slope_mb_per_min(samples, 1, 60),
        "tree_rss_mb_first": after_warmup[0][2] / mb,
        "tree_rss_mb_last": samples[-1][2] / mb,
        "tree_rss_mb_max": max(s[2] for s in samples) / mb,
        "tree_rss_slope_mb_per_min": _slope_mb_per_min(samples, 2, 60),
        "memory_samples": [(round(t, 1), r // mb, tr // mb) for t, r, tr in samples],
        "refused_over_1s": _slow_refusals(log),
    }


def _slow_refusals(log: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(seconds into the run, latency) of every 503 slower than 1 s: when they happen says why."""
    t0 = min((e["t"] for e in log), default=0.0)
    return [(round(e["t"] - t0, 1), round(e["latency_s"], 2)) for e in log if e["status"] == 503 and e["latency_s"] > 1]


def report(r: dict[str, Any]) -> str:
    rows = [
        (
            "offered load",
            f"{r['clients']} outstanding requests = {r['clients'] / r['capacity']:g}× capacity "
            f"({r['capacity']}) for {r['duration_s'] / 60:g} min",
        ),
        ("requests sent", f"{r['requests']}"),
        ("accepted → 200", f"{r['accepted']} ({r['accepted_per_min']:.1f}/min; {r['accepted_degraded']} degraded)"),
        (
            "accepted latency p50 / p99 / max",
            f"{r['accepted_p50_s']:.1f} / {r['accepted_p99_s']:.1f} / {r['accepted_max_s']:.1f} s",
        ),
        ("refused → 503", f"{r['refused_503']}"),
        (
            "503 latency p50 / p99 / max",
            f"{r['refused_p50_ms']:.0f} / {r['refused_p99_ms']:.0f} / {r['refused_max_ms']:.0f} ms",
        ),
        ("any other outcome", f"{len(r['other_outcomes'])} {sorted(set(r['other_outcomes'])) or ''}".strip()),
        (
            "router replica RSS (1 min → end, max)",
            f"{r['router_rss_mb_first']:.0f} → {r['router_rss_mb_last']:.0f} MB "
            f"(max {r['router_rss_mb_max']:.0f}); slope {r['router_rss_slope_mb_per_min']:+.2f} MB/min",
        ),
        (
            "all serving processes RSS (1 min → end, max)",
            f"{r['tree_rss_mb_first']:.0f} → "
            f"{r['tree_rss_mb_last']:.0f} MB (max {r['tree_rss_mb_max']:.0f}); slope "
            f"{r['tree_rss_slope_mb_per_min']:+.2f} MB/min",
        ),
    ]
    lines = [
        "# Load and soak (bench/load_soak.py)",
        "",
        "CPU default (`config.yaml`: two SmolLM2-135M vLLM engines, router 4 running + 16 queued) on a 2-core machine;",
        "each request a best-of-4 knockout with one principle; clients on loopback retry a 503 after 1 s.",
        "",
        "| measure | result |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=300.0)
    parser.add_argument("--factor", type=float, default=2.0, help="outstanding requests / capacity")
    parser.add_argument("--backoff-s", type=float, default=1.0)
    args = parser.parse_args()

    router = yaml.safe_load((ROOT / "config.yaml").read_text())["applications"][0]["args"]["router"]
    capacity = router["max_concurrent_requests"] + router["max_queued_requests"]
    clients = round(args.factor * capacity)
    with serve_run_process() as run:
        run.client.post("/v1/best_of_n", json=BODY)  # warm both engines once
        router_pid = _router_pid()
        print(f"router replica pid {router_pid}", flush=True)
        sampler = MemorySampler(router_pid, run.proc.pid)
        sampler.start()
        log = asyncio.run(_load(clients, args.duration_s, args.backoff_s))
        sampler.stop.set()
        sampler.join()
        after = run.client.post("/v1/best_of_n", json=BODY).status_code
    result = summarise(log, sampler.samples, capacity, clients, args.duration_s)
    result["status_after_load"] = after
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load_soak.json").write_text(json.dumps(result, indent=1))
    text = report(result) + f"\nA request after the load: HTTP {after}.\n"
    (RESULTS / "load_soak.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
