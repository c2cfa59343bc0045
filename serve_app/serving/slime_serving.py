"""slime's remote reward model, serving (``--rm-type remote_rm --rm-url http://host:8000/slime/reward``).

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

from serve_app.config import DEFAULT_TENANT
from serve_app.core.service import JudgingService
from serve_app.core.stats import RequestStats
from serve_app.protocols.slime_api import SlimeReward, SlimeRewardRequest
from serve_app.serving.trainer_inputs import cohort_rewards, conversation, policy_reader, read_text


class SlimeServing:
    """``/slime/reward`` for one replica (see the module docstring)."""

    def __init__(self, service: JudgingService, tenant: str = DEFAULT_TENANT) -> None:
        self.service = service
        self.tenant = tenant

    async def reward(self, body: SlimeRewardRequest) -> tuple[str, list[RequestStats]]:
        """The reply as JSON text (a bare number, or the dict), and the request's stats."""
        settings = self.service.limits.trainers.slime
        reader = policy_reader(settings, "slime")
        prompt = body.prompt
        if isinstance(prompt, str):
            conv = read_text(lambda: reader.conversation(prompt), "prompt")
        else:
            conv = conversation(prompt, "prompt")
        (answer,), stats = await cohort_rewards(
            self.service,
            [(conv, reader.response(body.response))],
            "sample",
            "slime",
            group_size=settings.group_size,
            tenant=self.tenant,
        )
        if settings.reply == "float":
            return json.dumps(answer.reward), stats
        out = SlimeReward(
            reward=answer.reward,
            valid=answer.valid,
            rank=answer.rank,
            group_size=answer.group_size,
            size_judged=answer.size_judged,
            complete=answer.complete,
            cohort_id=answer.cohort_id,
        )
        return out.model_dump_json(), stats
