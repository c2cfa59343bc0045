"""Affinity: every judge call of one group (a best-of-N or rank request, a batch group, a cohort) carries the group's
prompt as its affinity key, which the judge client sends as the handle's session_id and as its batch's prompt (what
Serve's ConsistentHashRouter and PrefixCacheAffinityRouter route by); different prompts carry different keys."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from stand_in_judges import QualityClient, stand_in_service

from deployments.engine_client import AFFINITY_KEY, Completion
from serve_app.core.stats import RequestStats
from serve_app.protocols.genrm_api import RankBatchRequest, RankRequest, RewardRequest


class KeyRecordingClient(QualityClient):
    """The stand-in pairwise model, noting the affinity key each call was made under, by the prompt it judged."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, set[str | None]] = defaultdict(set)

    async def chat(self, request: dict[str, Any]) -> Completion:
        question = next(q for q in QUESTIONS if q in request["messages"][-1]["content"])
        self.keys[question].add(AFFINITY_KEY.get())
        return await super().chat(request)


QUESTIONS = ["Name a prime number.", "Name an even number.", "Name a colour."]


def group(question: str) -> dict[str, Any]:
    return {
        "conversation": [{"role": "user", "content": question}],
        "candidates": [f"answer quality {q}" for q in (1, 3, 2, 4)],
        "strategy": "swiss",
    }


def test_each_group_of_a_batch_carries_its_own_key_on_every_call() -> None:
    client = KeyRecordingClient()

    async def main() -> None:
        service = stand_in_service({"max_concurrent_requests": 8}, client)
        answer, _ = await service.rank_batch(RankBatchRequest(groups=[group(q) for q in QUESTIONS]))
        assert answer.judged == 3

    asyncio.run(main())
    assert set(client.keys) == set(QUESTIONS)
    keys = [client.keys[q] for q in QUESTIONS]
    assert all(len(k) == 1 and None not in k for k in keys)  # one key per group, on every call of it
    assert len(set.union(*keys)) == 3  # and a different one per prompt


def test_a_cohort_is_judged_under_the_key_of_its_prompt() -> None:
    client = KeyRecordingClient()
    question = QUESTIONS[0]

    async def main() -> None:
        service = stand_in_service({"cohorts": {"group_size": 3, "group_timeout_s": 30}}, client)
        await service.rank(RankRequest.model_validate(group(question)), RequestStats("rank"))
        rank_keys = set(client.keys[question])
        client.keys.clear()
        bodies = [
            RewardRequest(conversation=[{"role": "user", "content": question}], response=f"answer quality {q}")
            for q in (1, 2, 3)
        ]
        await asyncio.gather(*(service.reward(b, RequestStats("reward")) for b in bodies))
        assert client.keys[question] == rank_keys  # the same prompt, the same replica

    asyncio.run(main())
