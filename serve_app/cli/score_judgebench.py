"""``score-judgebench FILE...``: score published JudgeBench judgment files (outputs/*.jsonl) by the evaluation
report's JudgeBench rule."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "score-judgebench"


def add_parser(sub: argparse._SubParsersAction) -> None:
    judged = sub.add_parser(
        NAME,
        help="score published JudgeBench judgment files",
        description="Print the JudgeBench accuracy, overall and per source, of judgment files as JudgeBench publishes "
        "them (pairs with judgments[0] A first, judgments[1] B first), scored by the evaluation report's rule.",
    )
    judged.add_argument("files", nargs="+", type=Path)


def run(args: argparse.Namespace) -> int:
    files: list[Path] = args.files
    from serve_app.evaluation.published import score_files
    from serve_app.evaluation.records import RecordError

    try:
        print("\n".join(score_files(files)).rstrip("\n"))
    except RecordError as exc:
        print(f"score-judgebench: {exc}", file=sys.stderr)
        return 1
    return 0
