"""NeMo-Gym's length and style terms on /verify: each rollout's texts travel with its sample to its cohort (on the
owner replica too), so a group sent one rollout per request gets /compare's rewards for the same group; a cohort
closed by its timeout is the group of the rollouts that arrived; a masked rollout stays in the group."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")

from stand_in_judges import CONVERSATION, OwnerHandle, QualityClient, stand_in_service
from test_nemo_gym import response_obj
from test_nemo_gym_lengths import TERMS  # NVIDIA's recipe values

from serve_app.core.service import JudgingService
from serve_app.ingress.asgi import build_api

#: four rollouts of qualities 2, 5, 5, 3 with different reasoning lengths, answer lengths and formatting
OBJS = [
    response_obj("quality 2", "I weighed it at length, twice over, and then once more."),
    response_obj("# Answer\n- quality 5\n- **surely** \U0001f600", "short"),
    response_obj("quality 5, plainly said", "a middling reasoning"),
    response_obj("quality 3", ""),
]


def router(size: int, **cohorts: Any) -> dict[str, Any]:
    return {
        "cohorts": cohorts,
        "trainers": {"nemo_gym": {"reward_rule": "nemo_gym", "num_rollouts_per_prompt": size, **TERMS}},
    }


def verify_row(k: int, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "responses_create_params": {"input": CONVERSATION},
        "response": obj,
        "_ng_task_index": 0,
        "_ng_rollout_index": k,
    }


def client(service: JudgingService) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=build_api(service)), base_url="http://r", timeout=30)


async def compare(http: httpx.AsyncClient, objs: list[dict[str, Any]]) -> list[float]:
    r = await http.post("/compare", json={"conversation_history": CONVERSATION, "response_objs": objs})
    assert r.status_code == 200, r.text
    return r.json()["rewards"]


def run(
    rollouts: dict[int, dict[str, Any]],
    settings: dict[str, Any],
    *,
    replicas: int = 1,
    judge: QualityClient | None = None,
) -> list[dict[str, Any]]:
    """The rows /verify answers for ``rollouts`` (rollout index -> response object), sent concurrently, one per
    request; with two replicas the second forwards to the first, which owns the cohorts, and the rollouts
    alternate between them."""

    async def main() -> list[dict[str, Any]]:
        owner = stand_in_service(settings, judge)
        services = [owner]
        if replicas == 2:
            forwarder = stand_in_service(settings, judge)
            forwarder.cohort_owner, forwarder.cohorts = OwnerHandle(owner), None  # as JudgingService(cohort_owner=)
            services.append(forwarder)
        clients = [client(s) for s in services]
        try:
            sent = [
                clients[n % len(clients)].post("/verify", json=verify_row(k, obj))
                for n, (k, obj) in enumerate(rollouts.items())
            ]
            answers = await asyncio.gather(*sent)
        finally:
            for c in clients:
                await c.aclose()
        assert [r.status_code for r in answers] == [200] * len(answers), [r.text for r in answers]
        return [r.json() for r in answers]

    return asyncio.run(main())


def compared(objs: list[dict[str, Any]], settings: dict[str, Any], judge: QualityClient | None = None) -> list[float]:
    async def main() -> list[float]:
        async with client(stand_in_service(settings, judge)) as http:
            return await compare(http, objs)

    return asyncio.run(main())


@pytest.mark.parametrize("replicas", [1, 2])
def test_verify_gives_compares_rewards_for_a_full_group(replicas: int) -> None:
    """The group sent one rollout per request, concurrently (through a forwarding replica: the texts travel in the
    forwarded payload): each rollout's reward is /compare's for the same group, to the last bit, and the terms moved
    it off the plain rule's."""
    answers = run(dict(enumerate(OBJS)), router(4), replicas=replicas)
    rewards = [a["reward"] for a in answers]
    assert rewards == compared(OBJS, router(4))
    plain = {"trainers": {"nemo_gym": {"reward_rule": "nemo_gym", "num_rollouts_per_prompt": 4}}}
    unshaped = [a["reward"] for a in run(dict(enumerate(OBJS)), plain)]
    assert unshaped == compared(OBJS, plain) and unshaped != rewards
    assert all("mask_sample" not in a for a in answers)


def test_a_cohort_closed_by_its_timeout_shapes_over_the_rollouts_that_arrived() -> None:
    """Rollouts 0, 1 and 3 of four arrive: at the timeout the three are the group — their rewards are /compare's of
    those three (bar, lengths and style weights over them alone), not the full group's."""
    arrived = {0: OBJS[0], 1: OBJS[1], 3: OBJS[3]}
    answers = run(arrived, router(4, group_timeout_s=0.3))
    rewards = [a["reward"] for a in answers]
    assert rewards == compared(list(arrived.values()), router(4))
    full = compared(OBJS, router(4))
    assert rewards != [full[k] for k in arrived]


def test_a_masked_rollout_stays_in_the_group() -> None:
    """The judge cannot read any call showing rollout 2: it is masked, yet counted in the group as NeMo-Gym counts a
    call without a verdict (the defaults), so the others get /compare's rewards for all four; its own reward is the
    mean of theirs."""
    broken = [*OBJS[:2], response_obj("quality 9, in a long and winding answer", "r"), OBJS[3]]

    def judge() -> QualityClient:
        return QualityClient(breaks_on=lambda prompt: "quality 9" in prompt)

    answers = run(dict(enumerate(broken)), router(4), judge=judge())
    assert [a.get("mask_sample", False) for a in answers] == [False, False, True, False]
    rewards = [a["reward"] for a in answers]
    whole = compared(broken, router(4), judge())
    kept = [0, 1, 3]
    assert [rewards[k] for k in kept] == [whole[k] for k in kept]
    assert rewards[2] == pytest.approx(sum(rewards[k] for k in kept) / 3)
    # the masked rollout is not dropped: without it the others' rewards would differ
    assert [rewards[k] for k in kept] != compared([broken[k] for k in kept], router(4), judge())
