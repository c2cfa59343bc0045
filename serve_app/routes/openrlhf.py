"""OpenRLHF's remote reward model (``--remote_rm_url``, ``--reward.remote_url`` from 0.10.2): ``POST /get_reward``.

OpenRLHF posts ``{"query": [str], "prompts": [str], "labels": [str | null]}``: ``query[i]`` is the prompt and the
response decoded with the policy's tokenizer, special tokens kept; ``prompts[i]`` its prompt part. The answer is
``{"rewards": [float], "scores": [float], "extra_logs": {key: [value]}}``, one value per sample.

* Each query is split back into a conversation and a response (:mod:`serve_app.chat_text`, with the tokenizer
  folder ``router.trainers.openrlhf.policy_tokenizer`` when set). ``labels`` are accepted and not used: the judges
  compare responses, they do not check them against a reference.
* One sample per request (OpenRLHF ≥ 0.10): the sample joins its prompt's cohort (``/v1/reward``, key derived from
  the conversation, ``router.trainers.openrlhf.group_size`` samples, else ``router.cohorts.group_size``) and the
  answer comes once the group has been judged together.
* Several samples (older versions' micro-batches): with ``batch: rank`` (default) each prompt's samples in the
  request are ranked together at once; with ``batch: cohort`` every sample joins its cohort as above.

``rewards`` and ``scores`` are the same ensemble score (comparable within a group); ``extra_logs`` holds each sample's
``rank`` (1 = best), ``group_size`` (samples judged together) and, for cohorts, ``complete`` (1.0 when the whole
group arrived before its timeout).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployments.chat import Text
from serve_app.metrics import RequestStats
from serve_app.protocols import Rollout, cohort_rewards, policy_reader, rank_by_prompt, read_text, reply
from serve_app.routes import Service

router = APIRouter(tags=["OpenRLHF"])


class GetRewardRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: list[Text] = Field(description="per sample: prompt + response as chat-template text, special tokens kept")
    prompts: list[Text] | None = Field(default=None, description="per sample: the prompt part of its query")
    labels: list[Any] | None = Field(default=None, description="per sample: a reference (str or null); not used")

    @model_validator(mode="after")
    def _aligned(self) -> GetRewardRequest:
        n = len(self.query)
        for name in ("prompts", "labels"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"{name} has {len(values)} entries and query {n}: one per sample")
        return self


class GetRewardResponse(BaseModel):
    rewards: list[float] = Field(description="per sample, in request order (higher is better, within its group)")
    scores: list[float] = Field(description="the same values (OpenRLHF logs and filters on them)")
    extra_logs: dict[str, list[float]] = Field(description="per key one value per sample: rank, group_size, complete")


@router.post(
    "/get_reward",
    response_model=GetRewardResponse,
    summary="OpenRLHF remote reward model: rewards for templated query texts",
    description="One sample per request (OpenRLHF >= 0.10) waits for the other samples of its prompt (cohorts; "
    "router.trainers.openrlhf.group_size, else router.cohorts.group_size); several samples of one prompt in a "
    "request are ranked together (router.trainers.openrlhf.batch). 422: lists of different lengths, a query that "
    "cannot be split into prompt and response.",
)
async def get_reward(body: GetRewardRequest, service: Service) -> Response:
    settings = service.limits.trainers.openrlhf
    reader = policy_reader(settings, "openrlhf")
    prompts = body.prompts or [None] * len(body.query)
    samples: list[Rollout] = [
        read_text(lambda q=q, p=p: reader.split_query(q, p), f"query[{k}]")
        for k, (q, p) in enumerate(zip(body.query, prompts, strict=True))
    ]
    if not samples:
        return reply(service, GetRewardResponse(rewards=[], scores=[], extra_logs={}).model_dump_json())
    if len(samples) == 1 or settings.batch == "cohort":
        answers, stats = await cohort_rewards(service, samples, "query", "openrlhf", group_size=settings.group_size)
        rewards = [a.reward for a in answers]
        logs = {
            "rank": [float(a.rank) for a in answers],
            "group_size": [float(a.size_judged) for a in answers],
            "complete": [float(a.complete) for a in answers],
        }
    else:
        stats_one = RequestStats("openrlhf")
        ranked = await rank_by_prompt(service, samples, "query")
        stats = [stats_one, *ranked.stats]
        stats_one.status = "200"
        rewards = ranked.scores
        logs = {"rank": [float(r) for r in ranked.ranks], "group_size": [float(s) for s in ranked.sizes]}
    answer = GetRewardResponse(rewards=rewards, scores=list(rewards), extra_logs=logs)
    return reply(service, answer.model_dump_json(), *stats)
