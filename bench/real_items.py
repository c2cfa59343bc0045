"""Real evaluation items end to end on a Serve config: a fixed 50-pair JudgeBench sample and a 10-record RM-Bench
sample through the service's own routes, as ``python -m serve_app evaluate`` sends them.

Reports per set: items/min, judge calls, failed calls and timeouts, refused requests, and the accuracy tables
(principle, pairwise, ensemble) with the pairwise judge's position consistency. The samples are seeded subsets of
the published files in ../shared/data (JudgeBench GPT-4o split; RM-Bench chat), the same every run.

    python -m bench.real_items [--config config.yaml] [--judgebench 50] [--rmbench 10] [--out bench/results/real_items]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

from serve_app.evaluation.report import RunMetadata, write_report
from serve_app.evaluation.runner import (
    EvaluationRequest,
    EvaluationService,
    OutputStore,
    evaluate,
    item_failures,
    score_all,
)
from serve_app.local_service import BASE, serve_run_process, shared_path

DATA = shared_path("data")
FILES = {
    "judgebench": DATA / "judgebench" / "judgebench_gpt-4o-2024-05-13.jsonl",
    "rmbench": DATA / "rmbench" / "chat_filtered.json",
}
#: judge calls one item makes: (principle, pairwise); RM-Bench judges 6 responses and 9 pairs in both orders
CALLS = {"judgebench": (2, 2), "rmbench": (6, 18)}


def _run(benchmark: str, n: int, out: Path) -> dict[str, Any]:
    shutil.rmtree(out / benchmark, ignore_errors=True)  # a fresh run: a resumed one would time only the rest
    request = EvaluationRequest(files={benchmark: FILES[benchmark]}, out=out / benchmark, sample=n, seed=0)
    svc = EvaluationService(BASE)
    started = time.monotonic()
    loaded = asyncio.run(evaluate(request, BASE, service=svc))
    wall_s = time.monotonic() - started
    # scored outside the event loop: the ensemble's scoring runs the selection code with asyncio.run itself
    return summarize(benchmark, loaded, request.out, wall_s, svc)


def summarize(
    benchmark: str, loaded: dict[str, Any], out: Path, wall_s: float, svc: EvaluationService
) -> dict[str, Any]:
    """The run's numbers from its stored outputs, and its report beside them."""
    store = OutputStore(out)
    items = [item for key, item in store.done.items() if key[0] == benchmark]
    failed = sum(item_failures(i)[0] for i in items)
    timeouts = sum(item_failures(i)[1] for i in items)
    results = score_all(loaded, store, RunMetadata(service=BASE, items={benchmark: len(items)}))
    write_report(results, out)
    principle_calls, pairwise_calls = CALLS[benchmark]
    summary: dict[str, Any] = {
        "benchmark": benchmark,
        "items": len(items),
        "wall_s": wall_s,
        "items_per_min": 60 * len(items) / wall_s,
        "principle_calls": principle_calls * len(items),
        "pairwise_calls": pairwise_calls * len(items),
        "failed_calls": failed,
        "timeouts": timeouts,
        "failed_items": sum(item_failures(i)[0] > 0 for i in items),
        "refused_requests": dict(svc.refusals),
        "overload_retries": svc.retried,
    }
    if benchmark == "judgebench":
        summary["accuracy"] = {
            judge: {"overall": s.accuracy, **{c: v.accuracy for c, v in s.categories.items()}}
            for judge, s in results.judgebench.items()
        }
    else:
        summary["accuracy"] = {
            judge: {"easy": s.easy, "normal": s.normal, "hard": s.hard, "overall": s.overall}
            for judge, s in results.rmbench.items()
        }
    consistency = results.position_consistency.get(benchmark)
    if consistency is not None:
        summary["position_consistency"] = consistency.consistency
        summary["first_preferred_share"] = consistency.first_preferred_share
    return summary


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _markdown(config: str, rows: list[dict[str, Any]], startup_s: float) -> str:
    lines = [
        "# Real items end to end on the CPU default",
        "",
        f"`python -m bench.real_items --config {config}`: seeded samples of the published files, through the "
        f"service's routes as `evaluate` sends them, at the concurrency the service reports. Service start to "
        f"ready: {startup_s:.0f} s.",
        "",
        "| set | items | wall s | items/min | judge calls (principle + pairwise) | failed calls | timeouts | "
        "failed items | refused requests | position consistency | first shown preferred |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        refused = ", ".join(f"{k}: {v}" for k, v in r["refused_requests"].items()) or "0"
        name = f"{r['benchmark']} (earlier run)" if r.get("from_earlier_run") else r["benchmark"]
        lines.append(
            f"| {name} | {r['items']} | {r['wall_s']:.0f} | {r['items_per_min']:.2f} | "
            f"{r['principle_calls']} + {r['pairwise_calls']} | {r['failed_calls']} | {r['timeouts']} | "
            f"{r['failed_items']} | {refused} | {_pct(r.get('position_consistency'))}% | "
            f"{_pct(r.get('first_preferred_share'))}% |"
        )
    for r in rows:
        columns = list(next(iter(r["accuracy"].values())).keys()) if r["accuracy"] else []
        lines += ["", f"**{r['benchmark']}** accuracy (%)", "", "| judge | " + " | ".join(columns) + " |"]
        lines.append("|---|" + "---:|" * len(columns))
        for judge, values in r["accuracy"].items():
            lines.append(f"| {judge} | " + " | ".join(_pct(values[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--judgebench", type=int, default=50, help="JudgeBench pairs (0: skip)")
    parser.add_argument("--rmbench", type=int, default=10, help="RM-Bench records (0: skip)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/real_items"))
    args = parser.parse_args(argv)
    for path in FILES.values():
        if not path.is_file():
            raise SystemExit(f"{path} is missing: this benchmark reads the published files from ../shared/data")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # A set given as 0 is not run again: its row from the last summary is kept (and marked), so one set can be
    # remeasured without the other.
    summary = args.out / "summary.json"
    previous = {r["benchmark"]: r for r in json.loads(summary.read_text())["runs"]} if summary.is_file() else {}
    rows = []
    with serve_run_process(Path(args.config).resolve(), log_path=args.out / "serve-run.log"):
        startup_s = time.monotonic() - started
        for benchmark, n in (("judgebench", args.judgebench), ("rmbench", args.rmbench)):
            if n:
                rows.append(_run(benchmark, n, args.out))
                print(json.dumps(rows[-1], indent=1), flush=True)
            elif benchmark in previous:
                rows.append({**previous[benchmark], "from_earlier_run": True})
    summary.write_text(json.dumps({"startup_s": startup_s, "runs": rows}, indent=1))
    text = _markdown(args.config, rows, startup_s)
    (args.out.parent / f"{args.out.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
