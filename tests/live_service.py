"""The CPU default served for real: `serve run config.yaml`, started once per test session and shared.

Tests that need it take the ``service`` fixture (tests/conftest.py). Extra routers for a single test (a judge that
is down or hangs, stricter limits, fault injection) are deployed as further applications on the same cluster with
:func:`deployed` and deleted afterwards, so the main application is never reconfigured.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx

from serve_app.local_service import BASE, CONVERSATION, ROOT, serve_run
from serve_app.local_service import cpu_default_args as cpu_args
from serve_app.local_service import cpu_default_model_folder as smollm2_folder

__all__ = ["BASE", "CONVERSATION", "ROOT", "cpu_args", "serve_run", "smollm2_folder"]
CANDIDATES = ["The capital of France is Paris.", "I think it is Lyon.", "Paris.", "France has no capital."]
PRINCIPLE_DEPLOYMENT = "principle-genrm:smollm2-135m-principle"
PAIRWISE_DEPLOYMENT = "pairwise-genrm:smollm2-135m-pairwise"


def connect() -> None:
    """Join the cluster `serve run` started, as a driver (starts nothing)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="auto", logging_level="ERROR")


def metrics_text() -> str:
    from bench.ray_metrics import metrics_text as scrape

    connect()
    return scrape()


def judge_handle(deployment: str) -> Any:
    from ray import serve

    connect()
    return serve.get_deployment_handle(deployment, app_name="genrm")


@contextlib.contextmanager
def deployed(app: Any, name: str, client: httpx.Client, timeout_s: float = 120) -> Iterator[str]:
    """Run ``app`` as application ``name`` under ``/name`` until the block ends; yields the route prefix."""
    from ray import serve

    connect()
    prefix = f"/{name}"
    serve.run(app, name=name, route_prefix=prefix, blocking=False)
    try:
        deadline = time.monotonic() + timeout_s
        while client.get(f"{prefix}/healthz").status_code != 200:
            assert time.monotonic() < deadline, f"application {name} did not start"
            time.sleep(1)
        yield prefix
    finally:
        serve.delete(name)


def router_app(config: dict[str, Any], principle: Any, pairwise: Any, name: str) -> Any:
    """A router with ``config`` (AppConfig args) in front of the given judge handles or deployments."""
    from serve_app.config import AppConfig
    from serve_app.ingress.deployment import Router

    tokenizer = str(smollm2_folder())
    args = AppConfig.model_validate(config).model_dump(mode="json")
    if "auth_token" in config.get("router", {}):
        args["router"]["auth_token"] = config["router"]["auth_token"]
    return Router.options(name=name, ray_actor_options={"num_cpus": 0}).bind(
        args, {"principle": tokenizer, "pairwise": tokenizer}, principle, pairwise
    )
