"""LLaMA-Factory's API reward model (serve_app/routes/llamafactory.py) in process, with the stand-in judges.

Requests are built as LLaMA-Factory's PPO trainer builds them: ``{"model": "model", "messages": [...]}``, each
message one sample's query and response token ids decoded together with special tokens kept."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")

from stand_in_judges import QualityPrinciple, run_app


def decoded(question: str, response: str) -> str:
    return (
        f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
        f"<|im_start|>assistant\n{response}<|im_end|><|endoftext|>"
    )


def post(messages: list[str], router: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/v1/score/evaluation", json={"model": "model", "messages": messages})

    return run_app(go, router, **kw)


def test_each_text_is_scored_by_the_principle_judge_on_its_own() -> None:
    judge = QualityPrinciple()
    messages = [decoded("Name a prime.", "quality 3"), decoded("Name an even number.", "quality 1")]
    r = post(messages, principle=judge)
    assert r.status_code == 200, r.text
    assert r.json() == {"scores": [3.0, 1.0]}
    conversations = [[(m.role, m.content) for m in c] for c, _ in judge.seen[-2:]]
    assert sorted(c[-1][1] for c in conversations) == ["Name a prime.", "Name an even number."]
    assert sorted(response for _, response in judge.seen[-2:]) == ["quality 1", "quality 3"]


def test_a_large_batch_waits_for_admission_instead_of_503() -> None:
    judge = QualityPrinciple()
    messages = [decoded(f"Question {k}?", f"quality {k % 5}") for k in range(40)]
    r = post(messages, {"max_concurrent_requests": 2, "max_queued_requests": 0}, principle=judge)
    assert r.status_code == 200, r.text
    assert r.json()["scores"] == [float(k % 5) for k in range(40)]


def test_rank_scoring_ranks_the_texts_of_one_prompt() -> None:
    messages = [decoded("Name a prime.", "quality 1"), decoded("Name a prime.", "quality 4")]
    r = post(messages)  # no principle judge: 'auto' ranks
    assert r.status_code == 200, r.text
    low, high = r.json()["scores"]
    assert high > low
    forced = post(messages, {"trainers": {"llamafactory": {"scoring": "rank"}}}, principle=QualityPrinciple())
    assert forced.json()["scores"][1] > forced.json()["scores"][0]


def test_texts_that_cannot_be_split_get_422() -> None:
    r = post([decoded("Q?", "quality 1"), "no template at all"], principle=QualityPrinciple())
    assert r.status_code == 422 and "messages[1]" in r.text and "where the response starts" in r.text
    assert post([], principle=QualityPrinciple()).json() == {"scores": []}
    missing = post(["x"], {"trainers": {"llamafactory": {"scoring": "principle"}}})
    assert missing.status_code == 422  # no header in the text; checked before the judge


def test_principle_scoring_without_the_principle_judge_says_so() -> None:
    r = post([decoded("Q?", "quality 1")], {"trainers": {"llamafactory": {"scoring": "principle"}}})
    assert r.status_code == 404 and "principle judge is not configured" in r.text
