"""The router deployment: the application's HTTP ingress, one :class:`~serve_app.core.service.JudgingService` per
replica; and the cohort owner, the one replica that holds the cohorts when the router has several.

The FastAPI app is built inside each replica (``__serve_build_asgi_app__``, Serve's late-bound ingress), from
``serve_app.ingress.asgi.build_api``; the routes live in ``serve_app/routes/`` and reach this replica's service
through ``request.app.state.service``. So nothing but these small classes is pickled with the deployments.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve

from serve_app.config import AppConfig
from serve_app.core.service import JudgingService
from serve_app.ingress.asgi import build_api
from serve_app.ingress.judge_health import serve_liveness


@serve.deployment
@serve.ingress()
class Router:
    def __init__(
        self,
        config: dict[str, Any],
        tokenizers: dict[str, str],
        principle_server: Any = None,
        pairwise_server: Any = None,
        cohort_owner: Any = None,
    ) -> None:
        liveness = serve_liveness({"principle": principle_server, "pairwise": pairwise_server})
        self.service = JudgingService.from_deployment(
            AppConfig.model_validate(config), tokenizers, principle_server, pairwise_server, cohort_owner, liveness
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self.service)


@serve.deployment
class CohortOwner:
    """The one replica that holds the cohorts when the router has several (see serve_app.app): every router replica
    forwards /v1/reward here over a handle. Not an ingress (Serve allows one per application): it serves no HTTP."""

    def __init__(
        self,
        config: dict[str, Any],
        tokenizers: dict[str, str],
        principle_server: Any = None,
        pairwise_server: Any = None,
    ) -> None:
        self.service = JudgingService.from_deployment(
            AppConfig.model_validate(config), tokenizers, principle_server, pairwise_server
        )

    async def forwarded_reward(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.service.forwarded_reward(payload)
