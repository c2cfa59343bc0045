"""OpenRLHF's remote reward model (serve_app/routes/openrlhf.py) in process, with the stand-in judges.

Requests are built as OpenRLHF builds them: ``prompts[i]`` is the chat-templated prompt text (generation prompt
included), ``query[i]`` the prompt and response token ids decoded together with special tokens kept (EOS at the end,
padding around), ``labels`` nulls; since 0.10 one sample per request, sent concurrently."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")

from stand_in_judges import QualityPrinciple, run_app

QUESTION = "Name a prime number."


def chatml_prompt(question: str = QUESTION) -> str:
    return f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def sample(response: str, question: str = QUESTION, pad: str = "") -> tuple[str, str]:
    """(query, prompt) as OpenRLHF decodes them: left padding before both, EOS then right padding after."""
    prompt = pad + chatml_prompt(question)
    return prompt + response + "<|im_end|>" + pad, prompt


def body(*samples: tuple[str, str]) -> dict[str, Any]:
    return {"query": [q for q, _ in samples], "prompts": [p for _, p in samples], "labels": [None] * len(samples)}


def test_per_sample_requests_form_a_cohort_and_get_their_rewards() -> None:
    judge = QualityPrinciple()

    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        bodies = [body(sample(f"7, quality {q}", pad="<|endoftext|>" * 3)) for q in (2, 4, 1, 3)]
        return list(await asyncio.gather(*(http.post("/get_reward", json=b) for b in bodies)))

    router = {"cohorts": {"group_timeout_s": 30}, "trainers": {"openrlhf": {"group_size": 4}}}
    responses = run_app(go, router, principle=judge)
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    out = [r.json() for r in responses]
    for o in out:
        assert set(o) == {"rewards", "scores", "extra_logs"}
        assert len(o["rewards"]) == 1 and o["scores"] == o["rewards"]
        assert o["extra_logs"]["group_size"] == [4.0] and o["extra_logs"]["complete"] == [1.0]
    assert [o["extra_logs"]["rank"][0] for o in out] == [3.0, 1.0, 4.0, 2.0]
    rewards = [o["rewards"][0] for o in out]
    assert rewards[1] > rewards[3] > rewards[0] > rewards[2]
    # The judges saw the conversation and the bare response: turns recovered, EOS and padding gone.
    conversation, response = judge.seen[-1]
    assert [(m.role, m.content) for m in conversation] == [("system", "Be brief."), ("user", QUESTION)]
    assert response.startswith("7, quality ") and response.endswith(tuple("1234"))


def test_several_samples_of_a_prompt_in_one_request_are_ranked_together() -> None:
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        samples = [sample("quality 1"), sample("quality 3", "Name an even number."), sample("quality 2")]
        samples.append(sample("quality 5", "Name an even number."))
        return await http.post("/get_reward", json=body(*samples))

    r = run_app(go)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["extra_logs"] == {
        "rank": [2.0, 2.0, 1.0, 1.0],
        "group_size": [2.0, 2.0, 2.0, 2.0],
        "valid": [1.0, 1.0, 1.0, 1.0],
    }
    assert out["rewards"][2] > out["rewards"][0] and out["rewards"][3] > out["rewards"][1]


def test_cohort_batch_mode_sends_a_requests_samples_through_the_cohorts() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        first = http.post("/get_reward", json=body(sample("quality 1"), sample("quality 3")))
        second = http.post("/get_reward", json=body(sample("quality 2")))
        return list(await asyncio.gather(first, second))

    router = {"cohorts": {"group_timeout_s": 30}, "trainers": {"openrlhf": {"group_size": 3, "batch": "cohort"}}}
    first, second = run_app(go, router)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["extra_logs"]["rank"] == [3.0, 1.0] and second.json()["extra_logs"]["rank"] == [2.0]
    assert first.json()["extra_logs"]["group_size"] == [3.0, 3.0]


def test_thinking_responses_are_judged_by_their_answer() -> None:
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        thinking = "<think>\nquality 9 would be nice</think>\n\nquality 1"
        return await http.post("/get_reward", json=body(sample(thinking), sample("quality 2")))

    out = run_app(go).json()
    assert out["extra_logs"]["rank"] == [2.0, 1.0]


def test_query_without_prompts_is_split_at_the_assistant_header() -> None:
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/get_reward", json={"query": [sample("quality 1")[0], sample("quality 2")[0]]})

    r = run_app(go)
    assert r.status_code == 200 and r.json()["extra_logs"]["rank"] == [2.0, 1.0], r.text


def test_bad_requests_get_422_saying_what_is_wrong() -> None:
    async def go(http: httpx.AsyncClient) -> dict[str, httpx.Response]:
        return {
            "lengths": await http.post("/get_reward", json={"query": ["a", "b"], "prompts": ["a"]}),
            "unsplittable": await http.post("/get_reward", json={"query": ["plain text"], "prompts": ["other"]}),
            "types": await http.post("/get_reward", json={"query": "not a list"}),
            "surrogate": await http.post(
                "/get_reward", content=b'{"query": ["\\ud800"]}', headers={"content-type": "application/json"}
            ),
        }

    out = run_app(go)
    assert out["lengths"].status_code == 422 and "prompts has 1 entries and query 2" in out["lengths"].text
    assert out["unsplittable"].status_code == 422 and "query[0]" in out["unsplittable"].text
    assert out["types"].status_code == 422 and out["surrogate"].status_code == 422
    assert all("detail" in r.json() for r in out.values())


def test_an_unreadable_policy_tokenizer_is_a_configuration_error(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/get_reward", json=body(sample("quality 1")))

    r = run_app(go, {"trainers": {"openrlhf": {"policy_tokenizer": str(tmp_path / "nowhere")}}})
    assert r.status_code == 503 and "router.trainers.openrlhf.policy_tokenizer" in r.text


def _smollm2_folder() -> Path:
    from serve_app.model_cache import cache_root

    folder = cache_root() / "SmolLM2-135M-Instruct.Q4_1"
    if not (folder / "tokenizer_config.json").is_file():
        pytest.skip("the CPU default's SmolLM2 folder is not converted yet (it is made at the first serve run)")
    return folder


def test_with_the_policys_real_tokenizer_as_openrlhf_decodes_it(tmp_path: Path) -> None:
    """SmolLM2's tokenizer (ChatML; its BOS is <|im_start|>, its PAD <|im_end|>) renders the prompt and decodes
    prompt + response + EOS ids with special tokens, exactly as OpenRLHF does; the route reads it with the same
    tokenizer folder named in the configuration."""
    transformers = pytest.importorskip("transformers")
    folder = _smollm2_folder()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    messages = [{"role": "user", "content": QUESTION}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def query(response: str) -> str:
        ids = tokenizer(prompt, add_special_tokens=False).input_ids
        ids += [*tokenizer(response, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
        return tokenizer.decode(ids, skip_special_tokens=False)

    judge = QualityPrinciple()

    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        bodies = [{"query": [query(f"quality {q}")], "prompts": [prompt], "labels": [None]} for q in (1, 2)]
        return list(await asyncio.gather(*(http.post("/get_reward", json=b) for b in bodies)))

    router = {"trainers": {"openrlhf": {"policy_tokenizer": str(folder), "group_size": 2}}}
    responses = run_app(go, router, principle=judge)
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert [r.json()["extra_logs"]["rank"] for r in responses] == [[2.0], [1.0]]
    conversation, response = judge.seen[-1]
    assert conversation[-1].role == "user" and conversation[-1].content == QUESTION
    assert response in ("quality 1", "quality 2")
