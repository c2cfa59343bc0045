"""The router deployment: the application's HTTP ingress, one :class:`~serve_app.judging.JudgingService` per replica.

The FastAPI app is built inside each replica (``__serve_build_asgi_app__``, Serve's late-bound ingress), from
``serve_app.api.build_api``; the routes live in ``serve_app/routes/`` and reach this replica's service through
``request.app.state.service``. So nothing but these small classes is pickled with the deployments.

Where things are: the judges and everything that bounds their use — ``serve_app.judging``; admission —
``serve_app.admission``; the body limit and bearer token — ``serve_app.gate``; overlong text —
``serve_app.fitting``; cohorts — ``serve_app.cohorts``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve

from serve_app.api import build_api
from serve_app.config import AppConfig
from serve_app.judging import JudgingService


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
        self.service = JudgingService.from_deployment(
            AppConfig.model_validate(config), tokenizers, principle_server, pairwise_server, cohort_owner
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
