"""slime's remote reward model (serve_app/routes/slime.py) in process, with the stand-in judges.

Requests are built as slime's ``remote_rm`` builds them: one sample per request, concurrently, ``{"prompt": ...,
"response": ..., "label": ...}`` with the prompt as chat messages or (after --apply-chat-template) templated text."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")

from stand_in_judges import CONVERSATION, QualityPrinciple, run_app

TEMPLATED = "<|im_start|>user\nName a prime number.<|im_end|>\n<|im_start|>assistant\n"


def samples(prompt: Any, qualities: tuple[int, ...]) -> list[dict[str, Any]]:
    return [{"prompt": prompt, "response": f"7, quality {q}<|im_end|>", "label": "7"} for q in qualities]


def post_all(bodies: list[dict[str, Any]], router: dict[str, Any], **kw: Any) -> list[httpx.Response]:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        return list(await asyncio.gather(*(http.post("/slime/reward", json=b) for b in bodies)))

    return run_app(go, router, **kw)


def test_samples_of_a_prompt_are_judged_together_and_answered_as_a_bare_float() -> None:
    router = {"cohorts": {"group_timeout_s": 30}, "trainers": {"slime": {"group_size": 3}}}
    responses = post_all(samples(CONVERSATION, (2, 3, 1)), router)
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    rewards = [r.json() for r in responses]
    assert all(isinstance(x, float) for x in rewards)  # slime stores the whole reply as the reward
    assert rewards[1] > rewards[0] > rewards[2]


def test_a_templated_prompt_is_read_back_into_turns() -> None:
    judge = QualityPrinciple()
    router = {"cohorts": {"group_timeout_s": 30}, "trainers": {"slime": {"group_size": 2}}}
    responses = post_all(samples(TEMPLATED, (1, 2)), router, principle=judge)
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    conversation, response = judge.seen[-1]
    assert [(m.role, m.content) for m in conversation] == [("user", "Name a prime number.")]
    assert response in ("7, quality 1", "7, quality 2")  # the EOS token is stripped
    # Text in no template is one user turn.
    post_all(samples("Name a prime number.", (1, 2)), router, principle=judge)
    assert [(m.role, m.content) for m in judge.seen[-1][0]] == [("user", "Name a prime number.")]


def test_dict_reply_for_reward_key() -> None:
    router = {"cohorts": {"group_timeout_s": 30}, "trainers": {"slime": {"group_size": 2, "reply": "dict"}}}
    out = [r.json() for r in post_all(samples(CONVERSATION, (1, 2)), router)]
    assert set(out[0]) == {"reward", "valid", "rank", "group_size", "size_judged", "complete", "cohort_id"}
    assert [o["rank"] for o in out] == [2, 1] and out[1]["reward"] > out[0]["reward"]
    assert out[0]["cohort_id"] == out[1]["cohort_id"] and out[0]["complete"] is True


def test_bad_samples_get_422() -> None:
    bodies = [
        {"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "response": "x"},
        {"prompt": CONVERSATION},
        {"prompt": 5, "response": "x"},
        {"prompt": [{"role": 3, "content": "hi"}], "response": "x"},
    ]
    responses = post_all(bodies, {})
    assert [r.status_code for r in responses] == [422] * 4, [r.text for r in responses]
    assert "must end with a user turn" in responses[0].text
    assert "prompt[0].role" in responses[3].text
