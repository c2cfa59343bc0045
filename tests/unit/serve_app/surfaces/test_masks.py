"""A failed judgement is never a reward, on every surface: a rollout whose every judge call fails (fault injection:
the stand-in judge cannot read any prompt showing it) is marked invalid where the protocol can carry a mark, and
gets its group's mean valid reward where it cannot."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from stand_in_judges import CONVERSATION, QualityClient, run_app
from test_nemo_gym import verify_body

#: the fields a real response object carries that the test rows leave out (NeMo-Gym's own models require them)
RESPONSE_FIELDS = {"created_at": 0, "parallel_tool_calls": False, "tool_choice": "auto", "tools": []}
BROKEN = "quality 9"  # the stand-in cannot judge any call that shows this rollout


def broken_judge() -> QualityClient:
    return QualityClient(breaks_on=lambda prompt: BROKEN in prompt)


TEXTS = ["7, quality 1", "7, quality 4", f"7, {BROKEN}", "7, quality 6"]


def test_rank_marks_the_unjudged_candidate_and_gives_it_the_mean_valid_score() -> None:
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/v1/rank", json={"conversation": CONVERSATION, "candidates": TEXTS})

    r = run_app(go, client=broken_judge())
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["valid"] == [True, True, False, True]
    row = out["candidates"][2]
    assert (row["valid"], row["verdicts"]) == (False, 0) and row["planned_verdicts"] > 0
    kept = [s for s, ok in zip(out["scores"], out["valid"], strict=True) if ok]
    assert out["scores"][2] == pytest.approx(sum(kept) / len(kept))
    assert out["scores"][3] > out["scores"][1] > out["scores"][0]  # the judged ones keep their order
    health = out["diagnostics"]  # the judge health shows it
    assert out["failed_calls"] > 0
    assert health["parse_failure_share"] == pytest.approx(out["failed_calls"] / out["pairwise_calls"])


def rewards_of(bodies: list[dict[str, Any]], path: str, router: dict[str, Any]) -> list[httpx.Response]:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        return list(await asyncio.gather(*(http.post(path, json=b) for b in bodies)))

    return run_app(go, router, client=broken_judge())


def test_reward_marks_the_rollout_and_its_reward_is_the_cohorts_mean_valid_reward() -> None:
    bodies = [{"conversation": CONVERSATION, "response": t, "group_id": "g", "group_size": 4} for t in TEXTS]
    answers = [r.json() for r in rewards_of(bodies, "/v1/reward", {})]
    assert [a["valid"] for a in answers] == [True, True, False, True]
    kept = [a["reward"] for a in answers if a["valid"]]
    assert answers[2]["reward"] == pytest.approx(sum(kept) / len(kept))
    assert answers[2]["candidate"]["verdicts"] == 0


def test_nemo_gym_verify_masks_the_sample_as_nemo_gym_does() -> None:
    from nemo_gym.base_resources_server import BaseVerifyResponse
    from nemo_gym.failure_kinds import JUDGE_UNPARSEABLE
    from nemo_gym.rollout_collection import NG_FAILURE_CLASS_KEY

    bodies = [verify_body(q, task=3, rollout=k) for k, q in enumerate((1, 4, 9, 6))]
    responses = rewards_of(bodies, "/verify", {"trainers": {"nemo_gym": {"num_rollouts_per_prompt": 4}}})
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    # NeMo-Gym's own response model (the test's response object lacks fields a real one carries)
    answers = [
        BaseVerifyResponse.model_validate({**r.json(), "response": {**r.json()["response"], **RESPONSE_FIELDS}})
        for r in responses
    ]
    assert [a.mask_sample for a in answers] == [False, False, True, False]
    # the judge answered, unreadably: NeMo-Gym's kind for that, and no failure routing (not a failed call)
    assert answers[2].failure_kind == JUDGE_UNPARSEABLE and "verdicts" in (answers[2].failure_reason or "")
    assert NG_FAILURE_CLASS_KEY not in responses[2].json()
    assert responses[2].json()["instance_config"]["mask_sample"] is True  # older NeMo-RL readers
    assert "mask_sample" not in responses[0].json()  # a valid row is echoed as before


class DownJudge(QualityClient):
    """A judge whose every call fails without an answer (its engine is gone)."""

    async def chat(self, request: dict[str, Any]) -> Any:
        self.calls += 1
        raise ConnectionError("the engine is gone")


def test_a_judge_that_is_down_masks_every_rollout_as_nemo_gyms_own_failsafe_does() -> None:
    """Every call fails: each rollout of the cohort is answered (200), masked, and carries the fields NeMo-Gym's own
    judge failsafe (``nemo_gym.judge.judge_failsafe``, run here on the same row) gives a failed judge, the keys that
    route the row to the collector's failures file included; the core route says ``valid: false``."""
    from nemo_gym.base_resources_server import BaseVerifyRequest
    from nemo_gym.failure_kinds import JUDGE_FAILED
    from nemo_gym.judge import JudgeError, judge_failsafe
    from nemo_gym.rollout_collection import NG_FAILURE_CLASS_KEY

    bodies = [verify_body(q, task=3, rollout=k) for k, q in enumerate((1, 4, 9, 6))]
    router = {"trainers": {"nemo_gym": {"num_rollouts_per_prompt": 4}}}

    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        verify = [http.post("/verify", json=b) for b in bodies]
        core = [
            http.post("/v1/reward", json={"conversation": CONVERSATION, "response": t, "group_size": 4}) for t in TEXTS
        ]
        return list(await asyncio.gather(*verify, *core))

    responses = run_app(go, router, client=DownJudge())
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    ours, core = [r.json() for r in responses[:4]], [r.json() for r in responses[4:]]

    async def failing_verify(body: BaseVerifyRequest) -> None:
        raise JudgeError("the engine is gone")

    request = BaseVerifyRequest.model_validate({**bodies[0], "response": {**bodies[0]["response"], **RESPONSE_FIELDS}})
    reference = json.loads(asyncio.run(judge_failsafe(failing_verify)(body=request)).body)
    marks = {k for k in reference if k not in request.model_dump()} - {"failure_reason", "_ng_failure_judge_error"}
    assert {"mask_sample", "failure_kind", NG_FAILURE_CLASS_KEY, "reward"} <= marks
    for row in ours:
        assert {k: row[k] for k in marks} == {k: reference[k] for k in marks}, row
        assert row["failure_kind"] == JUDGE_FAILED and "got no answer" in row["_ng_failure_judge_error"]
    assert all(not a["valid"] and a["candidate"]["unanswered_calls"] > 0 for a in core), core


def test_slime_dict_and_openrlhf_logs_carry_the_mark() -> None:
    slime = {"trainers": {"slime": {"reply": "dict", "group_size": 4}}}
    bodies = [{"prompt": CONVERSATION, "response": t} for t in TEXTS]
    answers = [r.json() for r in rewards_of(bodies, "/slime/reward", slime)]
    assert [a["valid"] for a in answers] == [True, True, False, True], answers

    queries = [f"Name a prime number.\n{t}" for t in TEXTS]
    openrlhf: dict[str, Any] = {}
    (r,) = rewards_of([{"query": queries, "prompts": ["Name a prime number.\n"] * 4}], "/get_reward", openrlhf)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["extra_logs"]["valid"] == [1.0, 1.0, 0.0, 1.0]
    kept = [x for x, ok in zip(out["rewards"], out["extra_logs"]["valid"], strict=True) if ok]
    assert out["rewards"][2] == pytest.approx(sum(kept) / len(kept))
