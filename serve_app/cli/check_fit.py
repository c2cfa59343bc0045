"""``check-fit CONFIG``: offline, do JudgeBench / RM-Bench items fit the judges' context under the config's overlong
policy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "check-fit"


def add_parser(sub: argparse._SubParsersAction) -> None:
    fit = sub.add_parser(
        NAME,
        help="offline: do evaluation items fit the judges' context",
        description="Measure every judge call of each item in the judges' own tokens, as the router does, and say "
        "how many items the config's overlong policy would truncate or refuse. Exits 1 when any would be refused.",
    )
    fit.add_argument("config", help="a Serve config file (its first application)")
    fit.add_argument("--judgebench", type=Path, action="append", default=[], help="JudgeBench pairs (repeatable)")
    fit.add_argument("--rmbench", type=Path, action="append", default=[], help="RM-Bench records (repeatable)")
    fit.add_argument("--principle", action="append", help="principle the evaluation sends (default: correctness)")


def run(args: argparse.Namespace) -> int:
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
