"""``render-k8s LAYOUT...``: render KubeRay manifests from k8s/layouts/*.yaml into k8s/<layout>/ (``--check``: compare
with the committed files, write nothing)."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

NAME = "render-k8s"


def add_parser(sub: argparse._SubParsersAction) -> None:
    render = sub.add_parser(NAME, help="render KubeRay manifests from layout files")
    render.add_argument("layouts", nargs="+")
    render.add_argument("--check", action="store_true", help="fail if the committed manifests differ; write nothing")


def run(args: argparse.Namespace) -> int:
    layouts, check = args.layouts, args.check
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
