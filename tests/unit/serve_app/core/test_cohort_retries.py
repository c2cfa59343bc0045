"""A retry is the same sample: with an idempotency key (field or Idempotency-Key header) by its key; without one, a
sample identical to one whose caller has left (a client timeout) takes that place back. A retried sample gets the
original answer and never changes its cohort's count; an identical sample whose twin still waits is a new rollout."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from stand_in_judges import CONVERSATION, run_app

ROUTER = {"cohorts": {"group_size": 2, "group_timeout_s": 30}}


def sample(text: str, **extra: Any) -> dict[str, Any]:
    return {"conversation": CONVERSATION, "response": text, **extra}


async def gone_after(http: httpx.AsyncClient, body: dict[str, Any], seconds: float, **kw: Any) -> None:
    """A client that gives up waiting (its request is cancelled, as a disconnect cancels it under Serve)."""
    try:
        await asyncio.wait_for(http.post("/v1/reward", json=body, **kw), seconds)
    except TimeoutError:
        return
    raise AssertionError("the sample was answered alone: its cohort should still be waiting")


def test_a_client_that_timed_out_and_resent_keeps_one_place() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        await gone_after(http, sample("7, quality 3"), 0.3)
        retry = asyncio.ensure_future(http.post("/v1/reward", json=sample("7, quality 3")))
        await asyncio.sleep(0.1)
        other = await http.post("/v1/reward", json=sample("7, quality 5"))
        return [await retry, other]

    retry, other = run_app(go, ROUTER)
    assert [retry.status_code, other.status_code] == [200, 200], [retry.text, other.text]
    a, b = retry.json(), other.json()
    assert a["cohort_id"] == b["cohort_id"] and a["size_judged"] == b["size_judged"] == 2  # not 3
    assert (a["rank"], b["rank"]) == (2, 1) and a["rollout_index"] != b["rollout_index"]


def test_identical_samples_both_waiting_are_two_rollouts() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        return list(await asyncio.gather(*(http.post("/v1/reward", json=sample("7, quality 3")) for _ in range(2))))

    answers = [r.json() for r in run_app(go, ROUTER)]
    assert len({a["cohort_id"] for a in answers}) == 1 and {a["size_judged"] for a in answers} == {2}
    assert sorted(a["rollout_index"] for a in answers) == [0, 1]


def test_an_idempotency_key_gets_the_first_answer_even_while_the_first_caller_waits() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        first = asyncio.ensure_future(http.post("/v1/reward", json=sample("7, quality 3", idempotency_key="s-1")))
        await asyncio.sleep(0.1)
        again = asyncio.ensure_future(
            http.post("/v1/reward", json=sample("7, quality 3"), headers={"Idempotency-Key": "s-1"})
        )
        await asyncio.sleep(0.1)
        other = await http.post("/v1/reward", json=sample("7, quality 1", idempotency_key="s-2"))
        late = await http.post("/v1/reward", json=sample("7, quality 3", idempotency_key="s-1"))  # after the answer
        return [await first, await again, other, late]

    first, again, other, late = (r.json() for r in run_app(go, ROUTER))
    for answer in (first, again, late):
        del answer["timings"]["total_s"]  # each request's own time
    assert first == again == late  # the same place, the same answer
    assert other["cohort_id"] == first["cohort_id"] and other["size_judged"] == 2
    assert (first["rank"], other["rank"]) == (1, 2)
