"""The Python client against a replica's real app (serve_app.ingress.asgi.build_api under uvicorn, stand-in judges).

The stand-in pairwise model prefers the response with the higher "quality N", so choices are known in advance; the
admission limits, the bearer-token gate and the 422s are the real service's.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")
pytest.importorskip("uvicorn")

from stand_in_judges import CONVERSATION, QualityClient, QualityPrinciple, served, stand_in_service

from serve_app.client import AsyncGenRMClient, GenRMClient, ServiceError, ServiceRefused
from serve_app.client.http import describe_detail
from serve_app.ingress.asgi import build_api
from serve_app.protocols.genrm_api import BestOfNResponse, RankRequest, RankResponse

CANDIDATES = ["quality 1", "quality 3", "quality 2"]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served(build_api(stand_in_service({"max_candidates": 8}, principle=QualityPrinciple()))) as base:
        yield base


def test_every_core_route_answers_in_the_projects_models(url: str) -> None:
    with GenRMClient(url) as client:
        best = client.best_of_n(conversation=CONVERSATION, candidates=CANDIDATES)
        assert isinstance(best, BestOfNResponse) and best.index == 1 and best.text == "quality 3"
        ranked = client.rank(RankRequest(conversation=CONVERSATION, candidates=CANDIDATES, swap=True))
        assert isinstance(ranked, RankResponse) and ranked.ranks == [3, 1, 2]
        compared = client.compare(conversation=CONVERSATION, response_1="quality 1", response_2="quality 4")
        assert compared.comparison.margin < 0  # prefers response_2
        scored = client.principle_score(conversation=CONVERSATION, response="quality 2", principles=["correct"])
        assert scored.mean_reward == 2.0
        batch = client.rank_batch(groups=[{"conversation": CONVERSATION, "candidates": CANDIDATES}, {"bad": 1}])
        assert [e.status for e in batch.results] == [200, 422] and batch.results[0].result is not None
        assert client.health().status == "ok"
        assert {j.role for j in client.models().judges} == {"pairwise", "principle"}
        assert client.readiness().status in ("ready", "warming_up")


def test_an_openai_style_base_url_reaches_the_same_routes(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``http://host:8000/v1`` (how the OpenAI front is addressed, and what users put in GENRM_BASE_URL) is the
    service's root, not a prefix: /v1/rank, never /v1/v1/rank."""
    monkeypatch.setenv("GENRM_BASE_URL", f"{url}/v1/")
    with GenRMClient() as client:
        assert client.base_url == url
        assert client.rank(conversation=CONVERSATION, candidates=CANDIDATES).ranks == [3, 1, 2]


def test_the_async_client_sends_concurrently_on_one_pool(url: str) -> None:
    async def go() -> list[RankResponse]:
        async with AsyncGenRMClient(url) as client:
            return await asyncio.gather(
                *(client.rank(conversation=CONVERSATION, candidates=[f"quality {k}", "quality 2"]) for k in range(4))
            )

    answers = asyncio.run(go())
    assert [answers[k].ranks for k in (0, 1, 3)] == [[2, 1], [2, 1], [1, 2]]  # k = 2 is a tie


def test_a_request_the_models_reject_fails_before_it_is_sent() -> None:
    with GenRMClient("http://127.0.0.1:9") as client, pytest.raises(ValueError, match="candidates"):
        client.rank(conversation=CONVERSATION, candidates=[])


def test_a_4xx_is_raised_with_the_services_reason_and_never_retried(url: str) -> None:
    with GenRMClient(url) as client:
        with pytest.raises(ServiceRefused) as refused:
            client.rank(conversation=CONVERSATION, candidates=[f"quality {k}" for k in range(9)])  # max_candidates 8
        assert refused.value.status == 422 and client.retried == 0
        assert "8" in str(refused.value) and "/v1/rank" in str(refused.value)


def test_503_with_retry_after_is_waited_out_and_bounded() -> None:
    limits = {"max_concurrent_requests": 1, "max_queued_requests": 0, "retry_after_s": 1}
    app = build_api(stand_in_service(limits, client=QualityClient(delay_s=0.6)))
    with served(app) as base:

        async def go(max_retries: int) -> tuple[list[Any], int]:
            async with AsyncGenRMClient(base, max_retries=max_retries) as client:
                answers = await asyncio.gather(
                    *(client.rank(conversation=CONVERSATION, candidates=CANDIDATES) for _ in range(3)),
                    return_exceptions=True,
                )
                return answers, client.retried

        answers, retried = asyncio.run(go(max_retries=8))
        assert all(isinstance(a, RankResponse) for a in answers) and retried >= 2
        answers, retried = asyncio.run(go(max_retries=0))
        refusals = [a for a in answers if isinstance(a, ServiceRefused)]
        assert refusals and all(r.status == 503 and r.retry_after_s == 1 for r in refusals) and retried == 0


def test_the_bearer_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRM_API_TOKEN", "s3cret")
    with served(build_api(stand_in_service())) as base:
        with GenRMClient(base) as client:  # reads GENRM_API_TOKEN, as the service does
            assert client.rank(conversation=CONVERSATION, candidates=CANDIDATES).ranks[1] == 1
        with GenRMClient(base, token="wrong") as client, pytest.raises(ServiceRefused) as refused:
            client.models()
        assert refused.value.status == 401 and "bearer token" in str(refused.value)
        monkeypatch.delenv("GENRM_API_TOKEN")
        with GenRMClient(base) as client:
            assert client.readiness().status  # the probes need no token
            with pytest.raises(ServiceRefused, match="401"):
                client.models()


def test_an_unreachable_service_is_retried_then_named() -> None:
    with GenRMClient("http://127.0.0.1:9", max_retries=1, connect_timeout_s=2) as client:
        with pytest.raises(ServiceError, match="could not connect"):
            client.health()
        assert client.retried == 1


def test_wait_ready_gives_up_after_its_timeout_with_the_last_report(url: str) -> None:
    # Built outside a running loop, the stand-in service never starts its warm-up: /readyz stays "warming_up".
    # (Waiting until ready is covered against the CPU default in test_serving_clients.py.)
    with GenRMClient(url) as client, pytest.raises(ServiceError, match=r"not ready within .*warming_up"):
        client.wait_ready(timeout_s=0.5, poll_s=0.1)
    unreachable = GenRMClient("http://127.0.0.1:9", connect_timeout_s=0.5)
    with unreachable as client, pytest.raises(ServiceError, match=r"not ready within .*None"):
        client.wait_ready(timeout_s=0.5, poll_s=0.1)


def test_validation_details_read_as_where_and_what() -> None:
    detail = [{"loc": ["body", "candidates", 0], "msg": "candidate 0 is empty", "type": "value_error"}]
    assert describe_detail(detail) == "candidates.0: candidate 0 is empty"
    assert describe_detail("queue full") == "queue full"
    response = httpx.Response(503, json={"detail": "a judge call timed out"})
    from serve_app.client.http import _outcome

    with pytest.raises(ServiceRefused) as refused:  # no Retry-After: the work may have run, so no retry
        _outcome("POST", "/v1/rank", response)
    assert refused.value.retry_after_s is None


def test_importing_the_client_pulls_in_no_serving_stack() -> None:
    code = (
        "import sys, serve_app.client, serve_app.client.trl, serve_app.client.verl, serve_app.client.areal\n"
        "heavy = [m for m in ('ray', 'vllm', 'torch', 'fastapi', 'starlette', 'transformers', 'trl', 'areal')"
        " if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_batch_splits_into_runs_of_equal_prompts_cut_at_the_group_size() -> None:
    from serve_app.client.rollouts import consecutive_groups

    batch = ["a", "a", "b", "b", "b", "c"]
    assert consecutive_groups(batch, 2) == [
        (range(0, 2), True),
        (range(2, 4), True),
        (range(4, 5), False),
        (range(5, 6), False),
    ]
    chat = [[{"role": "user", "content": "x"}], [{"content": "x", "role": "user"}], [{"role": "user", "content": "y"}]]
    assert consecutive_groups(chat, None) == [(range(0, 2), True), (range(2, 3), True)]  # dicts compare by content
