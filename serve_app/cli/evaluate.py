"""``evaluate --out DIR``: run RM-Bench / JudgeBench / HelpSteer3 / best-of-N files through the service and write a
report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

NAME = "evaluate"


def add_parser(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser(
        NAME,
        help="evaluate the judges on RM-Bench / JudgeBench / HelpSteer3 / best-of-N files",
        description="Send each item to the service's judges, keep their answers in DIR/outputs.jsonl as they finish "
        "(a rerun with the same DIR resumes), score them as the official scripts do, write DIR/report.md and plots.",
    )
    target = evaluate.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8000")
    target.add_argument("--serve", metavar="CONFIG", help="start the service from this Serve config for the run")
    evaluate.add_argument("--rmbench", type=Path, help="RM-Bench records (.json, .jsonl or .parquet)")
    evaluate.add_argument(
        "--rmbench-domain",
        help="domain of RM-Bench records that have none (chat, code, math, safety-refuse, safety-response); "
        "default: from the file name, e.g. code_filtered.json",
    )
    evaluate.add_argument("--judgebench", type=Path, help="JudgeBench pairs")
    evaluate.add_argument("--helpsteer3", type=Path, help="HelpSteer3 preference records")
    evaluate.add_argument("--bestofn", type=Path, help="best-of-N records with known answers")
    evaluate.add_argument("--out", type=Path, required=True, help="output folder (reused to resume)")
    evaluate.add_argument("--principle", action="append", help="principle for the principle judge (repeatable)")
    evaluate.add_argument("--strategy", action="append", help="best-of-N strategy to compare (repeatable)")
    evaluate.add_argument("--limit", type=int, help="only the first N items of each file")
    evaluate.add_argument("--sample", type=int, help="a fixed random subset of N items of each file (--seed)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    evaluate.add_argument(
        "--concurrency", type=int, help="items in flight at once (default: the capacity the service reports)"
    )
    evaluate.add_argument("--report-only", action="store_true", help="score what DIR holds; send nothing")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from serve_app.evaluation.report import RunMetadata, write_report
    from serve_app.evaluation.runner import EvaluationRequest, OutputStore, evaluate, load_all, run_models, score_all

    files = {b: getattr(args, b) for b in ("rmbench", "judgebench", "helpsteer3", "bestofn") if getattr(args, b)}
    if not files:
        print("evaluate: give at least one of --rmbench, --judgebench, --helpsteer3, --bestofn", file=sys.stderr)
        return 2
    if args.rmbench_domain and "rmbench" not in files:
        print("evaluate: --rmbench-domain applies to the --rmbench file; give one", file=sys.stderr)
        return 2
    request = EvaluationRequest(
        files=files,
        out=args.out,
        principles=args.principle or ["correctness"],
        strategies=args.strategy or ["knockout", "round_robin", "adaptive"],
        limit=args.limit,
        sample=args.sample,
        seed=args.seed,
        concurrency=args.concurrency,
        rmbench_domain=args.rmbench_domain,
    )
    token = os.environ.get("GENRM_API_TOKEN") or None
    metadata = RunMetadata(service=args.url, config=args.serve)
    try:
        if args.report_only:
            loaded = load_all(request)
        elif args.url:
            loaded = asyncio.run(evaluate(request, args.url, token))
        else:
            from serve_app.local_service import BASE, serve_run_process

            with serve_run_process(Path(args.serve).resolve()):
                loaded = asyncio.run(evaluate(request, BASE, token))
    except (ValidationError, ValueError, OSError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"stopped; finished items are kept in {args.out} (run the same command again to resume)", file=sys.stderr)
        return 130
    store = OutputStore(args.out)
    metadata.models = run_models(args.out)
    metadata.items = {b: sum((b, i) in store.done for i in _ids(r)) for b, r in loaded.items()}
    report = write_report(score_all(loaded, store, metadata), args.out)
    print(f"wrote {report}")
    return 0


def _ids(records: list) -> list[str]:
    from serve_app.evaluation.records import item_id

    return [item_id(r) for r in records]
