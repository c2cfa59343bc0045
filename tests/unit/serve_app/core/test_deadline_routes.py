"""``deadline_s`` through a router replica's real routes: the answer comes by the deadline with the best so far, the
calls still running for that request are cancelled, and another request judged at the same time is untouched."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from stand_in_judges import CONVERSATION, QualityClient, run_app

from deployments.engine_client import Completion


class PacedClient(QualityClient):
    """The stand-in pairwise model, slow (a minute) on any pair that shows a response containing "slow"."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_running = self.slow_cancelled = 0

    async def chat(self, request: dict[str, Any]) -> Completion:
        if "slow" in request["messages"][-1]["content"]:
            self.slow_running += 1
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.slow_cancelled += 1
                raise
            finally:
                self.slow_running -= 1
        return await super().chat(request)


FAST = ["quality 1", "quality 4", "quality 2"]
CUT = [*FAST, "quality 3 slow"]


def test_a_request_past_its_deadline_answers_with_the_best_so_far_and_cancels_its_calls() -> None:
    client = PacedClient()

    async def go(http: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response, float]:
        started = time.perf_counter()
        cut = http.post(
            "/v1/best_of_n",
            json={"conversation": CONVERSATION, "candidates": CUT, "swap": True, "deadline_s": 0.5},
        )
        other = http.post("/v1/best_of_n", json={"conversation": CONVERSATION, "candidates": FAST, "swap": True})
        cut_answer, other_answer = await asyncio.gather(cut, other)
        return cut_answer, other_answer, time.perf_counter() - started

    cut, other, elapsed = run_app(go, client=client)
    assert cut.status_code == 200 and other.status_code == 200, (cut.text, other.text)
    body = cut.json()
    assert body["deadline_reached"] is True and elapsed < 5
    assert body["index"] == 1 and body["text"] == "quality 4"
    assert body["cancelled_calls"] == 6 and body["pairwise_calls"] == 6  # round robin over 4, both orders
    assert client.slow_cancelled == 6 and client.slow_running == 0
    chosen = next(c for c in body["candidates"] if c["index"] == 1)
    assert chosen["p_best"] > 0.25
    assert any("deadline_s" in d for d in body["degraded"])
    # The request judged alongside it ran to its end.
    other_body = other.json()
    assert other_body["deadline_reached"] is False and other_body["cancelled_calls"] == 0
    assert other_body["pairwise_calls"] == 6 and other_body["degraded"] == [] and other_body["index"] == 1


def test_rank_reports_the_deadline_too() -> None:
    client = PacedClient()

    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/v1/rank", json={"conversation": CONVERSATION, "candidates": CUT, "deadline_s": 0.3})

    body = run_app(go, client=client).json()
    assert body["deadline_reached"] is True and body["cancelled_calls"] > 0
    slow = next(c for c in body["candidates"] if c["index"] == 3)
    assert slow["valid"] is False and body["valid"][3] is False  # no verdict about it came back


def test_a_deadline_must_be_positive() -> None:
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post(
            "/v1/best_of_n", json={"conversation": CONVERSATION, "candidates": FAST, "deadline_s": 0}
        )

    answer = run_app(go)
    assert answer.status_code == 422 and "deadline_s" in answer.text and "greater than 0" in answer.text


def test_a_group_judged_again_after_a_judge_update_keeps_the_requests_one_deadline() -> None:
    """The judge's version changes during the first judging, so the group is judged again: in what is left of the
    deadline (nothing: Swiss's three rounds of 0.4 s calls meet the 1 s deadline first), not in a fresh one."""

    class Updated(QualityClient):
        """Calls sent before the update (the warm-up and three more) answer as v1, later ones as v2."""

        async def chat(self, request: dict[str, Any]) -> Completion:
            sent_as = self.calls + 1
            answer = await super().chat(request)
            return answer.model_copy(update={"judge_version": "v1" if sent_as <= 4 else "v2"})

    client = Updated(delay_s=0.4)

    async def go(http: httpx.AsyncClient) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        body = {"conversation": CONVERSATION, "candidates": [*FAST, "quality 0", "quality 5", "quality 3"]}
        answer = await http.post("/v1/rank", json={**body, "strategy": "swiss", "swap": True, "deadline_s": 1.0})
        return answer, time.perf_counter() - started

    answer, elapsed = run_app(go, client=client)
    assert answer.status_code == 200, answer.text
    # A fresh deadline would give the second judging another second: 2 s in all.
    assert answer.json()["deadline_reached"] is True and elapsed < 1.5, elapsed
