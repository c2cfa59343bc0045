"""End to end on the CPU default: the trainers' own code calls the service through the project's client glue.

- TRL: a real ``GRPOTrainer`` on a tiny policy built here (random weights, SmolLM2's tokenizer) trains two steps
  with ``reward_funcs=[GRPOReward(...)]``; its logged rewards are the service's answers.
- veRL: its own loader (``get_custom_reward_fn``) loads ``serve_app/client/verl.py`` by path with reward_kwargs, and
  its own ``NaiveRewardManager`` scores each rollout of a group concurrently, as its reward loop does.
- AReaL: its own ``RLVRWorkflow`` and ``AsyncRewardWrapper`` (worker processes, pickling) run ``GenRMReward``.

SmolLM2 is too small to judge well: the tests check that rewards arrive, group and add up, never which one wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
httpx = pytest.importorskip("httpx")

from live_service import BASE, CONVERSATION, smollm2_folder  # noqa: E402

from serve_app.client import AsyncGenRMClient, GenRMClient  # noqa: E402
from serve_app.client.trl import GRPOReward  # noqa: E402
from serve_app.protocols.genrm_api import RankResponse, RewardResponse  # noqa: E402

QUESTION = CONVERSATION[-1]["content"]
GROUP = 4


def test_the_client_waits_until_ready_and_gets_typed_answers(service: httpx.Client) -> None:
    with GenRMClient(BASE) as client:
        report = client.wait_ready(timeout_s=600)
        assert report.status == "ready" and report.capacity >= 1
        best = client.best_of_n(conversation=CONVERSATION, candidates=["Paris.", "Lyon."], strategy="knockout")
        assert best.index in (0, 1) and best.failed_calls == 0

    async def rewards() -> list[RewardResponse]:
        async with AsyncGenRMClient(BASE) as client:
            return await asyncio.gather(
                *(
                    client.reward(conversation=CONVERSATION, response=a, group_id="client-e2e", group_size=2)
                    for a in ("Paris.", "Lyon.")
                )
            )

    answers = asyncio.run(rewards())
    assert len({a.cohort_id for a in answers}) == 1 and sorted(a.rank for a in answers) == [1, 2]


# --- TRL -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_policy(service: httpx.Client) -> tuple[Any, Any]:
    pytest.importorskip("transformers")
    from bench.trl_grpo import tiny_policy as build

    return build(smollm2_folder())


@pytest.mark.parametrize("shape", ["plain", "chat"])
def test_trl_grpo_trainer_trains_on_the_services_rewards(
    tiny_policy: tuple[Any, Any], shape: str, tmp_path: Path
) -> None:
    pytest.importorskip("trl")
    pytest.importorskip("datasets")
    from bench.trl_grpo import grpo_trainer

    model, tokenizer = tiny_policy
    answers: list[tuple[range, RankResponse | list[RewardResponse]]] = []
    reward = GRPOReward(
        BASE,
        num_generations=GROUP,
        strategy="knockout",
        on_response=lambda positions, answer: answers.append((positions, answer)),
    )
    questions = [QUESTION, "Name a prime number."]
    trainer = grpo_trainer(
        model, tokenizer, reward, tmp_path, steps=2, generations=GROUP, chat=shape == "chat", questions=questions
    )
    trainer.train()

    assert trainer.state.global_step == 2
    # one whole group per step, each sent as one /v1/rank call
    assert len(answers) == 2 and all(isinstance(a, RankResponse) and len(a.scores) == GROUP for _, a in answers)
    logged = [e["rewards/genrm/mean"] for e in trainer.state.log_history if "rewards/genrm/mean" in e]
    served = [sum(a.scores) / GROUP for _, a in answers if isinstance(a, RankResponse)]
    assert logged == pytest.approx(served, abs=1e-4)


def test_trl_reward_sends_a_group_split_across_processes_to_one_cohort(service: httpx.Client) -> None:
    """Two 'processes' each hold half of one prompt's group: their halves meet in one cohort of the router."""
    seen: list[tuple[range, Any]] = []
    reward = GRPOReward(BASE, num_generations=GROUP, strategy="knockout", on_response=lambda p, a: seen.append((p, a)))
    other = "What is 2 + 2?"
    first = [QUESTION] * GROUP + [other] * 2  # a whole group, then half of the next
    second = [other] * 2 + [QUESTION] * GROUP
    completions_1 = ["Paris.", "Lyon.", "Marseille.", "Nice.", "4", "5"]
    completions_2 = ["four", "22", "Paris", "Lille.", "Paris, France.", "Toulouse."]

    async def both() -> tuple[list[float | None], list[float | None]]:
        return await asyncio.gather(reward(first, completions_1), reward(second, completions_2))

    r1, r2 = asyncio.run(both())
    assert all(isinstance(x, float) for x in [*r1, *r2])
    cohorts = [a for _, a in seen if isinstance(a, list)]
    assert len(cohorts) == 2 and all(len(c) == 2 for c in cohorts)
    ids = {r.cohort_id for c in cohorts for r in c}
    assert len(ids) == 1, "the two halves were judged apart"
    merged = [r for c in cohorts for r in c]
    assert all(r.size_judged == GROUP and r.complete for r in merged)
    assert sorted(r.rank for r in merged) == [1, 2, 3, 4]


# --- veRL ----------------------------------------------------------------------------------------------------------


def test_verl_reward_manager_scores_rollouts_through_a_cohort(service: httpx.Client) -> None:
    reward = pytest.importorskip("verl.trainer.ppo.reward", reason="verl (installed --no-deps in the test command)")
    naive = pytest.importorskip("verl.experimental.reward_loop.reward_manager.naive")
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from verl import DataProto

    import serve_app.client.verl as glue

    tokenizer = pytest.importorskip("transformers").AutoTokenizer.from_pretrained(str(smollm2_folder()))
    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": glue.__file__,
                    "name": "compute_score",
                    "reward_kwargs": {"base_url": BASE, "group_size": GROUP},
                }
            }
        }
    )
    compute_score = reward.get_custom_reward_fn(config)

    def rollout(text: str) -> Any:
        prompt = torch.tensor([tokenizer(QUESTION).input_ids])
        response = torch.tensor([[*tokenizer(text).input_ids, tokenizer.eos_token_id]])
        mask = torch.ones(1, prompt.shape[1] + response.shape[1], dtype=torch.long)
        return DataProto.from_dict(
            tensors={"prompts": prompt, "responses": response, "attention_mask": mask},
            non_tensors={
                "data_source": np.array(["genrm-test"], dtype=object),
                "reward_model": np.array([{"ground_truth": None}], dtype=object),
                "extra_info": np.array([{"question": QUESTION, "group_id": "verl-e2e"}], dtype=object),
            },
        )

    async def step() -> list[dict[str, Any]]:
        manager = naive.NaiveRewardManager(config, tokenizer, compute_score)
        return await asyncio.gather(
            *(manager.run_single(rollout(a)) for a in ("Paris.", "Lyon.", "Paris, France.", "Nice."))
        )

    out = asyncio.run(step())
    assert all(isinstance(o["reward_score"], float) for o in out)
    extras = [o["reward_extra_info"] for o in out]
    assert sorted(e["rank"] for e in extras) == [1, 2, 3, 4]
    assert all(e["size_judged"] == GROUP and e["complete"] for e in extras)


# --- AReaL ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def areal_workflow(service: httpx.Client) -> Iterator[Any]:
    rlvr = pytest.importorskip("areal.workflow.rlvr", reason="areal (installed --no-deps in the test command)")
    from areal.api.cli_args import GenerationHyperparameters

    from serve_app.client.areal import GenRMReward, with_timeout

    tokenizer = pytest.importorskip("transformers").AutoTokenizer.from_pretrained(str(smollm2_folder()))
    workflow = rlvr.RLVRWorkflow(
        reward_fn=GenRMReward(BASE, group_size=GROUP),
        gconfig=GenerationHyperparameters(n_samples=GROUP, max_new_tokens=16),
        tokenizer=tokenizer,
    )
    # AReaL's default timeout, far too short for a GenRM; its default pool is (CPUs / GPUs) / 2 processes, one on
    # two CPUs, where the samples of a cohort would run one after another
    assert workflow.async_reward_fn.timeout_seconds == 15
    yield with_timeout(workflow, 600), tokenizer


def test_areal_workflow_runs_the_reward_fn_in_its_own_wrapper(areal_workflow: tuple[Any, Any]) -> None:
    workflow, tokenizer = areal_workflow
    assert workflow.async_reward_fn.timeout_seconds == 600 and workflow.async_reward_fn.max_workers == 2 * GROUP
    messages = [{"role": "user", "content": "What is the capital of Italy?"}]
    input_ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if not isinstance(input_ids, list):
        input_ids = input_ids["input_ids"]
    prompt_str = tokenizer.decode(input_ids)  # what RLVRWorkflow hands to its reward function

    async def samples() -> list[float]:
        outs = []
        for text in ("Rome.", "Milan.", "It is Rome.", "Turin."):
            ids = [*tokenizer(text, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
            outs.append(workflow.async_reward_fn(prompt_str, tokenizer.decode(ids), input_ids, ids, answer="Rome"))
        return await asyncio.gather(*outs)

    rewards = asyncio.run(samples())
    # floats from the service: with no retries left, AReaL's wrapper raises a refusal instead of answering 0
    assert len(rewards) == GROUP and all(isinstance(r, float) for r in rewards)
