"""``check-k8s FILE...``: validate RayService manifests offline (``--crd``: the RayService CRD file, for the
schema)."""

from __future__ import annotations

import argparse
import sys

NAME = "check-k8s"


def add_parser(sub: argparse._SubParsersAction) -> None:
    check_k8s = sub.add_parser(NAME, help="validate RayService manifests offline")
    check_k8s.add_argument("files", nargs="+")
    check_k8s.add_argument("--crd", help="the RayService CRD (ray.io_rayservices.yaml); without it, no schema check")


def run(args: argparse.Namespace) -> int:
    files, crd = args.files, args.crd
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
