"""slime's remote reward model (``--rm-type remote_rm --rm-url http://host:8000/slime/reward``).

slime posts one sample per request, ``{"prompt": str | messages, "response": str, "label": ...}``, and stores the
whole JSON reply as the sample's reward. So the reply is, by ``router.trainers.slime.reply``:

* ``float`` (default): the reward itself, a bare JSON number;
* ``dict``: ``{"reward": float, "rank", "group_size", "size_judged", "complete", "cohort_id"}``, for slime's
  ``--reward-key reward``.

The prompt is a chat-message list, or a string: slime's prompt after ``--apply-chat-template`` is templated text,
read back into turns as OpenRLHF's is (:mod:`serve_app.chat_text`, ``router.trainers.slime.policy_tokenizer``);
a string in no known template is one user turn. Each sample joins its prompt's cohort (``/v1/reward``, key derived
from the conversation; ``router.trainers.slime.group_size`` samples, else ``router.cohorts.group_size``), so it is
judged with the other samples of its prompt. ``label`` is accepted and not used.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from deployments.chat import Text
from serve_app.protocols import cohort_rewards, conversation, policy_reader, read_text, reply
from serve_app.routes import Service

router = APIRouter(tags=["slime"])


class SlimeRewardRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: Text | list[dict[str, Any]] = Field(description="the prompt: (templated) text, or chat messages")
    response: Text = Field(description="the rollout's response")
    label: Any = Field(default=None, description="the sample's label; not used")


class SlimeReward(BaseModel):
    reward: float = Field(description="this sample's ensemble score in its cohort (higher is better)")
    rank: int = Field(description="1 = best of the cohort's judged samples")
    group_size: int
    size_judged: int = Field(description="samples judged together (fewer than group_size after a timeout)")
    complete: bool
    cohort_id: str


@router.post(
    "/slime/reward",
    response_model=float | SlimeReward,
    summary="slime remote_rm: one sample's reward, judged with the other samples of its prompt",
    description="Waits for the prompt's group (cohorts; router.trainers.slime.group_size, else "
    'router.cohorts.group_size), then answers the reward as a bare number, or as {"reward": ...} with '
    "router.trainers.slime.reply: dict (slime --reward-key reward). 422: a messages prompt that does not end with a "
    "user turn, invalid text.",
)
async def slime_reward(body: SlimeRewardRequest, service: Service) -> Response:
    settings = service.limits.trainers.slime
    reader = policy_reader(settings, "slime")
    prompt = body.prompt
    if isinstance(prompt, str):
        conv = read_text(lambda: reader.conversation(prompt), "prompt")
    else:
        conv = conversation(prompt, "prompt")
    (answer,), stats = await cohort_rewards(
        service, [(conv, reader.response(body.response))], "sample", "slime", group_size=settings.group_size
    )
    if settings.reply == "float":
        return reply(service, json.dumps(answer.reward), *stats)
    out = SlimeReward(
        reward=answer.reward,
        rank=answer.rank,
        group_size=answer.group_size,
        size_judged=answer.size_judged,
        complete=answer.complete,
        cohort_id=answer.cohort_id,
    )
    return reply(service, out.model_dump_json(), *stats)
