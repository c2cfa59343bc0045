"""NeMo-Gym's ``genrm_compare`` routes: ``POST /compare`` and ``POST /verify`` (served by
:class:`~serve_app.serving.nemo_gym_serving.NemoGymServing`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serve_app.core.stats import RequestStats
from serve_app.protocols.nemo_gym_api import GenRMCompareRequest, GenRMCompareResponse, VerifyRequest, VerifyResponse
from serve_app.routes import Service, Tenant, reply
from serve_app.serving.nemo_gym_serving import NemoGymServing

router = APIRouter(tags=["NeMo-Gym"])


@router.post(
    "/compare",
    response_model=GenRMCompareResponse,
    summary="NeMo-Gym genrm_compare: rewards for a group of Responses-API objects",
    description="The group judged at once; reward rule router.trainers.nemo_gym.reward_rule ('ensemble': the "
    "configured design's score, as /v1/rank; 'nemo_gym': NVIDIA's circular rule). Fewer than 2 responses: "
    "default_score each. 422: a conversation_history that does not end with a user turn, invalid text.",
)
async def compare(body: GenRMCompareRequest, service: Service, tenant: Tenant) -> Response:
    stats = RequestStats("nemo_gym_compare", tenant=tenant)
    answer = await NemoGymServing(service).compare(body, stats)
    return reply(service, answer.model_dump_json(exclude_none=True), stats)


@router.post(
    "/verify",
    response_model=VerifyResponse,
    summary="NeMo-Gym genrm_compare: one rollout's reward, judged with the other rollouts of its task",
    description="Waits until num_rollouts_per_prompt rollouts of the task have arrived (router.trainers.nemo_gym) "
    "or router.cohorts.group_timeout_s has passed, then the cohort is judged once and every caller gets the row it "
    "sent plus 'reward'. Refusals as /v1/reward: 409 a _ng_rollout_index taken by another response, 422 more "
    "rollouts than the group size, 503 with Retry-After when too many cohorts are open.",
)
async def verify(body: VerifyRequest, service: Service, tenant: Tenant) -> Response:
    stats = RequestStats("nemo_gym_verify", tenant=tenant)
    return reply(service, await NemoGymServing(service).verify(body, stats), stats)
