"""``prepare-model SOURCE``: convert a packaged GGUF (package://module/file.gguf) into the local model cache."""

from __future__ import annotations

import argparse

NAME = "prepare-model"


def add_parser(sub: argparse._SubParsersAction) -> None:
    prepare = sub.add_parser(NAME, help="convert a packaged GGUF into the local model cache")
    prepare.add_argument("source")


def run(args: argparse.Namespace) -> int:
    from serve_app.model_cache import ensure_local_model

    print(ensure_local_model(args.source))
    return 0
