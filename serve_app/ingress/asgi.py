"""The FastAPI application of one router replica: the gate, the error shapes and every surface's routes, in front of
that replica's :class:`~serve_app.core.service.JudgingService` (kept in ``app.state.service``).

Built inside the replica (``Router.__serve_build_asgi_app__``), and the same way in unit tests with stand-in judges.
"""

from __future__ import annotations

from types import ModuleType

from fastapi import FastAPI

from serve_app.core.service import JudgingService
from serve_app.ingress import error_shapes
from serve_app.ingress.gate import Gate, auth_token, tenant_tokens
from serve_app.routes import core, llamafactory, nemo_gym, openai, openrlhf, rl, slime

#: every route module the service serves, in the order of the OpenAPI schema
ROUTE_MODULES: tuple[ModuleType, ...] = (core, rl, openai, nemo_gym, openrlhf, slime, llamafactory)


def build_api(service: JudgingService, modules: tuple[ModuleType, ...] = ROUTE_MODULES) -> FastAPI:
    api = FastAPI(
        title="GenRM ensemble",
        version="0.1.0",
        description="Best-of-N selection and reward scores from an ensemble of generative reward models.",
    )
    api.state.service = service
    limits = service.limits
    api.add_middleware(Gate, limit=limits.max_request_bytes, token=auth_token(limits), tenants=tenant_tokens(limits))
    error_shapes.install(api)
    for module in modules:
        api.include_router(module.router)
    return api
