"""An RL-shaped burst on a Serve config: P prompts × R rollouts judged three ways, in one run.

(a) per sample, as OpenRLHF sends them: every rollout its own ``/v1/reward`` request, all at once, cohorted by the
    router (group_id = the prompt);
(b) one ``/v1/rank_batch`` holding every group;
(c) the bare-engine floor: the same judge prompts (the design's pairs, built by the router's own judge classes)
    sent straight to the two engines' deployments, one batched call per engine, with no router in the path.

Prompts and rollouts are real RM-Bench chat records (the 3 chosen and 3 rejected responses, plus a cut-short copy
of one of each, to make 8), cut to ``--chars`` characters so that a burst fits a small CPU machine. The design is
fixed (``--strategy``, both orders) so that (c) can send exactly the calls the router makes.

    python -m bench.rl_burst [--config config.yaml] [--prompts 32] [--rollouts 8] [--strategy circular]

Writes bench/results/rl_burst.md and .json: wall-clock, rewards/s, p50/p99 per sample, router memory, and the
cohort bookkeeping cost per sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from serve_app.local_service import BASE, ROOT, serve_run_process, shared_path

DATA = shared_path("data", "rmbench", "chat_filtered.json")
RESULTS = Path(__file__).parent / "results"


def groups(prompts: int, rollouts: int, chars: int) -> list[tuple[str, list[str]]]:
    from serve_app.evaluation.records import load_records

    out = []
    for r in load_records(DATA, "rmbench")[:prompts]:
        texts = [*r.chosen, *r.rejected, r.chosen[0][: len(r.chosen[0]) // 2], r.rejected[0][: len(r.rejected[0]) // 2]]
        out.append((r.prompt[:chars], [t[:chars].strip() or "(empty)" for t in texts[:rollouts]]))
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def per_sample(data: list[tuple[str, list[str]]], strategy: str) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
    async with httpx.AsyncClient(base_url=BASE, timeout=3600, limits=limits) as http:

        async def one(g: int, k: int, prompt: str, response: str) -> None:
            body = {
                "conversation": [{"role": "user", "content": prompt}],
                "response": response,
                "group_id": f"burst-{g}",
                "group_size": len(data[g][1]),
                "rollout_index": k,
            }
            started = time.monotonic()
            r = await http.post("/v1/reward", json=body)
            latencies.append(time.monotonic() - started)
            statuses.append(r.status_code)

        started = time.monotonic()
        await asyncio.gather(
            *(one(g, k, prompt, resp) for g, (prompt, rollouts) in enumerate(data) for k, resp in enumerate(rollouts))
        )
        wall = time.monotonic() - started
    return {"wall_s": wall, "latencies": latencies, "ok": statuses.count(200), "statuses": sorted(set(statuses))}


async def batch(data: list[tuple[str, list[str]]], strategy: str) -> dict[str, Any]:
    body = {
        "groups": [
            {
                "conversation": [{"role": "user", "content": prompt}],
                "candidates": rollouts,
                "strategy": strategy,
                "use_principle": False,
            }
            for prompt, rollouts in data
        ]
    }
    async with httpx.AsyncClient(base_url=BASE, timeout=3600) as http:
        started = time.monotonic()
        r = await http.post("/v1/rank_batch", json=body)
        wall = time.monotonic() - started
    out = r.json()
    ok = sum(len(e["result"]["scores"]) for e in out["results"] if e["status"] == 200)
    return {"wall_s": wall, "latencies": [wall] * ok, "ok": ok, "statuses": [r.status_code]}


def design_pairs(strategy: str, n: int) -> list[tuple[int, int]]:
    """The pairs of a one-round design (circular, round_robin): the calls the router makes, known in advance."""
    import numpy as np

    from policies.pairings import DesignState
    from policies.selection import SelectionConfig

    design = SelectionConfig(strategy=strategy).make_design()  # type: ignore[arg-type]
    assert design is not None
    state = DesignState(n=n, comparisons=[], rng=np.random.default_rng(0), tiebreak=np.arange(n))
    pairs = design.next_pairs(state)
    state.round = 1
    assert not design.next_pairs(state), f"{strategy} has more than one round: its calls are not known in advance"
    return pairs


def bare_engine(data: list[tuple[str, list[str]]], strategy: str) -> dict[str, Any]:
    """The design's pairwise prompts, built as the router builds them, straight to the engine deployment."""
    import ray
    from ray import serve

    from serve_app.evaluation.fit import budgets_from_serve_config

    config, _ = budgets_from_serve_config(str(ROOT / "config.yaml"))
    from deployments.hosting import deployment_name
    from deployments.pairwise import host as pairwise_host
    from deployments.pairwise.judge import PairwiseJudge

    assert config.pairwise is not None and config.pairwise.hosted is not None
    judge = PairwiseJudge(None, config.pairwise.settings)  # type: ignore[arg-type]  # builds requests only
    bodies = []
    for prompt, rollouts in data:
        conversation = [{"role": "user", "content": prompt}]
        for i, j in design_pairs(strategy, len(rollouts)):
            for a, b in ((i, j), (j, i)):  # both orders, as the router's swap does
                messages = judge.messages(conversation, (rollouts[a], rollouts[b]), None)
                bodies.append({**judge._request(messages, **judge._extra()), "model": config.pairwise.served_model})
    if not ray.is_initialized():
        ray.init(address="auto", logging_level="ERROR")
    name = deployment_name(pairwise_host.NAME_PREFIX, config.pairwise.hosted.model_id)
    handle = serve.get_deployment_handle(name, app_name="genrm")
    started = time.monotonic()
    answers = handle.chat_many.remote(bodies).result()
    wall = time.monotonic() - started
    ok = sum(1 for a in answers if not a.get("error"))
    return {"wall_s": wall, "latencies": [wall], "ok": ok, "calls": len(bodies), "statuses": []}


def run_all(config: Path, data: list[tuple[str, list[str]]], strategy: str) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    with serve_run_process(config):
        rows["(c) bare engine"] = bare_engine(data, strategy)
        rows["(a) per sample, cohorts"] = asyncio.run(per_sample(data, strategy))
        rows["(b) one rank_batch"] = asyncio.run(batch(data, strategy))
        rows["memory"] = router_memory_mb()
    return rows


def router_memory_mb() -> float | None:
    try:
        from ray.util.state import list_actors
    except ImportError:
        return None
    import psutil

    for a in list_actors(filters=[("state", "=", "ALIVE")], limit=10_000):
        if a.class_name and "Router" in a.class_name and a.pid:
            return psutil.Process(a.pid).memory_info().rss / 2**20
    return None


def burst_config(base: Path, strategy: str, prompts: int) -> dict[str, Any]:
    """``base`` with the design fixed for every route (cohorts included), no principle judge, and room for the
    whole burst: every group may run at once, and the engines' own schedulers (max_num_seqs) decide how many calls
    they take, as for the bare-engine floor."""
    document = yaml.safe_load(base.read_text())
    args = document["applications"][0]["args"]
    router = args.setdefault("router", {})
    router["selection"] = {**router.get("selection", {}), "strategy": strategy, "use_principle": False, "swap": True}
    router["cohorts"] = {**router.get("cohorts", {}), "strategy": strategy}
    router["max_concurrent_requests"] = max(router.get("max_concurrent_requests", 4), prompts)
    for role in ("principle", "pairwise"):
        args[role]["max_inflight_calls"] = None
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--chars", type=int, default=400, help="characters kept of each prompt and rollout")
    parser.add_argument(
        "--strategy", default="circular", choices=["circular", "round_robin"], help="a one-round design"
    )
    args = parser.parse_args(argv)
    data = groups(args.prompts, args.rollouts, args.chars)
    samples = sum(len(r) for _, r in data)
    config = burst_config(Path(args.config), args.strategy, args.prompts)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=ROOT, prefix=".rl-burst-") as f:
        yaml.safe_dump(config, f)
        f.flush()
        rows = run_all(Path(f.name), data, args.strategy)
    memory = rows.pop("memory")

    floor = rows["(c) bare engine"]["wall_s"]
    lines = [
        f"# RL-shaped burst: {args.prompts} prompts × {args.rollouts} rollouts ({samples} samples)",
        "",
        f"`python -m bench.rl_burst --prompts {args.prompts} --rollouts {args.rollouts} --strategy {args.strategy}` "
        f"on `{args.config}`: RM-Bench chat prompts and responses cut to {args.chars} characters; design "
        f"`{args.strategy}` in both orders, pairwise judge only. Router replica memory after the run: "
        f"{memory:.0f} MB."
        if memory
        else "",
        "",
        "| mode | wall s | rewards/s | p50 per sample s | p99 per sample s | answered | × bare engine |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lat = r["latencies"]
        lines.append(
            f"| {name} | {r['wall_s']:.1f} | {samples / r['wall_s']:.2f} | {statistics.median(lat):.1f} | "
            f"{_percentile(lat, 0.99):.1f} | {r['ok']} | {r['wall_s'] / floor:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rl_burst.md").write_text(text)
    summary = {k: {kk: vv for kk, vv in v.items() if kk != "latencies"} for k, v in rows.items()}
    (RESULTS / "rl_burst.json").write_text(json.dumps({"samples": samples, "memory_mb": memory, **summary}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
