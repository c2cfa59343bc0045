"""For RL trainers: a reward per rollout through cohorts, and a whole training step's groups in one request.

``/v1/reward`` takes one rollout as trainers send it (one request per sample, concurrently, no group) and answers
once its group has been judged together (``serve_app.core.cohorts``); ``/v1/rank_batch`` takes every group of a step.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from serve_app.core.stats import RequestStats
from serve_app.protocols.genrm_api import RankBatchRequest, RankBatchResponse, RewardRequest, RewardResponse
from serve_app.routes import Service, Tenant, reply

router = APIRouter()


@router.post(
    "/v1/reward",
    response_model=RewardResponse,
    summary="A reward for one rollout, judged with the rest of its group (cohort)",
    description="Waits until the rollout's group is complete (group_size samples) or router.cohorts.group_timeout_s "
    "has passed since its first sample, then the group is judged once and every caller gets its own reward and rank. "
    "409: a rollout_index already taken by another response, or a sample after its group stopped waiting; 422: more "
    "samples than group_size, or a sample /v1/rank would refuse; 429 with Retry-After: the tenant holds its weighted "
    "share of the open cohorts or waiting samples (with several router.tenants); 503 with Retry-After: too many open "
    "cohorts or waiting samples.",
)
async def reward(
    body: RewardRequest,
    service: Service,
    tenant: Tenant,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)] = None,
) -> Response:
    stats = RequestStats("reward", tenant=tenant)
    if idempotency_key and body.idempotency_key is None:
        body = body.model_copy(update={"idempotency_key": idempotency_key})
    return reply(service, await service.reward(body, stats), stats)


@router.post(
    "/v1/rank_batch",
    response_model=RankBatchResponse,
    summary="Rank many groups (a training step's prompts and their rollouts) in one request",
    description="Each group is a /v1/rank body and gets the /v1/rank answer in its entry; a group /v1/rank would "
    "refuse gets that status and reason in its entry, and the others are still judged. Groups are judged "
    "concurrently under the router's admission limits (503 when the router is already full).",
)
async def rank_batch(body: RankBatchRequest, service: Service, tenant: Tenant) -> Response:
    answer, stats = await service.rank_batch(body, tenant)
    return reply(service, answer, *stats)
