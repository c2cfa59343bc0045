"""Offline validation of a Serve config file, with Ray's own schema classes: no cluster, no GPU, no download.

The file goes through ray.serve's ServeDeploySchema (what ``serve run`` / ``serve deploy`` check); every application
built by ``serve_app.app:build_app`` through :class:`~serve_app.config.AppConfig`; and every hosted judge, with its
model-card defaults merged in, through ray.serve.llm's LLMConfig, and its placement group against its parallelism.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deployments.autoscaling import POLICY_PATH
from deployments.hosting import check_placement, validate_llm_config
from serve_app.config import AppConfig
from serve_app.core.judge_pool import judge_llm_configs

BUILDER = "serve_app.app:build_app"
#: Serve's graceful_shutdown_timeout_s when a deployment sets none (ray.serve.schema.DeploymentSchema's doc)
SERVE_DEFAULT_GRACE_S = 20.0


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
                _check_judge_fleet(role, f.get("deployment_config", {}), config)
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


def _check_judge_fleet(role: str, deployment: dict[str, Any], config: AppConfig) -> None:
    """A judge with several replicas, fixed or autoscaled: a replica scaled down (or replaced in a config change)
    must drain its calls, and autoscaling must read the engines' load (the handle calls are batches)."""
    from ray.serve.config import AutoscalingConfig

    scaling = deployment.get("autoscaling_config")
    replicas = deployment.get("num_replicas", 1)
    if not scaling and not (replicas == "auto" or (isinstance(replicas, int) and replicas > 1)):
        return
    judge = getattr(config, role)
    longest = judge.max_call_s or judge.call_timeout_s
    grace = deployment.get("graceful_shutdown_timeout_s", SERVE_DEFAULT_GRACE_S)
    if grace < longest:
        raise ValueError(
            f"deployment_config.graceful_shutdown_timeout_s is {grace:g} s but a call may take {longest:g} s "
            f"(max_call_s, else call_timeout_s): a replica scaled down would cut its calls; "
            f"set it to at least {longest:g}"
        )
    if not scaling:
        return
    policy = AutoscalingConfig.model_validate(scaling).policy
    if policy.policy_function != POLICY_PATH:
        raise ValueError(
            f"autoscaling_config.policy.policy_function is {policy.policy_function!r}: a judge's handle calls are "
            f"batches of any size, so scale on its engines' sequences with {POLICY_PATH!r} (policy_kwargs: "
            f"target_sequences)"
        )
    peak = int(scaling.get("max_replicas", 1)) * float(policy.policy_kwargs.get("target_sequences", 32))
    routers = config.router.deployment.get("num_replicas", 1)
    routers = routers if isinstance(routers, int) else 1
    if judge.max_inflight_calls is not None and judge.max_inflight_calls * routers < peak:
        raise ValueError(
            f"max_inflight_calls {judge.max_inflight_calls} per router replica × {routers} router replica(s) holds "
            f"fewer calls than max_replicas × target_sequences = {peak:g}: the queue would stay in the router, where "
            f"the autoscaler cannot see it; raise max_inflight_calls or lower target_sequences"
        )


def validate_serve_config_file(path: str | Path) -> list[ValidatedApp]:
    return validate_serve_config(yaml.safe_load(Path(path).read_text()))
