"""slime's remote reward model route: ``POST /slime/reward`` (served by
:class:`~serve_app.serving.slime_serving.SlimeServing`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serve_app.protocols.slime_api import SlimeReward, SlimeRewardRequest
from serve_app.routes import Service, Tenant, reply
from serve_app.serving.slime_serving import SlimeServing

router = APIRouter(tags=["slime"])


@router.post(
    "/slime/reward",
    response_model=float | SlimeReward,
    summary="slime remote_rm: one sample's reward, judged with the other samples of its prompt",
    description="Waits for the prompt's group (cohorts; router.trainers.slime.group_size, else "
    'router.cohorts.group_size), then answers the reward as a bare number, or as {"reward": ...} with '
    "router.trainers.slime.reply: dict (slime --reward-key reward). 422: a messages prompt that does not end with a "
    "user turn, invalid text.",
)
async def slime_reward(body: SlimeRewardRequest, service: Service, tenant: Tenant) -> Response:
    content, stats = await SlimeServing(service, tenant).reward(body)
    return reply(service, content, *stats)
