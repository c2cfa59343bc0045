"""Command line: ``python -m serve_app <command>``.

check-config FILE...   validate Serve config files offline (Ray's ServeDeploySchema, AppConfig, LLMConfig)
prepare-model SOURCE   convert a packaged GGUF (package://module/file.gguf) into the local model cache
render-k8s LAYOUT...   render KubeRay manifests from k8s/layouts/*.yaml into k8s/<layout>/ (--check: compare only)
check-k8s FILE...      validate RayService manifests offline (--crd: the RayService CRD file, for the schema)
evaluate --out DIR     run RM-Bench / JudgeBench / HelpSteer3 / best-of-N files through the service and write a report
score-judgebench FILE  score published JudgeBench judgment files (outputs/*.jsonl) by the report's JudgeBench rule
check-fit CONFIG       offline: do JudgeBench / RM-Bench items fit the judges' context (the config's overlong policy)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate Serve config files offline")
    check.add_argument("files", nargs="+")
    prepare = sub.add_parser("prepare-model", help="convert a packaged GGUF into the local model cache")
    prepare.add_argument("source")
    render = sub.add_parser("render-k8s", help="render KubeRay manifests from layout files")
    render.add_argument("layouts", nargs="+")
    render.add_argument("--check", action="store_true", help="fail if the committed manifests differ; write nothing")
    check_k8s = sub.add_parser("check-k8s", help="validate RayService manifests offline")
    check_k8s.add_argument("files", nargs="+")
    check_k8s.add_argument("--crd", help="the RayService CRD (ray.io_rayservices.yaml); without it, no schema check")
    evaluate = sub.add_parser(
        "evaluate",
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
    judged = sub.add_parser(
        "score-judgebench",
        help="score published JudgeBench judgment files",
        description="Print the JudgeBench accuracy, overall and per source, of judgment files as JudgeBench publishes "
        "them (pairs with judgments[0] A first, judgments[1] B first), scored by the evaluation report's rule.",
    )
    judged.add_argument("files", nargs="+", type=Path)
    fit = sub.add_parser(
        "check-fit",
        help="offline: do evaluation items fit the judges' context",
        description="Measure every judge call of each item in the judges' own tokens, as the router does, and say "
        "how many items the config's overlong policy would truncate or refuse. Exits 1 when any would be refused.",
    )
    fit.add_argument("config", help="a Serve config file (its first application)")
    fit.add_argument("--judgebench", type=Path, action="append", default=[], help="JudgeBench pairs (repeatable)")
    fit.add_argument("--rmbench", type=Path, action="append", default=[], help="RM-Bench records (repeatable)")
    fit.add_argument("--principle", action="append", help="principle the evaluation sends (default: correctness)")
    args = parser.parse_args(argv)

    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "score-judgebench":
        return _score_judgebench(args.files)
    if args.command == "check-fit":
        return _check_fit(args)
    if args.command == "render-k8s":
        return _render_k8s(args.layouts, check=args.check)
    if args.command == "check-k8s":
        return _check_k8s(args.files, args.crd)
    if args.command == "prepare-model":
        from serve_app.model_cache import ensure_local_model

        print(ensure_local_model(args.source))
        return 0

    from serve_app.config_check import validate_serve_config_file

    failed = False
    for path in args.files:
        try:
            apps = validate_serve_config_file(path)
        except (ValidationError, ValueError, OSError) as exc:
            print(f"{path}: INVALID\n{exc}", file=sys.stderr)
            failed = True
            continue
        for app in apps:
            judges = (
                ", ".join(f"{role}: {cfg.model_loading_config.model_id}" for role, cfg in app.llm_configs.items())
                or "endpoints only"
            )
            print(f"{path}: application {app.name!r} OK ({judges})")
    return 1 if failed else 0


def _render_k8s(layouts: list[str], *, check: bool) -> int:
    from serve_app.kuberay.render import output_dir, render

    stale = []
    for layout in layouts:
        try:
            files = render(layout)
        except (ValidationError, ValueError, OSError) as exc:
            print(f"{layout}: INVALID\n{exc}", file=sys.stderr)
            return 1
        out = output_dir(layout)
        for name, text in files.items():
            path = out / name
            if check:
                if not path.is_file() or path.read_text() != text:
                    stale.append(str(path))
                continue
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    for path in stale:
        print(f"{path}: out of date; run python -m serve_app render-k8s", file=sys.stderr)
    return 1 if stale else 0


def _check_k8s(files: list[str], crd: str | None) -> int:
    from serve_app.kuberay.validate import load_crd_schema, validate_manifest_file

    schema = load_crd_schema(crd) if crd else None
    if schema is None:
        print("no --crd given: the CRD schema check is skipped", file=sys.stderr)
    failed = False
    for path in files:
        problems = validate_manifest_file(path, schema)
        for problem in problems:
            print(f"{path}: {problem}", file=sys.stderr)
        print(f"{path}: {'INVALID' if problems else 'OK'}")
        failed = failed or bool(problems)
    return 1 if failed else 0


def _check_fit(args: argparse.Namespace) -> int:
    from serve_app.evaluation.fit import budgets_from_serve_config, check_fit
    from serve_app.evaluation.records import load_records

    files = [("judgebench", f) for f in args.judgebench] + [("rmbench", f) for f in args.rmbench]
    if not files:
        print("check-fit: give at least one --judgebench or --rmbench file", file=sys.stderr)
        return 2
    config, budgets = budgets_from_serve_config(args.config)
    refused = 0
    for benchmark, path in files:
        report = check_fit(
            benchmark,
            load_records(path, benchmark),
            budgets,
            principles=args.principle or ["correctness"],
            policy=config.router.overlong,
        )
        print("\n".join([f"{path}:", *report.lines()]))
        refused += report.refused
    return 1 if refused else 0


def _evaluate(args: argparse.Namespace) -> int:
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


def _score_judgebench(files: list[Path]) -> int:
    from serve_app.evaluation.published import score_files
    from serve_app.evaluation.records import RecordError

    try:
        print("\n".join(score_files(files)).rstrip("\n"))
    except RecordError as exc:
        print(f"score-judgebench: {exc}", file=sys.stderr)
        return 1
    return 0


def _ids(records: list) -> list[str]:
    from serve_app.evaluation.records import item_id

    return [item_id(r) for r in records]


if __name__ == "__main__":
    sys.exit(main())
