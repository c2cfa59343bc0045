"""Cohorts judged while their rollouts arrive (``router.cohorts.incremental``), through a replica's real app and
JudgingService, with the stand-in judges (tests/stand_in_judges.py: "quality N" decides; no Ray, no engine)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")

from stand_in_judges import CONVERSATION, QualityClient, QualityPrinciple, stand_in_service

from policies.pairings import Swiss
from serve_app.core.service import JudgingService
from serve_app.ingress.asgi import build_api


def body(quality: int, **extra: Any) -> dict[str, Any]:
    return {"conversation": CONVERSATION, "response": f"7, quality {quality}", **extra}


def run(
    go: Callable[[httpx.AsyncClient, JudgingService], Awaitable[Any]],
    router: dict[str, Any],
    client: QualityClient,
    principle: QualityPrinciple | None = None,
) -> Any:
    async def main() -> Any:
        svc = stand_in_service(router, client, principle)
        transport = httpx.ASGITransport(app=build_api(svc))
        async with httpx.AsyncClient(transport=transport, base_url="http://router", timeout=30) as http:
            return await go(http, svc)

    return asyncio.run(main())


def judged(client: QualityClient) -> int:
    """The stand-in's calls about rollouts (not the readiness probe's warm-up call)."""
    return sum(bool(re.search(r"quality \d", prompt)) for prompt, _, _ in client.answered)


async def settle(client: QualityClient) -> None:
    """Until the judge has judged rollouts and judged nothing more for a while (the calls the first arrivals
    allowed are done)."""
    seen, still = 0, 0
    for _ in range(1000):
        await asyncio.sleep(0.01)
        now = judged(client)
        still = still + 1 if now == seen and now and not client.inflight else 0
        seen = now
        if still == 10:
            return
    raise AssertionError("the judging of the first arrivals never settled")


def cohort(size: int, incremental: bool = True, **more: Any) -> dict[str, Any]:
    return {"cohorts": {"group_size": size, "group_timeout_s": 30, "incremental": incremental, **more}}


@pytest.mark.parametrize("incremental", [True, False])
def test_judging_begins_before_the_cohort_is_full_and_the_answers_are_right(incremental: bool) -> None:
    client = QualityClient(delay_s=0.01)
    qualities = [3, 8, 1, 6, 4, 7, 2, 5]

    async def go(http: httpx.AsyncClient, svc: JudgingService) -> tuple[int, list[httpx.Response]]:
        early = [asyncio.ensure_future(http.post("/v1/reward", json=body(q))) for q in qualities[:-1]]
        await settle(client) if incremental else await asyncio.sleep(0.3)
        before_last = judged(client)
        last = await http.post("/v1/reward", json=body(qualities[-1]))
        return before_last, [*(await asyncio.gather(*early)), last]

    before_last, responses = run(go, cohort(8, incremental), client)
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    out = [r.json() for r in responses]
    if incremental:
        # All but the straggler's matches (and a first-round share kept for it) judged before it arrived.
        assert before_last >= 2 * (Swiss().pairs_for(8) - Swiss().rounds_for(8) - 1)
    else:
        assert before_last == 0
    assert len({o["cohort_id"] for o in out}) == 1 and {o["closed_by"] for o in out} == {"full"}
    assert all(o["pairwise_calls"] == 2 * Swiss().pairs_for(8) for o in out)  # the same budget either way
    # The stand-in judge never errs, but three Swiss rounds do not order all of eight (which pairs meet depends on
    # when verdicts come back). Each caller reads its own row: its wins and losses fit its quality, and the one
    # ranked first lost no match.
    for o, q in zip(out, qualities, strict=True):
        c = o["candidate"]
        assert c["wins"] <= sum(p < q for p in qualities) and c["losses"] <= sum(p > q for p in qualities)
        assert c["wins"] + c["losses"] >= 1
    assert [o["candidate"]["losses"] for o in out if o["rank"] == 1] == [0]
    assert sorted(o["rank"] for o in out) == list(range(1, 9))


def test_a_cohort_closed_by_its_timeout_is_answered_over_what_arrived() -> None:
    client = QualityClient()

    async def go(http: httpx.AsyncClient, svc: JudgingService) -> list[httpx.Response]:
        bodies = [body(q, group_id="g", group_size=6, rollout_index=k) for k, q in ((4, 2), (0, 9), (2, 5))]
        return list(await asyncio.gather(*(http.post("/v1/reward", json=b) for b in bodies)))

    responses = run(go, cohort(6, group_timeout_s=0.3), client)
    out = [r.json() for r in responses]
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    assert {(o["closed_by"], o["complete"], o["size_judged"]) for o in out} == {("timeout", False, 3)}
    assert [(o["rollout_index"], o["rank"]) for o in out] == [(4, 3), (0, 1), (2, 2)]
    assert all(o["candidate"]["index"] == o["rollout_index"] for o in out)
    assert out[0]["pairwise_calls"] == 2 * Swiss().pairs_for(3)


def test_copies_in_a_cohort_are_judged_once_and_share_their_reward() -> None:
    client = QualityClient()

    async def go(http: httpx.AsyncClient, svc: JudgingService) -> list[httpx.Response]:
        return list(await asyncio.gather(*(http.post("/v1/reward", json=body(q)) for q in (1, 2, 1, 3))))

    # Two matches among three texts: whichever two meet, the wins and the helpfulness (1 + quality) order them.
    out = [r.json() for r in run(go, cohort(4), client)]
    assert out[0]["reward"] == out[2]["reward"] and out[0]["rank"] == out[2]["rank"]
    assert out[3]["rank"] == 1 and out[1]["rank"] == 2
    assert out[0]["pairwise_calls"] == 2 * Swiss().pairs_for(3)  # three distinct texts


def test_every_arrival_gets_its_principle_reward_once() -> None:
    client, principle = QualityClient(delay_s=0.01), QualityPrinciple()

    async def go(http: httpx.AsyncClient, svc: JudgingService) -> list[httpx.Response]:
        first = [asyncio.ensure_future(http.post("/v1/reward", json=body(q))) for q in (4, 1, 3)]
        await settle(client)
        last = await http.post("/v1/reward", json=body(2))
        return [*(await asyncio.gather(*first)), last]

    out = [r.json() for r in run(go, cohort(4), client, principle)]
    assert principle.calls == 1 + 4  # its warm-up call, and one per rollout
    assert [o["candidate"]["principle_reward"] for o in out] == [4.0, 1.0, 3.0, 2.0]
    assert [o["rank"] for o in out] == [1, 4, 2, 3]


def test_a_cohort_waiting_for_rollouts_holds_no_admission_slot() -> None:
    """One request judged at a time: a /v1/rank group is answered while an incremental cohort waits for its last
    rollout, and the cohort's last round then takes the slot."""
    client = QualityClient(delay_s=0.01)
    rank = {"conversation": CONVERSATION, "candidates": ["quality 1", "quality 2"]}

    async def go(http: httpx.AsyncClient, svc: JudgingService) -> tuple[int, httpx.Response, list[httpx.Response]]:
        early = [asyncio.ensure_future(http.post("/v1/reward", json=body(q))) for q in (1, 2, 3)]
        await settle(client)
        inside = svc.admission.inside
        ranked = await asyncio.wait_for(http.post("/v1/rank", json=rank), 5)
        last = await http.post("/v1/reward", json=body(4))
        return inside, ranked, [*(await asyncio.gather(*early)), last]

    inside, ranked, rewards = run(go, {**cohort(4), "max_concurrent_requests": 1, "max_queued_requests": 0}, client)
    assert inside == 0
    assert ranked.status_code == 200 and ranked.json()["ranks"] == [2, 1]
    assert [r.json()["rank"] for r in rewards] == [4, 3, 2, 1]


def test_other_reward_rules_are_judged_once_the_cohort_closed() -> None:
    client = QualityClient(delay_s=0.01)

    async def go(http: httpx.AsyncClient, svc: JudgingService) -> tuple[int, list[httpx.Response]]:
        reference = "7, quality 5"
        first = [asyncio.ensure_future(http.post("/v1/reward", json=body(q, reference=reference))) for q in (1, 9)]
        await asyncio.sleep(0.2)
        before = judged(client)
        last = await http.post("/v1/reward", json=body(3, reference=reference))
        return before, [*(await asyncio.gather(*first)), last]

    before, responses = run(go, cohort(3), client)
    assert before == 0  # anchored: every rollout against the reference, once the group is there
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    assert [r.json()["reward"] for r in responses] == [-1.5, 1.5, -1.5]  # its margin over the reference


def test_a_judge_update_while_a_cohort_is_open_never_mixes_two_versions_in_it() -> None:
    """The first three rollouts are judged by v1 while the cohort waits; then the judge is updated (a rolling
    update of its deployment after a config change) and the last rollout arrives. The cohort's verdicts would mix
    v1 and v2: it is judged again, whole, on v2, and every answer says v2 and is one cohort closed full."""
    version = {"now": "v1"}
    client = QualityClient(delay_s=0.01, version=lambda _: version["now"])
    qualities = [3, 8, 1, 6]

    async def go(http: httpx.AsyncClient, svc: JudgingService) -> tuple[int, list[httpx.Response]]:
        early = [asyncio.ensure_future(http.post("/v1/reward", json=body(q))) for q in qualities[:-1]]
        await settle(client)
        on_v1 = judged(client)
        version["now"] = "v2"
        last = await http.post("/v1/reward", json=body(qualities[-1]))
        return on_v1, [*(await asyncio.gather(*early)), last]

    on_v1, responses = run(go, cohort(4), client)
    assert on_v1 > 0  # the cohort was being judged on v1 when the update came
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    out = [r.json() for r in responses]
    assert {tuple(o["provenance"]["judge_versions"].items()) for o in out} == {(("stand-in", "v2"),)}
    assert len({o["cohort_id"] for o in out}) == 1 and {o["closed_by"] for o in out} == {"full"}
    assert judged(client) >= on_v1 + out[0]["pairwise_calls"]  # the v1 verdicts were thrown away, not reused
    assert [o["rank"] for o in sorted(out, key=lambda o: -o["reward"])] == [1, 2, 3, 4]
    best = max(out, key=lambda o: o["reward"])
    assert best["candidate"]["losses"] == 0
