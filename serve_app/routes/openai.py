"""The OpenAI-compatible front's routes: ``POST /v1/chat/completions`` (served by
:class:`~serve_app.serving.openai_serving.OpenAIServing`; errors in OpenAI's shape)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serve_app.core.stats import RequestStats
from serve_app.ingress.error_shapes import OpenAIShapedRoute
from serve_app.protocols.openai_api import ChatCompletionRequest, ChatCompletionResponse, ErrorResponse
from serve_app.routes import Service, Tenant, reply
from serve_app.serving.openai_serving import OpenAIServing

router = APIRouter(route_class=OpenAIShapedRoute)


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletionResponse,
    response_model_exclude_none=True,
    summary="OpenAI chat completion from one judge model (GenRM roles accepted; reasoning split off)",
    description="Routed by `model`: a judge's served name from GET /v1/models, or `principle` / `pairwise`. "
    "Roles: system, user, assistant and the GenRMs' principle, response_1, response_2. Every content but a system "
    "message is neutralised against the judge's control tokens and template markers. Non-streaming, n=1. The answer "
    "holds the text after the judge's last </think> in `content`, the reasoning before it in `reasoning_content`, "
    "and `usage`.",
    responses={
        400: {"model": ErrorResponse, "description": "bad input: what was wrong and what is allowed"},
        404: {"model": ErrorResponse, "description": "no judge serves that model; the message lists the names"},
        503: {"model": ErrorResponse, "description": "the router is full or the judge is down (Retry-After)"},
    },
)
async def chat_completions(body: ChatCompletionRequest, service: Service, tenant: Tenant) -> Response:
    stats = RequestStats("chat_completions", tenant=tenant)
    answer = await OpenAIServing(service).chat_completions(body, stats)
    # reasoning_content and logprobs are left out when there are none, as OpenAI leaves out what it has not
    return reply(service, answer.model_dump_json(exclude_none=True), stats)
