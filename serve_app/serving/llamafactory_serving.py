"""LLaMA-Factory's API reward model (PPO with ``reward_model_type: api``): ``POST /v1/score/evaluation``: serving.

LLaMA-Factory posts ``{"model": "model", "messages": [str]}``, each message one whole sample — its prompt and
response token ids decoded together, special tokens kept — and reads ``{"scores": [float]}``.

* **Splitting.** There is no separate prompt, so each text is cut at its last assistant header (ChatML, Llama 3 or
  Gemma; :mod:`serve_app.chat_text`, with ``router.trainers.llamafactory.policy_tokenizer`` when set). A text in
  another template cannot be split and is refused (422, saying so).
* **Scoring** (``router.trainers.llamafactory.scoring``). PPO generates one response per prompt, so there is usually
  no group to compare: ``principle`` scores each text on its own with the principle judge (the mean reward over
  ``router.default_principles``, 0.0 when no principle could be read), comparable across prompts; ``rank`` ranks the
  texts of one prompt together (a prompt with one text scores 0); ``auto`` is ``principle`` when that judge is
  configured, else ``rank``.
"""

from __future__ import annotations

import asyncio

from serve_app.config import DEFAULT_TENANT
from serve_app.core.service import JudgingService
from serve_app.core.stats import RequestStats
from serve_app.protocols.genrm_api import PrincipleScoreRequest
from serve_app.protocols.llamafactory_api import ScoreEvaluationRequest, ScoreEvaluationResponse
from serve_app.serving.trainer_inputs import Rollout, core_body, policy_reader, rank_by_prompt, read_text


async def _principle_scores(
    service: JudgingService, samples: list[Rollout], tenant: str
) -> tuple[list[float], list[RequestStats]]:
    principles = service.limits.default_principles
    bodies = [
        core_body(PrincipleScoreRequest, f"messages[{k}]", conversation=conv, response=response, principles=principles)
        for k, (conv, response) in enumerate(samples)
    ]
    stats = [RequestStats("llamafactory", tenant=tenant) for _ in bodies]
    # At most as many at once as the router runs: a PPO batch is larger than its queue would take.
    gate = asyncio.Semaphore(service.limits.max_concurrent_requests)

    async def one(body: PrincipleScoreRequest, s: RequestStats) -> float:
        async with gate:
            answer = await service.principle_score(body, s)
        return answer.mean_reward if answer.mean_reward is not None else 0.0

    results = await asyncio.gather(*(one(b, s) for b, s in zip(bodies, stats, strict=True)), return_exceptions=True)
    scores: list[float] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        scores.append(result)
    return scores, stats


class LlamaFactoryServing:
    """``/v1/score/evaluation`` for one replica (see the module docstring)."""

    def __init__(self, service: JudgingService, tenant: str = DEFAULT_TENANT) -> None:
        self.service = service
        self.tenant = tenant

    async def score(self, body: ScoreEvaluationRequest) -> tuple[ScoreEvaluationResponse, list[RequestStats]]:
        service = self.service
        settings = service.limits.trainers.llamafactory
        reader = policy_reader(settings, "llamafactory")
        samples = [read_text(lambda t=t: reader.split(t), f"messages[{k}]") for k, t in enumerate(body.messages)]
        if not samples:
            return ScoreEvaluationResponse(scores=[]), []
        scoring = settings.scoring
        if scoring == "auto":
            scoring = "principle" if service.principle is not None else "rank"
        if scoring == "principle":
            scores, stats = await _principle_scores(service, samples, self.tenant)
        else:
            ranked = await rank_by_prompt(service, samples, "messages", tenant=self.tenant)
            scores, stats = ranked.scores, ranked.stats
        return ScoreEvaluationResponse(scores=scores), stats
