"""Command line: ``python -m serve_app <command>``.

check-config FILE...   validate Serve config files offline (Ray's ServeDeploySchema, AppConfig, LLMConfig)
prepare-model SOURCE   convert a packaged GGUF (package://module/file.gguf) into the local model cache
render-k8s LAYOUT...   render KubeRay manifests from k8s/layouts/*.yaml into k8s/<layout>/ (--check: compare only)
check-k8s FILE...      validate RayService manifests offline (--crd: the RayService CRD file, for the schema)
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
    render = sub.add_parser("render-k8s", help="render KubeRay manifests from layout files")
    render.add_argument("layouts", nargs="+")
    render.add_argument("--check", action="store_true", help="fail if the committed manifests differ; write nothing")
    check_k8s = sub.add_parser("check-k8s", help="validate RayService manifests offline")
    check_k8s.add_argument("files", nargs="+")
    check_k8s.add_argument("--crd", help="the RayService CRD (ray.io_rayservices.yaml); without it, no schema check")
    args = parser.parse_args(argv)

    if args.command == "render-k8s":
        return _render_k8s(args.layouts, check=args.check)
    if args.command == "check-k8s":
        return _check_k8s(args.files, args.crd)
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


if __name__ == "__main__":
    sys.exit(main())
