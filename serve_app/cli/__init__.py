"""Command line: ``python -m serve_app <command>``, one module per command in this package.

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

from serve_app.cli import (
    check_config,
    check_fit,
    check_k8s,
    evaluate,
    prepare_model,
    render_k8s,
    score_judgebench,
)

#: every command, in the order of ``--help``
COMMANDS = (check_config, prepare_model, render_k8s, check_k8s, evaluate, score_judgebench, check_fit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    args = parser.parse_args(argv)
    return next(c for c in COMMANDS if args.command == c.NAME).run(args)
