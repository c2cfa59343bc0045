"""The HTTP routes, one thin module per API surface; each module is a FastAPI ``APIRouter`` named ``router``.

* ``core`` — the project's own API: best-of-N, rank, principle score, compare, health, readiness, models;
* ``rl`` — for RL trainers: per-sample rewards through cohorts (``/v1/reward``) and whole steps (``/v1/rank_batch``);
* ``openai`` — the OpenAI-compatible front of each judge (``/v1/chat/completions``; ``/v1/models`` is core's);
* one module per trainer protocol: ``nemo_gym`` (``/compare``, ``/verify``), ``openrlhf`` (``/get_reward``),
  ``slime`` (``/slime/reward``), ``llamafactory`` (``/v1/score/evaluation``).

A surface is three modules, as vLLM's entrypoints are: its wire models (``serve_app/protocols/<surface>_api.py``),
its serving class, which translates the protocol into calls of the replica's
:class:`~serve_app.core.service.JudgingService` and the answers back (``serve_app/serving/<surface>_serving.py``),
and its router here, which only binds paths to serving methods. The project's own API needs no serving class: the
core speaks it. Errors are shaped by ``serve_app.ingress.error_shapes``: a route raises nothing of its own.

Adding a surface: write the three modules and list the router in ``serve_app.ingress.asgi.ROUTE_MODULES``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask

from serve_app.config import DEFAULT_TENANT
from serve_app.core.service import JudgingService
from serve_app.core.stats import RequestStats, record


def judging_service(request: Request) -> JudgingService:
    return request.app.state.service


#: A route parameter annotated ``Service`` receives the replica's JudgingService.
Service = Annotated[JudgingService, Depends(judging_service)]


def caller_tenant(request: Request) -> str:
    """The tenant the gate found the request's bearer token to name (``serve_app.ingress.gate``)."""
    return getattr(request.state, "tenant", DEFAULT_TENANT)


#: A route parameter annotated ``Tenant`` receives the caller's tenant.
Tenant = Annotated[str, Depends(caller_tenant)]


def reply(service: JudgingService, content: BaseModel | str, *stats: RequestStats) -> Response:
    """``content`` (a model, serialised once, or JSON text) as the response, with the metrics of ``stats``
    recorded after it is sent. FastAPI would dump, re-validate and dump again a returned model (the route's
    ``response_model`` still documents it)."""
    text = content if isinstance(content, str) else content.model_dump_json()

    def record_all() -> None:
        for s in stats:
            record(service.metrics, s)

    return Response(content=text, media_type="application/json", background=BackgroundTask(record_all))
