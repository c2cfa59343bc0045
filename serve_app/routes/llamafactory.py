"""LLaMA-Factory's API reward model route: ``POST /v1/score/evaluation`` (served by
:class:`~serve_app.serving.llamafactory_serving.LlamaFactoryServing`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serve_app.protocols.llamafactory_api import ScoreEvaluationRequest, ScoreEvaluationResponse
from serve_app.routes import Service, Tenant, reply
from serve_app.serving.llamafactory_serving import LlamaFactoryServing

router = APIRouter(tags=["LLaMA-Factory"])


@router.post(
    "/v1/score/evaluation",
    response_model=ScoreEvaluationResponse,
    summary="LLaMA-Factory API reward model: a score per decoded prompt+response text",
    description="Each message is split at its last assistant header, then scored by the principle judge on its own "
    "or ranked with the other messages of its prompt (router.trainers.llamafactory.scoring). 422: a text with no "
    "assistant header of a known chat template (ChatML, Llama 3, Gemma), invalid text.",
)
async def score_evaluation(body: ScoreEvaluationRequest, service: Service, tenant: Tenant) -> Response:
    answer, stats = await LlamaFactoryServing(service, tenant).score(body)
    return reply(service, answer, *stats)
