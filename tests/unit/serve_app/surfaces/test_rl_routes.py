"""/v1/reward and /v1/rank_batch through the real FastAPI app of a replica (serve_app.ingress.asgi.build_api), in
process, with a stand-in pairwise judge behind the real PairwiseJudge (prompts built, answers parsed): no Ray, no
engine.

The stand-in (tests/stand_in_judges.py) reads "quality N" from each response of a pair and prefers the higher, so
ranks are predictable."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")

from stand_in_judges import CONVERSATION, QualityClient, run_app
from stand_in_judges import stand_in_service as service

from serve_app.ingress.asgi import build_api


@pytest.fixture
def run() -> Iterator[Any]:
    """Runs ``go(client)`` against a fresh app: ``run(go, router={...})``."""
    yield run_app


def reward_body(quality: int, **extra: Any) -> dict[str, Any]:
    return {"conversation": CONVERSATION, "response": f"7, quality {quality}", **extra}


def test_concurrent_per_sample_requests_complete_a_cohort(run: Any) -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        return await asyncio.gather(*(http.post("/v1/reward", json=reward_body(q)) for q in (1, 4, 2, 3)))

    responses = run(go, {"cohorts": {"group_size": 4, "group_timeout_s": 30}})
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    out = [r.json() for r in responses]
    assert len({o["cohort_id"] for o in out}) == 1
    assert [o["rank"] for o in out] == [4, 1, 3, 2]  # quality 4 best, quality 1 worst
    assert out[1]["reward"] > out[3]["reward"] > out[2]["reward"] > out[0]["reward"]
    for o in out:
        assert (o["complete"], o["size_judged"], o["group_size"], o["closed_by"]) == (True, 4, 4, "full")
        assert o["candidate"]["index"] == o["rollout_index"] and o["group_id"] is None
        assert o["pairwise_calls"] == 8  # the cohort default, Swiss: 2 rounds of 2 pairs, both orders, once
    assert sorted(o["rollout_index"] for o in out) == [0, 1, 2, 3]


def test_an_incomplete_cohort_answers_at_its_timeout_and_says_so(run: Any) -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        bodies = [reward_body(q, group_id="step-1/p-0", group_size=4, rollout_index=k) for k, q in ((0, 2), (3, 5))]
        return await asyncio.gather(*(http.post("/v1/reward", json=b) for b in bodies))

    responses = run(go, {"cohorts": {"group_timeout_s": 0.2}})
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    out = [r.json() for r in responses]
    assert [(o["complete"], o["size_judged"], o["closed_by"]) for o in out] == [(False, 2, "timeout")] * 2
    assert [(o["rollout_index"], o["rank"], o["group_id"]) for o in out] == [(0, 2, "step-1/p-0"), (3, 1, "step-1/p-0")]
    assert all(o["timings"]["waited_s"] >= 0.15 for o in out)


def test_refusals_say_what_was_wrong(run: Any) -> None:
    async def go(http: httpx.AsyncClient) -> dict[str, httpx.Response]:
        group = {"group_id": "g", "group_size": 2}
        first = asyncio.ensure_future(http.post("/v1/reward", json=reward_body(1, rollout_index=0, **group)))
        await asyncio.sleep(0.05)
        out = {
            "repeated": await http.post("/v1/reward", json=reward_body(2, rollout_index=0, **group)),
            "blank": await http.post("/v1/reward", json={**reward_body(0, **group), "response": "  "}),
        }
        out["first"] = await first  # the blank sample arrived too, so the group of 2 is complete
        out["overfull"] = await http.post("/v1/reward", json=reward_body(3, **group))
        out["too_big"] = await http.post("/v1/reward", json=reward_body(1, group_size=65))
        return out

    out = run(go, {"cohorts": {"group_timeout_s": 30}})
    assert out["repeated"].status_code == 409 and "rollout_index 0" in out["repeated"].text
    assert out["blank"].status_code == 422 and "empty" in out["blank"].text
    first = out["first"].json()
    assert out["first"].status_code == 200 and (first["complete"], first["size_judged"]) == (True, 1)
    assert out["overfull"].status_code == 422 and "at most group_size" in out["overfull"].text
    assert out["too_big"].status_code == 422 and "1 to 64" in out["too_big"].text


def test_full_cohort_table_gets_503_with_retry_after(run: Any) -> None:
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        waiting = asyncio.ensure_future(http.post("/v1/reward", json=reward_body(1, group_id="a", group_size=2)))
        await asyncio.sleep(0.05)
        refused = await http.post("/v1/reward", json=reward_body(1, group_id="b", group_size=2))
        waiting.cancel()
        return refused

    r = run(go, {"cohorts": {"max_open_cohorts": 1, "group_timeout_s": 30}, "retry_after_s": 9})
    assert r.status_code == 503 and r.headers["retry-after"] == "9" and "max_open_cohorts" in r.text


def test_rank_batch_answers_each_group_as_rank_and_reports_failed_groups_in_place(run: Any) -> None:
    good = {"conversation": CONVERSATION, "candidates": ["2, quality 1", "3, quality 3", "5, quality 2"]}
    groups = [
        good,
        {"conversation": CONVERSATION, "candidates": ["a, quality 1", "  "]},  # a 422-worthy group
        {"conversation": CONVERSATION, "candidates": [f"{k}, quality 1" for k in range(65)]},  # over max_candidates
        {**good, "strategy": "knockout", "swap": False},
        {**good, "seed": -1},  # a seed the random generator cannot take
    ]

    async def go(http: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        batch = await http.post("/v1/rank_batch", json={"groups": groups})
        alone = await http.post("/v1/rank", json=good)
        return batch, alone

    batch, alone = run(go)
    assert batch.status_code == 200, batch.text
    out = batch.json()
    assert (out["judged"], out["failed"]) == (2, 3)
    assert [e["status"] for e in out["results"]] == [200, 422, 422, 200, 422]
    assert [e["index"] for e in out["results"]] == [0, 1, 2, 3, 4]
    first = out["results"][0]["result"]
    assert first["ranks"] == alone.json()["ranks"] == [3, 1, 2]
    assert first["scores"] == alone.json()["scores"]
    assert out["results"][3]["result"]["pairwise_calls"] == 2  # knockout of 3 in one order
    empty = out["results"][1]["detail"]
    assert isinstance(empty, list) and empty[0]["loc"] == ["candidates"] and "candidate 1 is empty" in empty[0]["msg"]
    assert "65 candidates" in out["results"][2]["detail"]
    assert out["results"][4]["detail"][0]["loc"] == ["seed"]


def test_rank_batch_limits(run: Any) -> None:
    group = {"conversation": CONVERSATION, "candidates": ["quality 1", "quality 2"]}

    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await http.post("/v1/rank_batch", json={"groups": [group] * 3}),
            await http.post("/v1/rank_batch", json={"groups": []}),
        ]

    too_many, empty = run(go, {"max_batch_groups": 2})
    assert too_many.status_code == 422 and "at most 2" in too_many.text
    assert empty.status_code == 422


def test_rank_batch_groups_share_the_admission_slots() -> None:
    """Ten groups against a router that runs 2 requests at once: the judge never sees more than 2 groups' calls at
    a time, and no group is refused (the batch was admitted as a whole); a batch arriving at a full router gets 503."""
    client = QualityClient(delay_s=0.02)
    svc = service({"max_concurrent_requests": 2, "max_queued_requests": 0}, client)
    group = {"conversation": CONVERSATION, "candidates": ["quality 1", "quality 2"]}  # 2 calls, in one round

    async def main() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=build_api(svc))
        async with httpx.AsyncClient(transport=transport, base_url="http://router", timeout=30) as http:
            batch = asyncio.ensure_future(http.post("/v1/rank_batch", json={"groups": [group] * 10}))
            while svc.admission.inside == 0:  # the batch holds its slots (a fixed sleep loses the race under load)
                await asyncio.sleep(0.001)
            refused = await http.post("/v1/rank_batch", json={"groups": [group]})
            return await batch, refused

    batch, refused = asyncio.run(main())
    assert batch.status_code == 200 and batch.json()["judged"] == 10, batch.text
    assert client.calls == 20 and client.peak == 4  # 2 groups x 2 calls at a time
    assert svc.admission.inside == 0
    assert refused.status_code == 503 and "retry-after" in refused.headers


def test_openapi_documents_the_rl_routes(run: Any) -> None:
    async def go(http: httpx.AsyncClient) -> dict[str, Any]:
        return (await http.get("/openapi.json")).json()

    schema = run(go)
    assert {"/v1/reward", "/v1/rank_batch", "/v1/rank", "/v1/best_of_n"} <= set(schema["paths"])
    groups = schema["components"]["schemas"]["RankBatchRequest"]["properties"]["groups"]
    ref = groups["items"]["$ref"]
    assert ref == "#/components/schemas/RankRequest" and "RankRequest" in schema["components"]["schemas"]
