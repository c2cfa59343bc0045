"""Judging while rollouts arrive, on the CPU default's real engine: incremental against full-cohort Swiss.

    python -m bench.arrivals_cpu [--groups 4] [--rollouts 8]

The companion of bench/arrivals.py (a simulation). Runs `serve run config.yaml` twice, with
``router.cohorts.incremental`` on and then off (today's full-cohort Swiss), and sends the same RM-Bench groups
(bench/rl_burst.py's: 3 chosen and 3 rejected responses, and the first half of one of each, cut to 400 characters)
one rollout per ``/v1/reward`` request, in two arrival shapes: ``spread`` — evenly over four judge rounds; and
``straggler`` — all but one at once, the last four rounds later. Groups go one after another, so each is judged
alone. A judge round is measured in the same run, first: the p50 of ``/v1/rank`` over the same groups with one Swiss
round (its budget cut to that round's calls, the pairwise judge alone: N calls sent together). Measured per mode and
shape: the time from the last rollout sent to the last answer (in those rounds), pairwise calls, the Spearman ρ of
the rewards against RM-Bench's labels (chosen 1, rejected 0), and, paired per group, the ρ between the two modes'
rewards.
SmolLM2-135M is no judge: the point is the latency; ρ shows what the design does with this judge's verdicts.

Writes the CPU section of bench/results/arrivals.md (the simulation's sections are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from scipy.stats import spearmanr

from bench.arrivals import TARGET_ROUNDS, TITLE, arrival_times, paired_ci, write_section
from bench.rl_burst import groups as rmbench_groups
from bench.tenant_fairness import percentile
from deployments.hosting import cpu_model
from serve_app.local_service import ROOT, serve_run_process

RESULTS = Path(__file__).parent / "results"
SHAPES = ("spread", "straggler")
#: rl_burst's groups: 3 chosen, 3 rejected, then half of the first chosen and half of the first rejected
LABELS = [1, 1, 1, 0, 0, 0, 1, 0]


def bench_config(base: Path, incremental: bool, rollouts: int) -> dict[str, Any]:
    """``base`` with cohorts of ``rollouts`` that wait long enough for the slowest shape, judged incrementally or
    once complete; everything else as configured."""
    document = yaml.safe_load(base.read_text())
    router = document["applications"][0]["args"].setdefault("router", {})
    router["cohorts"] = {
        **router.get("cohorts", {}),
        "incremental": incremental,
        "group_size": rollouts,
        "group_timeout_s": 1800,
    }
    return document


def rho(values: Sequence[float], other: Sequence[float]) -> float:
    r = spearmanr(values, other).statistic
    return 0.0 if np.isnan(r) else float(r)


async def judge_round(http: httpx.AsyncClient, data: Sequence[tuple[str, list[str]]]) -> list[float]:
    """Seconds of one Swiss round (the pairwise judge alone) per group, one group at a time."""
    out = []
    for prompt, responses in data:
        body = {
            "conversation": [{"role": "user", "content": prompt}],
            "candidates": responses,
            "strategy": "swiss",
            "max_pairwise_calls": 2 * (len(responses) // 2),  # Swiss's first round, both orders, and no more
            "use_principle": False,
        }
        started = time.monotonic()
        r = await http.post("/v1/rank", json=body)
        r.raise_for_status()
        out.append(time.monotonic() - started)
    return out


async def one_group(
    http: httpx.AsyncClient, group_id: str, prompt: str, responses: list[str], times: Sequence[float], order: list[int]
) -> dict[str, Any]:
    """Rollout ``order[k]`` sent at ``times[k]``; returns the latency after the last one sent, the calls and the
    rewards by rollout index."""
    started = time.monotonic()
    sent: list[float] = []
    answered: dict[int, float] = {}

    async def post(k: int) -> dict[str, Any]:
        body = {
            "conversation": [{"role": "user", "content": prompt}],
            "response": responses[k],
            "group_id": group_id,
            "group_size": len(responses),
            "rollout_index": k,
        }
        r = await http.post("/v1/reward", json=body)
        r.raise_for_status()
        answered[k] = time.monotonic()
        return r.json()

    tasks = []
    for k, at in zip(order, times, strict=True):
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        sent.append(time.monotonic())
        tasks.append(asyncio.ensure_future(post(k)))
    answers = {a["rollout_index"]: a for a in await asyncio.gather(*tasks)}
    return {
        "latency_s": max(answered.values()) - max(sent),
        "calls": answers[0]["pairwise_calls"],
        "rewards": [answers[k]["reward"] for k in range(len(responses))],
        "closed_by": {a["closed_by"] for a in answers.values()},
    }


async def one_mode(
    base: str, data: Sequence[tuple[str, list[str]]], mode: str, seed: int
) -> tuple[float, dict[str, list[dict[str, Any]]]]:
    """The judge round p50 of this run and, per shape, every group's outcome."""
    async with httpx.AsyncClient(base_url=base, timeout=3600) as http:
        round_s = percentile(await judge_round(http, data), 0.5)
        print(f"{mode}: judge round p50 {round_s:.2f} s", flush=True)
        out: dict[str, list[dict[str, Any]]] = {}
        for shape in SHAPES:
            out[shape] = []
            for g, (prompt, responses) in enumerate(data):
                order = list(range(len(responses)))
                random.Random(seed + g).shuffle(order)  # which rollout comes last: the same in both modes
                times = arrival_times(shape, len(responses), round_s)
                group_id = f"arrivals-{mode}-{shape}-{g}-{seed}"
                outcome = await one_group(http, group_id, prompt, responses, times, order)
                out[shape].append(outcome)
                print(f"{mode} {shape} group {g}: {outcome['latency_s'] / round_s:.2f} rounds", flush=True)
    return round_s, out


def report(
    runs: dict[str, tuple[float, dict[str, list[dict[str, Any]]]]], groups: int, rollouts: int, minutes: float
) -> str:
    lines = [
        f"`python -m bench.arrivals_cpu --groups {groups} --rollouts {rollouts}` on `config.yaml` (the CPU default: "
        f"SmolLM2-135M-Instruct on vLLM's CPU build, both judges, the cohort design Swiss with both orders), "
        f"{cpu_model()}, {os.cpu_count()} cores, {minutes:.0f} min in all. The same {groups} RM-Bench groups of "
        f"{rollouts} in each mode, one group at a time, one `/v1/reward` request per rollout; the service was "
        "started once per mode. A judge round is the p50 of one Swiss round of `/v1/rank` (the pairwise judge "
        "alone, N calls together) over the same groups, measured first in each run. Latency: from the last rollout "
        "sent to the last answer, in those rounds. ρ: Spearman of the rewards against RM-Bench's labels (chosen 1, "
        "rejected 0), mean over groups; ρ between modes: the two modes' rewards for the same group.",
        "",
        "| arrivals | mode | judge round (s) | latency p50 / p90 (rounds) | pairwise calls | ρ vs labels |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for shape in SHAPES:
        for mode, (round_s, out) in runs.items():
            rows = out[shape]
            latency = [r["latency_s"] / round_s for r in rows]
            lines.append(
                f"| {shape} | {mode} | {round_s:.2f} | {percentile(latency, 0.5):.2f} / "
                f"{percentile(latency, 0.9):.2f} | {np.mean([r['calls'] for r in rows]):.1f} "
                f"| {np.mean([rho(r['rewards'], LABELS[:rollouts]) for r in rows]):+.2f} |"
            )
    lines.append("")
    (_, a), (_, b) = runs["incremental"], runs["full Swiss"]
    for shape in SHAPES:
        agree = [rho(x["rewards"], y["rewards"]) for x, y in zip(a[shape], b[shape], strict=True)]
        labels = LABELS[:rollouts]
        diff, half = paired_ci(
            [rho(x["rewards"], labels) - rho(y["rewards"], labels) for x, y in zip(a[shape], b[shape], strict=True)]
        )
        lines.append(
            f"- {shape}: Δρ vs labels (incremental − full Swiss, paired per group) {diff:+.2f} ± {half:.2f} "
            f"(95%, t with {groups - 1} degrees of freedom); ρ between the modes' rewards {np.mean(agree):+.2f} "
            f"(per group: {', '.join(f'{x:+.2f}' for x in agree)})."
        )
    incremental = runs["incremental"]
    worst = max(percentile([r["latency_s"] / incremental[0] for r in incremental[1][s]], 0.5) for s in SHAPES)
    lines += [
        "",
        f"Target: p50 latency after the last arrival ≤ {TARGET_ROUNDS:g} judge rounds: "
        f"**{'met' if worst <= TARGET_ROUNDS else 'missed'}** on this engine (worst shape: {worst:.2f}).",
        "",
        f"The Spearman target (within 0.02 of full Swiss at equal calls) is not decided here: {groups} groups of a "
        "135M model that is no judge give intervals far wider than 0.02, and two runs of the same groups agree "
        "little (ρ between the modes). The simulation above decides it on paired thousands of groups.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--rollouts", type=int, default=8, choices=range(2, len(LABELS) + 1), metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "arrivals.md")
    args = parser.parse_args(argv)
    data = rmbench_groups(args.groups, args.rollouts, 400)
    began = time.monotonic()
    runs = {}
    for mode, incremental in (("incremental", True), ("full Swiss", False)):
        document = bench_config(Path(ROOT, args.config), incremental, args.rollouts)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=ROOT, prefix=".arrivals-bench-") as f:
            yaml.safe_dump(document, f)
            f.flush()
            with serve_run_process(f.name) as run:
                runs[mode] = asyncio.run(one_mode(str(run.client.base_url), data, mode, args.seed))
    raw = args.out.with_name("arrivals_cpu.json")  # every group's outcome, so the report can be read again
    raw.write_text(json.dumps({m: {"round_s": r, "groups": out} for m, (r, out) in runs.items()}, default=sorted))
    text = report(runs, args.groups, args.rollouts, (time.monotonic() - began) / 60)
    write_section(args.out, "On the CPU default", text, TITLE)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
