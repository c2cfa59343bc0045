"""NeMo-Gym's genrm_compare protocol (serve_app/routes/nemo_gym.py) in process, with the stand-in judges.

Requests are built as NeMo-Gym builds them: Responses-API objects with a reasoning item and a message item, the
verify row with responses_create_params, _ng_task_index / _ng_rollout_index, sent concurrently per rollout."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")

from stand_in_judges import CONVERSATION, OwnerHandle, run_app, stand_in_service

from serve_app.chat_text import EMPTY_RESPONSE
from serve_app.config import AppConfig
from serve_app.ingress.asgi import build_api
from serve_app.protocols.nemo_gym_api import ResponseObject
from serve_app.serving.nemo_gym_serving import output_text

NEMO_GYM_RULE = {"trainers": {"nemo_gym": {"reward_rule": "nemo_gym"}}}


def response_obj(text: str, reasoning: str = "I think quality 9 wins.") -> dict[str, Any]:
    """A Responses-API object as NeMo-Gym's policy server returns it: reasoning, then the answer message."""
    return {
        "id": "resp_1",
        "object": "response",
        "model": "policy",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": reasoning}]},
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            },
        ],
    }


def compare_body(qualities: list[int], **extra: Any) -> dict[str, Any]:
    return {
        "conversation_history": CONVERSATION,
        "response_objs": [response_obj(f"7, quality {q}") for q in qualities],
        **extra,
    }


def verify_body(quality: int, task: int | None = 0, rollout: int | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "responses_create_params": {"input": [{"role": "user", "content": "Name a prime number."}]},
        "response": response_obj(f"7, quality {quality}"),
        "expected_answer": "7",  # a dataset column, echoed back
        **extra,
    }
    if task is not None:
        body["_ng_task_index"] = task
    if rollout is not None:
        body["_ng_rollout_index"] = rollout
    return body


def test_nemo_gym_rule_gives_the_hand_computed_rewards() -> None:
    """qualities 1, 4, 7: the stand-in gives helpfulness 2, 5, 5 (capped) and ranks the better one 2 (first) / 5
    (second). Circular pairs (0,1), (1,2), (2,0), one order each, whichever order the seeded coin chose (the
    stand-in has no position bias, so the order does not change the numbers):
      (0,1): 2 vs 5                                   -> 0: 2,   1: 5
      (1,2): 5 vs 5 tie, 2 is better: adj 1.5 to it   -> 1: 3.5, 2: 6.5
      (2,0): 5 vs 2                                   -> 2: 5,   0: 2
    rewards 2.0, 4.25, 5.75; scores 2, 5, 5, 5, 5, 2: mean 4, population std sqrt(2); 1 tie in 3 calls."""

    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/compare", json=compare_body([1, 4, 7]))

    r = run_app(go, NEMO_GYM_RULE)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["rewards"] == [2.0, 4.25, 5.75]
    assert out["metrics"] == {
        "mean_individual_score": 4.0,
        "std_individual_score": pytest.approx(2**0.5),
        "tiebreak_usage_rate": pytest.approx(1 / 3),
    }
    calls = out["comparison_results"]
    assert len(calls) == 3 and {frozenset((c["response_i"], c["response_j"])) for c in calls} == {
        frozenset(p) for p in ((0, 1), (1, 2), (2, 0))
    }
    assert set(calls[0]) == {"response_i", "response_j", "judge_idx", "score_1", "score_2", "ranking"}


def test_ensemble_rule_gives_the_configured_designs_scores() -> None:
    """The same group under the default rule: /v1/rank's scores (round robin with both orders here), every call
    reported as NeMo-Gym reports its calls."""

    async def go(http: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        compare = await http.post("/compare", json=compare_body([1, 4, 7]))
        texts = [f"7, quality {q}" for q in (1, 4, 7)]
        rank = await http.post("/v1/rank", json={"conversation": CONVERSATION, "candidates": texts})
        return compare, rank

    compare, rank = run_app(go)
    assert compare.status_code == 200, compare.text
    out = compare.json()
    assert out["rewards"] == rank.json()["scores"]
    assert out["rewards"][2] > out["rewards"][1] > out["rewards"][0]
    assert out["rewards"] != [2.0, 4.25, 5.75]
    assert len(out["comparison_results"]) == 6  # 3 pairs in both orders
    assert out["metrics"]["mean_individual_score"] == 4.0


def test_fewer_than_two_responses_get_the_default_score() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await http.post("/compare", json=compare_body([3])),
            await http.post("/compare", json=compare_body([])),
        ]

    one, none = run_app(go, {"trainers": {"nemo_gym": {"default_score": 2.5}}})
    assert one.json() == {"rewards": [2.5], "comparison_results": [], "metrics": {}}
    assert none.json() == {"rewards": [], "comparison_results": [], "metrics": {}}


def test_only_the_final_output_text_is_judged() -> None:
    """The reasoning of the worse answer says "quality 9"; the answers say 1 and 2: the answer decides."""
    body = {
        "conversation_history": CONVERSATION,
        "response_objs": [response_obj("quality 1", reasoning="quality 9"), response_obj("quality 2", reasoning="")],
    }

    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/compare", json=body)

    assert run_app(go, NEMO_GYM_RULE).json()["rewards"] == [2.0, 3.0]


def test_output_text_joins_the_message_items_and_stands_in_for_an_empty_answer() -> None:
    obj = ResponseObject.model_validate(
        {
            "output": [
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hidden"}]},
                {"type": "message", "content": [{"type": "output_text", "text": "a"}, {"type": "refusal"}]},
                {"type": "function_call", "name": "f", "arguments": "{}"},
                {"type": "message", "content": [{"type": "output_text", "text": "b"}]},
            ]
        }
    )
    assert output_text(obj) == "ab"
    assert output_text(ResponseObject.model_validate({"output": [{"type": "reasoning"}]})) == EMPTY_RESPONSE
    assert output_text(ResponseObject()) == EMPTY_RESPONSE


def test_concurrent_verify_rollouts_form_one_cohort_and_echo_their_row() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        bodies = [verify_body(q, task=5, rollout=k) for k, q in enumerate((1, 4, 7))]
        return list(await asyncio.gather(*(http.post("/verify", json=b) for b in bodies)))

    router = {"trainers": {"nemo_gym": {"reward_rule": "nemo_gym", "num_rollouts_per_prompt": 3}}}
    responses = run_app(go, router)
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    out = [r.json() for r in responses]
    assert [o["reward"] for o in out] == [2.0, 4.25, 5.75]  # the hand-computed NeMo-Gym numbers
    sent = verify_body(1, task=5, rollout=0)
    # the row as sent, plus "reward" and the group's attempt (NeMo-Gym >= 0.7 reads it back)
    assert {k: v for k, v in out[0].items() if k not in ("reward", "_ng_group_attempt")} == sent
    assert out[0]["_ng_group_attempt"] == 0


def test_a_retried_group_attempt_is_a_cohort_of_its_own() -> None:
    """NeMo-Gym >= 0.7 retries a failed group under the same _ng_group_id with the next _ng_group_attempt: the
    retry's rollouts must not join the cohort of the attempt it replaces."""

    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        first = [
            verify_body(q, task=None, rollout=k, _ng_group_id="g", _ng_group_attempt=0) for k, q in enumerate((1, 4))
        ]
        retry = [
            verify_body(q, task=None, rollout=k, _ng_group_id="g", _ng_group_attempt=1) for k, q in enumerate((7, 2))
        ]
        return list(await asyncio.gather(*(http.post("/verify", json=b) for b in [*first, *retry])))

    router = {"trainers": {"nemo_gym": {"reward_rule": "nemo_gym", "num_rollouts_per_prompt": 2}}}
    responses = run_app(go, router)
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    out = [r.json() for r in responses]
    assert [o["_ng_group_attempt"] for o in out] == [0, 0, 1, 1]
    # judged as two groups of two: each pair's own ranking, not one group of four
    assert out[0]["reward"] < out[1]["reward"] and out[2]["reward"] > out[3]["reward"]


def test_verify_under_the_ensemble_rule_uses_the_cohorts() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        bodies = [verify_body(q, task=None, prompt_id="p-1") for q in (2, 1, 3)]
        return list(await asyncio.gather(*(http.post("/verify", json=b) for b in bodies)))

    responses = run_app(go, {"trainers": {"nemo_gym": {"num_rollouts_per_prompt": 3}}})
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    rewards = [r.json()["reward"] for r in responses]
    assert rewards[2] > rewards[0] > rewards[1]
    assert responses[0].json()["prompt_id"] == "p-1"


def test_an_incomplete_cohort_is_judged_at_its_timeout() -> None:
    """Two of three rollouts arrive: at group_timeout_s the two are judged (one circular pair: 2 vs 5)."""

    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        bodies = [verify_body(q, rollout=k) for k, q in ((0, 1), (2, 4))]
        return list(await asyncio.gather(*(http.post("/verify", json=b) for b in bodies)))

    router = {
        "cohorts": {"group_timeout_s": 0.2},
        "trainers": {"nemo_gym": {"reward_rule": "nemo_gym", "num_rollouts_per_prompt": 3}},
    }
    out = run_app(go, router)
    assert [r.json()["reward"] for r in out] == [2.0, 5.0]


@pytest.mark.parametrize("rule", ["ensemble", "nemo_gym"])
def test_verify_refusals_say_what_was_wrong(rule: str) -> None:
    async def go(http: httpx.AsyncClient) -> dict[str, httpx.Response]:
        first = asyncio.ensure_future(http.post("/verify", json=verify_body(1, task=1, rollout=0)))
        await asyncio.sleep(0.05)
        out = {
            "repeated": await http.post("/verify", json=verify_body(2, task=1, rollout=0)),
            "outside": await http.post("/verify", json=verify_body(2, task=1, rollout=7)),
        }
        out["first"] = await asyncio.wait_for(first, 10)
        assistant_last = verify_body(1)
        assistant_last["responses_create_params"]["input"].append({"role": "assistant", "content": "7"})
        out["assistant_last"] = await http.post("/verify", json=assistant_last)
        out["no_params"] = await http.post("/verify", json={"response": response_obj("7")})
        return out

    router = {
        "cohorts": {"group_timeout_s": 0.5},
        "trainers": {"nemo_gym": {"reward_rule": rule, "num_rollouts_per_prompt": 2}},
    }
    out = run_app(go, router)
    assert out["repeated"].status_code == 409 and "rollout_index 0" in out["repeated"].text
    outside = out["outside"]
    assert outside.status_code == 422 and "num_rollouts_per_prompt is 2" in outside.text, outside.text
    assert out["first"].status_code == 200
    assert out["assistant_last"].status_code == 422 and "must end with a user turn" in out["assistant_last"].text
    assert out["no_params"].status_code == 422 and "responses_create_params" in out["no_params"].text


def test_compare_refusals() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await http.post("/compare", json={**compare_body([1, 2]), "conversation_history": []}),
            await http.post("/compare", json={**compare_body([1, 2]), "response_objs": [{"output": "text"}] * 2}),
            await http.post(
                "/compare", json=compare_body([1, 2], conversation_history=[{"role": "assistant", "content": "hi"}])
            ),
        ]

    for r in run_app(go):
        assert r.status_code == 422, r.text
        assert "detail" in r.json()


def test_the_nemo_gym_rule_needs_the_pairwise_judge() -> None:
    from stand_in_judges import QualityPrinciple

    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/compare", json=compare_body([1, 2]))

    r = run_app(go, NEMO_GYM_RULE, principle=QualityPrinciple(), pairwise=False)
    assert r.status_code == 422 and "pairwise judge" in r.text


def test_the_nemo_gym_rule_for_verify_works_with_router_replicas() -> None:
    """/verify goes through the core's per-sample path with the rule plugged in, so its cohorts live in the one
    cohort table of the owner replica: rollouts of one task reaching different replicas are judged together."""
    router = {
        "trainers": {"nemo_gym": {"reward_rule": "nemo_gym", "num_rollouts_per_prompt": 3}},
        "deployment": {"num_replicas": 2},
    }
    args = {"pairwise": {"endpoint": {"base_url": "http://x/v1", "model": "m", "tokenizer": "t"}}, "router": router}
    assert AppConfig.model_validate(args).router.replicated

    async def main() -> list[httpx.Response]:
        owner, forwarder = stand_in_service(router), stand_in_service(router)
        forwarder.cohort_owner, forwarder.cohorts = OwnerHandle(owner), None  # as JudgingService(cohort_owner=...)
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=build_api(svc)), base_url="http://r", timeout=30)
            for svc in (owner, forwarder)
        ]
        try:
            bodies = [verify_body(q, task=5, rollout=k) for k, q in enumerate((1, 4, 7))]
            return list(await asyncio.gather(*(clients[k % 2].post("/verify", json=b) for k, b in enumerate(bodies))))
        finally:
            for c in clients:
                await c.aclose()

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    assert [r.json()["reward"] for r in responses] == [2.0, 4.25, 5.75]  # as one replica judges them


def test_openapi_documents_the_nemo_gym_routes() -> None:
    async def go(http: httpx.AsyncClient) -> dict[str, Any]:
        return (await http.get("/openapi.json")).json()

    paths = run_app(go)["paths"]
    assert {"/compare", "/verify"} <= set(paths)
