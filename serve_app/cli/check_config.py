"""``check-config FILE...``: validate Serve config files offline (Ray's ServeDeploySchema, AppConfig, LLMConfig)."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

NAME = "check-config"


def add_parser(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser(NAME, help="validate Serve config files offline")
    check.add_argument("files", nargs="+")


def run(args: argparse.Namespace) -> int:
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
