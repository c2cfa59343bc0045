"""Offline validation of a Serve config file, with Ray's own schema classes: no cluster, no GPU, no download.

The file goes through ray.serve's ServeDeploySchema (what ``serve run`` / ``serve deploy`` check); every application
built by ``serve_app.app:build_app`` through :class:`~serve_app.config.AppConfig`; and every hosted judge, with its
model-card defaults merged in, through ray.serve.llm's LLMConfig, and its placement group against its parallelism.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deployments.hosting import check_placement, validate_llm_config
from serve_app.config import AppConfig
from serve_app.core.judge_pool import judge_llm_configs

BUILDER = "serve_app.app:build_app"


class ValidatedApp:
    def __init__(self, name: str, config: AppConfig, llm_configs: dict[str, Any]) -> None:
        self.name = name
        self.config = config
        self.llm_configs = llm_configs  # role -> ray.serve.llm LLMConfig


def validate_serve_config(document: dict[str, Any]) -> list[ValidatedApp]:
    """Validate a parsed Serve config; raises pydantic's ValidationError (or ValueError) naming the bad field."""
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(document)
    apps = []
    for app in schema.applications:
        if app.import_path != BUILDER:
            continue
        config = AppConfig.model_validate(app.args or {})
        _check_router_overrides(app, config)
        fields = judge_llm_configs(config, resolve_sources=False)
        for role, f in fields.items():
            try:
                check_placement(f)
            except ValueError as exc:
                raise ValueError(f"application {app.name!r}, {role} judge: {exc}") from exc
        apps.append(ValidatedApp(app.name, config, {role: validate_llm_config(f) for role, f in fields.items()}))
    if not apps:
        raise ValueError(f"no application in the file uses import_path {BUILDER!r}")
    return apps


def _check_router_overrides(app: Any, config: AppConfig) -> None:
    """Router replicas must be set in ``args.router.deployment``: the builder reads them there to give the cohorts
    one owner replica, and an override in the Serve config's ``deployments:`` list would split cohorts unseen."""
    if not config.router.cohorts.enabled or config.router.replicated:
        return
    for deployment in app.deployments or []:
        if deployment.name != "Router":
            continue
        given = deployment.model_dump(exclude_unset=True)
        replicas = given.get("num_replicas", 1)
        if given.get("autoscaling_config") or replicas == "auto" or (isinstance(replicas, int) and replicas > 1):
            raise ValueError(
                f"application {app.name!r}: set the router's replicas in args.router.deployment, not in the Serve "
                f"config's deployments list (the builder then gives the cohorts one owner replica); or set "
                f"router.cohorts.enabled: false"
            )


def validate_serve_config_file(path: str | Path) -> list[ValidatedApp]:
    return validate_serve_config(yaml.safe_load(Path(path).read_text()))
