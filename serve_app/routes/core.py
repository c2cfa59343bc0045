"""The project's own API: best-of-N, rank, principle score, compare, health, readiness and the judges' models."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serve_app.config import JUDGE_ROLES
from serve_app.core.stats import RequestStats
from serve_app.protocols.genrm_api import (
    BestOfNRequest,
    BestOfNResponse,
    CompareRequest,
    CompareResponse,
    Health,
    JudgeInfo,
    ModelsResponse,
    PrincipleScoreRequest,
    PrincipleScoreResponse,
    RankRequest,
    RankResponse,
    ReadinessReport,
)
from serve_app.protocols.openai_api import ModelCard
from serve_app.routes import Service, Tenant, reply

router = APIRouter()


@router.post("/v1/best_of_n", response_model=BestOfNResponse, summary="Choose the best of N candidates")
async def best_of_n(body: BestOfNRequest, service: Service, tenant: Tenant) -> Response:
    stats = RequestStats("best_of_n", tenant=tenant)
    return reply(service, await service.best_of_n(body, stats), stats)


@router.post("/v1/rank", response_model=RankResponse, summary="Scores for all N candidates (e.g. RLHF rollouts)")
async def rank(body: RankRequest, service: Service, tenant: Tenant) -> Response:
    stats = RequestStats("rank", tenant=tenant)
    return reply(service, await service.rank(body, stats), stats)


@router.post("/v1/principle_score", response_model=PrincipleScoreResponse, summary="Score one response per principle")
async def principle_score(body: PrincipleScoreRequest, service: Service, tenant: Tenant) -> Response:
    stats = RequestStats("principle_score", tenant=tenant)
    return reply(service, await service.principle_score(body, stats), stats)


@router.post("/v1/compare", response_model=CompareResponse, summary="Compare two responses in both orders")
async def compare(body: CompareRequest, service: Service, tenant: Tenant) -> Response:
    stats = RequestStats("compare", tenant=tenant)
    return reply(service, await service.compare(body, stats), stats)


@router.get("/healthz", response_model=Health, summary="Liveness of the router")
async def healthz(service: Service) -> Health:
    return Health(status="ok", judges=list(service.judges()), ready=service.readiness.ready)


@router.get(
    "/readyz",
    response_model=ReadinessReport,
    summary="200 once every judge has answered its warm-up call and has a live replica; 503 otherwise",
    responses={503: {"model": ReadinessReport, "description": "a judge has not answered yet, or has no live replica"}},
)
async def readyz(service: Service) -> Response:
    readiness = service.readiness
    await readiness.check()
    ready, down = readiness.ready, readiness.down
    limits = service.limits
    body = ReadinessReport(
        status="ready" if ready else "judge_down" if down else "warming_up",
        judges=readiness.state,
        down=down,
        capacity=limits.max_concurrent_requests,
    )
    headers = None if ready else {"Retry-After": str(limits.retry_after_s)}
    return Response(
        content=body.model_dump_json(),
        media_type="application/json",
        status_code=200 if ready else 503,
        headers=headers,
    )


@router.get("/v1/models", response_model=ModelsResponse, summary="The judge models behind this service")
async def models(service: Service) -> ModelsResponse:
    judges = []
    for role in JUDGE_ROLES:
        if (cfg := getattr(service.config, role)) is not None:
            judges.append(
                JudgeInfo(
                    role=role,  # type: ignore[arg-type]
                    model=cfg.served_model,
                    hosted=cfg.hosted is not None,
                    prompt_format=cfg.settings.prompt_format,
                )
            )
    return ModelsResponse(judges=judges, data=[ModelCard(id=j.model) for j in judges])
