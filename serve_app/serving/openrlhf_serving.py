"""OpenRLHF's remote reward model (``--remote_rm_url``, ``--reward.remote_url`` from 0.10.2), serving
``POST /get_reward``.

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

from serve_app.config import DEFAULT_TENANT
from serve_app.core.service import JudgingService
from serve_app.core.stats import RequestStats
from serve_app.protocols.openrlhf_api import GetRewardRequest, GetRewardResponse
from serve_app.serving.trainer_inputs import Rollout, cohort_rewards, policy_reader, rank_by_prompt, read_text


class OpenRLHFServing:
    """``/get_reward`` for one replica (see the module docstring)."""

    def __init__(self, service: JudgingService, tenant: str = DEFAULT_TENANT) -> None:
        self.service = service
        self.tenant = tenant

    async def get_reward(self, body: GetRewardRequest) -> tuple[GetRewardResponse, list[RequestStats]]:
        settings = self.service.limits.trainers.openrlhf
        reader = policy_reader(settings, "openrlhf")
        prompts = body.prompts or [None] * len(body.query)
        samples: list[Rollout] = [
            read_text(lambda q=q, p=p: reader.split_query(q, p), f"query[{k}]")
            for k, (q, p) in enumerate(zip(body.query, prompts, strict=True))
        ]
        if not samples:
            return GetRewardResponse(rewards=[], scores=[], extra_logs={}), []
        if len(samples) == 1 or settings.batch == "cohort":
            answers, stats = await cohort_rewards(
                self.service, samples, "query", "openrlhf", group_size=settings.group_size, tenant=self.tenant
            )
            rewards = [a.reward for a in answers]
            logs = {
                "rank": [float(a.rank) for a in answers],
                "group_size": [float(a.size_judged) for a in answers],
                "complete": [float(a.complete) for a in answers],
                "valid": [float(a.valid) for a in answers],
            }
        else:
            stats_one = RequestStats("openrlhf", tenant=self.tenant)
            ranked = await rank_by_prompt(self.service, samples, "query", tenant=self.tenant)
            stats = [stats_one, *ranked.stats]
            stats_one.status = "200"
            rewards = ranked.scores
            logs = {
                "rank": [float(r) for r in ranked.ranks],
                "group_size": [float(s) for s in ranked.sizes],
                "valid": [float(v) for v in ranked.valid],
            }
        return GetRewardResponse(rewards=rewards, scores=list(rewards), extra_logs=logs), stats
