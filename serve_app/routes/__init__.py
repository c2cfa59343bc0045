"""The HTTP routes, one module per audience; each module is a FastAPI ``APIRouter`` named ``router``.

* ``core`` — the project's own API: best-of-N, rank, principle score, compare, health, readiness, models;
* ``rl`` — for RL trainers: per-sample rewards through cohorts (``/v1/reward``) and whole steps (``/v1/rank_batch``);
* ``openai`` — the OpenAI-compatible front of each judge (``/v1/chat/completions``; ``/v1/models`` is core's);
* one module per trainer protocol: ``nemo_gym`` (``/compare``, ``/verify``), ``openrlhf`` (``/get_reward``),
  ``slime`` (``/slime/reward``), ``llamafactory`` (``/v1/score/evaluation``).

How a route reaches its replica (the one pattern, used by every module): ``serve_app.api.build_api`` stores the
replica's :class:`~serve_app.judging.JudgingService` in ``app.state.service``, and a route takes it as a parameter
annotated :data:`Service` (a FastAPI dependency that reads ``request.app.state``). Route functions are plain
functions in importable modules; nothing is pickled with the deployment class.

Adding a module (a trainer protocol, an OpenAI front): write ``serve_app/routes/<name>.py`` with ``router =
APIRouter()``, translate the protocol's request into ``JudgingService`` calls and its answers (and refusals, which
are ``fastapi.HTTPException``) into the protocol's shapes, and list the module in ``serve_app.api.ROUTE_MODULES``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask

from serve_app.judging import JudgingService
from serve_app.metrics import RequestStats, record


def judging_service(request: Request) -> JudgingService:
    return request.app.state.service


#: A route parameter annotated ``Service`` receives the replica's JudgingService.
Service = Annotated[JudgingService, Depends(judging_service)]


def json_response(model: BaseModel, background: BackgroundTask | None = None) -> Response:
    """The body serialised once: FastAPI would dump, re-validate and dump again a returned model (the route's
    response_model still documents it). ``background`` runs after the response is sent."""
    return Response(content=model.model_dump_json(), media_type="application/json", background=background)


def answered(service: JudgingService, model: BaseModel, *stats: RequestStats) -> Response:
    """``model`` as the response, with the request's metrics recorded after it is sent."""

    def record_all() -> None:
        for s in stats:
            record(service.metrics, s)

    return json_response(model, BackgroundTask(record_all))
