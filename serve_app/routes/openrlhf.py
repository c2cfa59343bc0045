"""OpenRLHF's remote reward model route: ``POST /get_reward`` (served by
:class:`~serve_app.serving.openrlhf_serving.OpenRLHFServing`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serve_app.protocols.openrlhf_api import GetRewardRequest, GetRewardResponse
from serve_app.routes import Service, Tenant, reply
from serve_app.serving.openrlhf_serving import OpenRLHFServing

router = APIRouter(tags=["OpenRLHF"])


@router.post(
    "/get_reward",
    response_model=GetRewardResponse,
    summary="OpenRLHF remote reward model: rewards for templated query texts",
    description="One sample per request (OpenRLHF >= 0.10) waits for the other samples of its prompt (cohorts; "
    "router.trainers.openrlhf.group_size, else router.cohorts.group_size); several samples of one prompt in a "
    "request are ranked together (router.trainers.openrlhf.batch). 422: lists of different lengths, a query that "
    "cannot be split into prompt and response.",
)
async def get_reward(body: GetRewardRequest, service: Service, tenant: Tenant) -> Response:
    answer, stats = await OpenRLHFServing(service, tenant).get_reward(body)
    return reply(service, answer, *stats)
