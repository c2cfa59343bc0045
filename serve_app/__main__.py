"""Command line: ``python -m serve_app <command>``.

check-config FILE...   validate Serve config files offline (Ray's ServeDeploySchema, AppConfig, LLMConfig)
prepare-model SOURCE   convert a packaged GGUF (package://module/file.gguf) into the local model cache
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate Serve config files offline")
    check.add_argument("files", nargs="+")
    prepare = sub.add_parser("prepare-model", help="convert a packaged GGUF into the local model cache")
    prepare.add_argument("source")
    args = parser.parse_args(argv)

    if args.command == "prepare-model":
        from serve_app.model_cache import ensure_local_model

        print(ensure_local_model(args.source))
        return 0

    from serve_app.validate import validate_serve_config_file

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


if __name__ == "__main__":
    sys.exit(main())
