"""End to end on the CPU default: each trainer protocol once, over HTTP, against the real engines (tiny texts).

Requests are built as each trainer builds them (NeMo-Gym's Responses-API objects and verify rows, OpenRLHF's
chat-templated query text decoded by the real SmolLM2 tokenizer, slime's per-sample body, LLaMA-Factory's decoded
texts). The per-sample protocols run on a second router (deployed for this module in front of the same engines) whose
groups are 2 rollouts, so that no test waits for a cohort's timeout. The model is too small to judge well: the tests
check shapes and bookkeeping, never which response wins.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
httpx = pytest.importorskip("httpx")

from live_service import (  # noqa: E402
    BASE,
    CONVERSATION,
    PAIRWISE_DEPLOYMENT,
    PRINCIPLE_DEPLOYMENT,
    cpu_args,
    deployed,
    judge_handle,
    router_app,
    smollm2_folder,
)

ANSWERS = ["Paris.", "Lyon."]


@pytest.fixture(scope="module")
def trainers(service: httpx.Client) -> Iterator[str]:
    """A router with groups of 2 for every per-sample protocol; yields its base URL."""
    args = cpu_args()
    config = {
        "principle": args["principle"],
        "pairwise": args["pairwise"],
        "router": {
            "selection": {"strategy": "knockout"},
            "cohorts": {"group_size": 2, "group_timeout_s": 300},
            "trainers": {
                "nemo_gym": {"num_rollouts_per_prompt": 2},
                "openrlhf": {"group_size": 2, "policy_tokenizer": str(smollm2_folder())},
                "slime": {"group_size": 2},
            },
        },
    }
    app = router_app(config, judge_handle(PRINCIPLE_DEPLOYMENT), judge_handle(PAIRWISE_DEPLOYMENT), "TrainersRouter")
    with deployed(app, "trainers", service) as prefix:
        yield f"{BASE}{prefix}"


def post_concurrently(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    def post(body: dict[str, Any]) -> httpx.Response:
        return httpx.post(url, json=body, timeout=600)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, bodies))


def response_obj(text: str) -> dict[str, Any]:
    return {
        "id": "resp",
        "object": "response",
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking about France."}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]},
        ],
    }


def test_openapi_lists_every_trainer_route(service: httpx.Client) -> None:
    paths = service.get("/openapi.json").json()["paths"]
    for path in ("/compare", "/verify", "/get_reward", "/slime/reward", "/v1/score/evaluation"):
        assert path in paths, path


def test_nemo_gym_compare(service: httpx.Client) -> None:
    body = {"conversation_history": CONVERSATION, "response_objs": [response_obj(a) for a in ANSWERS]}
    r = service.post("/compare", json=body, timeout=600)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["rewards"]) == 2 and out["comparison_results"]
    assert set(out["comparison_results"][0]) == {
        "response_i",
        "response_j",
        "judge_idx",
        "score_1",
        "score_2",
        "ranking",
    }
    assert set(out["metrics"]) <= {"mean_individual_score", "std_individual_score", "tiebreak_usage_rate"}


def test_nemo_gym_verify_cohort(trainers: str) -> None:
    bodies = [
        {
            "responses_create_params": {"input": CONVERSATION},
            "response": response_obj(a),
            "_ng_task_index": 0,
            "_ng_rollout_index": k,
            "expected": "Paris",
        }
        for k, a in enumerate(ANSWERS)
    ]
    responses = post_concurrently(f"{trainers}/verify", bodies)
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    for sent, r in zip(bodies, responses, strict=True):
        out = r.json()
        assert isinstance(out.pop("reward"), float) and out.pop("_ng_group_attempt") == 0 and out == sent


def test_openrlhf_per_sample_requests(trainers: str) -> None:
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(smollm2_folder()))
    prompt = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)

    def query(response: str) -> str:
        ids = tokenizer(prompt, add_special_tokens=False).input_ids
        ids += [*tokenizer(response, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
        return tokenizer.decode(ids, skip_special_tokens=False)

    bodies = [{"query": [query(a)], "prompts": [prompt], "labels": [None]} for a in ANSWERS]
    responses = post_concurrently(f"{trainers}/get_reward", bodies)
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    out = [r.json() for r in responses]
    assert sorted(o["extra_logs"]["rank"][0] for o in out) == [1.0, 2.0]
    assert all(o["extra_logs"]["group_size"] == [2.0] and o["scores"] == o["rewards"] for o in out)


def test_openrlhf_own_request_code_against_get_reward(trainers: str) -> None:
    """OpenRLHF's SingleTurnAgentExecutor posts each rollout the way its trainer does (one query per request)."""
    agent = pytest.importorskip("openrlhf.utils.agent", reason="openrlhf (installed --no-deps in the test command)")
    transformers = pytest.importorskip("transformers")
    import asyncio

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(smollm2_folder()))
    prompt = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    queries = [prompt + a + tokenizer.eos_token for a in ANSWERS]
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=f"{trainers}/get_reward")

    async def rollouts() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(executor._fetch_rewards_via_http([q], [prompt], [None]) for q in queries))

    out = [replies[0] for replies in asyncio.run(rollouts())]
    assert sorted(o["extra_logs"]["rank"][0] for o in out) == [1.0, 2.0]  # the two rollouts were judged together
    assert all(isinstance(o["rewards"][0], float) and o["scores"] == o["rewards"] for o in out)


def nemo_gym_response(text: str, k: int) -> Any:
    """A policy's answer as NeMo-Gym's own Responses-API model holds it: a reasoning item, then the message."""
    oa = pytest.importorskip("nemo_gym.openai_utils")
    return oa.NeMoGymResponse(
        id=f"resp_{k}",
        created_at=0.0,
        model="policy",
        tools=[],
        parallel_tool_calls=False,
        tool_choice="auto",
        object="response",
        output=[
            oa.NeMoGymResponseReasoningItem(
                id=f"rs_{k}",
                type="reasoning",
                status="completed",
                summary=[oa.NeMoGymSummary(text="Hmm.", type="summary_text")],
            ),
            oa.NeMoGymResponseOutputMessage(
                id=f"msg_{k}",
                role="assistant",
                status="completed",
                type="message",
                content=[oa.NeMoGymResponseOutputText(text=text, type="output_text", annotations=[])],
            ),
        ],
    )


def test_nemo_gym_own_models_and_example_data_against_compare_and_verify(trainers: str) -> None:
    """NeMo-Gym's genrm_compare request/response models, on the first prompt of its own example data set."""
    app = pytest.importorskip("resources_servers.genrm_compare.app", reason="nemo-gym (installed --no-deps)")
    import importlib.resources
    import json

    from nemo_gym.global_config import ROLLOUT_INDEX_KEY_NAME, TASK_INDEX_KEY_NAME

    rows = importlib.resources.files("resources_servers.genrm_compare").joinpath("data/example.jsonl")
    row = json.loads(rows.read_text().splitlines()[0])
    history = [{"role": m["role"], "content": m["content"]} for m in row["responses_create_params"]["input"]]
    answers = ["conflict", "symbolic"]
    compare = app.GenRMCompareRequest(
        conversation_history=history,
        response_objs=[nemo_gym_response(a, k).model_dump(mode="json") for k, a in enumerate(answers)],
    )
    r = httpx.post(f"{trainers}/compare", json=compare.model_dump(mode="json"), timeout=600)
    assert r.status_code == 200, r.text
    compared = app.GenRMCompareResponse.model_validate(r.json())
    assert len(compared.rewards) == 2 and compared.comparison_results

    rows_sent = [
        app.GenRMCompareVerifyRequest.model_validate(
            {
                **row,
                "response": nemo_gym_response(a, k),
                TASK_INDEX_KEY_NAME: 3,
                ROLLOUT_INDEX_KEY_NAME: k,
            }
        )
        for k, a in enumerate(answers)
    ]
    bodies = [v.model_dump(mode="json", by_alias=True, exclude_none=True) for v in rows_sent]
    responses = post_concurrently(f"{trainers}/verify", bodies)
    assert [x.status_code for x in responses] == [200, 200], [x.text for x in responses]
    for sent, x in zip(rows_sent, responses, strict=True):
        verified = app.GenRMCompareVerifyResponse.model_validate(x.json())
        assert isinstance(verified.reward, float) and verified.response.id == sent.response.id
        assert verified.mask_sample is False and verified.group_attempt == 0


def test_slime_per_sample_requests(trainers: str) -> None:
    bodies = [{"prompt": CONVERSATION, "response": a, "label": "Paris"} for a in ANSWERS]
    responses = post_concurrently(f"{trainers}/slime/reward", bodies)
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert all(isinstance(r.json(), float) for r in responses)


def test_llamafactory_score_evaluation(service: httpx.Client) -> None:
    messages = [
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n" + a + "<|im_end|>"
        for a in ANSWERS
    ]
    r = service.post("/v1/score/evaluation", json={"model": "model", "messages": messages}, timeout=600)
    assert r.status_code == 200, r.text
    scores = r.json()["scores"]
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    bad = service.post("/v1/score/evaluation", json={"model": "model", "messages": ["no template"]})
    assert bad.status_code == 422 and "messages[0]" in bad.text
