"""Judge health from a real run: the CPU default ranks real RM-Bench groups, and the health shares are read back
from the service's own Prometheus counters (``genrm_judge_health_events``), not from the answers.

    python -m bench.judge_health                  # 12 RM-Bench chat groups of 6 (3 chosen, 3 rejected)
    python -m bench.judge_health --groups 20

Starts the CPU default in-process (two SmolLM2 engines under ray.serve.llm), ranks each group with /v1/rank
(round robin, both orders: every pair judged, so flips and cycles are meaningful), then scrapes Ray's metrics page
and draws the shares per judge and the per-group score-length correlations. Writes
``bench/results/judge_health.md`` and ``judge_health.png``. SmolLM2 is no judge: the point is the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from bench.ray_metrics import counter_total, metrics_text
from deployments.hosting import cpu_model
from policies.health import JudgeHealth, events

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
METRIC = "ray_genrm_judge_health_events_total"
#: (label, judge, event, denominator event)
SHARES = [
    ("pairwise: cut at max_tokens", "pairwise", "cut_off", "call"),
    ("pairwise: unreadable or failed", "pairwise", "parse_failure", "call"),
    ("pairwise: ties", "pairwise", "tie", "verdict"),
    ("pairwise: order flips", "pairwise", "flip", "two_order"),
    ("pairwise: cyclic triples", "pairwise", "cyclic_triple", "judged_triple"),
    ("principle: cut at max_tokens", "principle", "cut_off", "answer"),
    ("principle: failed", "principle", "failure", "answer"),
]
EVENTS = sorted({(j, e) for _, j, e, _ in SHARES} | {(j, d) for _, j, _, d in SHARES})


def shares(counts: dict[tuple[str, str], float]) -> list[tuple[str, float | None, float, float]]:
    """(label, share, numerator, denominator) per row of :data:`SHARES`."""
    out = []
    for label, judge, event, whole in SHARES:
        num, den = counts.get((judge, event), 0.0), counts.get((judge, whole), 0.0)
        out.append((label, num / den if den else None, num, den))
    return out


def scraped_counts(text: str) -> dict[tuple[str, str], float]:
    return {(j, e): counter_total(text, METRIC, judge=j, event=e) for j, e in EVENTS}


def rmbench_groups(path: Path, n: int) -> list[dict[str, Any]]:
    records = json.loads(path.read_text())[:n]
    return [
        {"conversation": [{"role": "user", "content": r["prompt"]}], "candidates": [*r["chosen"], *r["rejected"]]}
        for r in records
    ]


def report(rows: list[tuple[str, float | None, float, float]], rhos: list[float], groups: int, seconds: float) -> str:
    lines = [
        "# Judge health on a real run",
        "",
        f"`python -m bench.judge_health --groups {groups}` on {cpu_model()} (2 cores), the CPU default (SmolLM2-135M "
        f"in both roles): {groups} RM-Bench chat groups of 6 responses (3 chosen, 3 rejected) ranked with "
        f"`/v1/rank`, round robin in both orders, in {seconds:.0f} s. The shares are read from the service's "
        "`genrm_judge_health_events_total` counters on Ray's metrics page, not from the answers.",
        "",
        "| share | value | events / of |",
        "|---|---|---|",
    ]
    for label, share, num, den in rows:
        value = "—" if share is None else f"{share:.1%}"
        lines.append(f"| {label} | {value} | {num:.0f} / {den:.0f} |")
    if rhos:
        mean = sum(rhos) / len(rhos)
        lines += [
            "",
            f"Score–length correlation inside groups (Spearman, {len(rhos)} groups): mean {mean:+.2f}, "
            f"min {min(rhos):+.2f}, max {max(rhos):+.2f}.",
        ]
    lines += ["", "![judge health](judge_health.png)", ""]
    return "\n".join(lines)


def plot(rows: list[tuple[str, float | None, float, float]], rhos: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    labels = [label for label, *_ in rows]
    values = [0.0 if share is None else share for _, share, _, _ in rows]
    left.barh(labels, values, color="#4c72b0")
    left.invert_yaxis()
    left.set_xlim(0, 1)
    left.set_xlabel("share (from the service's counters)")
    left.set_title("judge health")
    right.hist(rhos, bins=[-1 + k * 0.25 for k in range(9)], color="#dd8452")
    right.set_xlabel("Spearman ρ(score, length) per group")
    right.set_title("length correlation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--port", type=int, default=8126)
    parser.add_argument("--out", type=Path, default=RESULTS / "judge_health.md")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import httpx
    import ray
    from ray import serve

    from serve_app.app import build_app
    from serve_app.local_service import shared_path

    groups = rmbench_groups(shared_path("data", "rmbench", "chat_filtered.json"), args.groups)
    app_args = yaml.safe_load((ROOT / "config.yaml").read_text())["applications"][0]["args"]
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    try:
        serve.run(build_app(app_args), name="genrm", route_prefix="/")
        client = httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=1800)
        deadline = time.monotonic() + 900
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the CPU default did not get ready"
            time.sleep(5)
        before = scraped_counts(metrics_text())
        started = time.monotonic()
        rhos, from_answers = [], {k: 0 for k in EVENTS}
        for body in groups:
            r = client.post("/v1/rank", json={**body, "strategy": "round_robin", "swap": True})
            r.raise_for_status()
            health = r.json()["diagnostics"]
            if health["length_correlation"] is not None:
                rhos.append(health["length_correlation"])
            for key, count in events(JudgeHealth.model_validate(health)).items():
                if key in from_answers:
                    from_answers[key] += count
        seconds = time.monotonic() - started
        # Ray exports metrics every few seconds: wait until the counters have taken the last group
        counts: dict[tuple[str, str], float] = {}
        for _ in range(30):
            after = scraped_counts(metrics_text())
            counts = {k: after[k] - before.get(k, 0.0) for k in EVENTS}
            if counts[("pairwise", "call")] >= from_answers[("pairwise", "call")]:
                break
            time.sleep(3)
        rows = shares(counts)
        args.out.write_text(report(rows, rhos, args.groups, seconds))
        plot(rows, rhos, args.out.with_suffix(".png"))
        print(args.out.read_text())
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
