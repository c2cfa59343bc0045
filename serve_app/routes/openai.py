"""The OpenAI-compatible front: ``POST /v1/chat/completions`` in front of each judge, routed by ``model``.

For clients that prompt a GenRM themselves and speak OpenAI's chat API (NeMo-Gym's ``genrm_model``, ROLL's LLM
judge, RewardBench's API judges, the ``openai`` package): messages in the GenRMs' own roles go to the judge's model
as they are, and the answer comes back with the reasoning split from the verdict and the token usage.

What this front adds on the way, and why:

* every message but a system message is neutralised with the judge's special tokens and template markers, as the
  project's own prompts are (``deployments.text_safety``): a rollout under RL training must not close its turn or
  forge the template's sections whichever route it comes through. The system message is the caller's own
  instruction and passes unchanged;
* each call takes one admission slot and goes through the judge's call lane, as ``/v1/compare`` does: the same
  bounds on what reaches the engine, the same silence timeout, the same metrics. A full router answers 503 with
  Retry-After, which the ``openai`` package retries;
* errors come in OpenAI's shape (:class:`~serve_app.openai_protocol.ErrorResponse`), never FastAPI's ``detail``:
  bad input 400, an unknown model 404, a judge that is down or silent 503.

Sampling fields a request leaves out take the judge's configured ones (the model card's). The judge's structured
output constraint is not applied: the caller gets the model's own answer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask

from deployments.chat import JudgeMessage
from deployments.engine_client import Completion, JudgeCallError
from deployments.judge import Judge
from deployments.text_safety import THINK_CLOSE, THINK_OPEN, neutralize
from serve_app.admission import Overloaded
from serve_app.judge_calls import CallTiming, JudgeSilent
from serve_app.judging import JudgingService
from serve_app.metrics import RequestStats, record
from serve_app.openai_protocol import (
    AssistantMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChoiceLogprobs,
    ErrorInfo,
    ErrorResponse,
    Usage,
)
from serve_app.routes import Service

logger = logging.getLogger("genrm_ensemble.openai")

ROLES = ("principle", "pairwise")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    503: "service_unavailable_error",
}
#: engine refusals that mean the request itself was wrong (too long, bad parameter), answered 400 to the caller
_REQUEST_REFUSED = frozenset({400, 413, 422})


class OpenAIError(Exception):
    """A refusal in OpenAI's terms; :class:`OpenAIErrorRoute` answers it as an :class:`ErrorResponse`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorResponse(
            error=ErrorInfo(message=message, type=_ERROR_TYPES.get(status, "api_error"), param=param, code=code)
        )
        self.headers = headers

    def response(self) -> Response:
        return Response(
            # ASCII-escaped: a field name in a message may be a lone surrogate, which no UTF-8 writer accepts
            content=json.dumps(self.body.model_dump(), ensure_ascii=True),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


def _field_path(loc: tuple[Any, ...] | list[Any]) -> list[str]:
    """A validation error's location as the client wrote it: field names and list indices, without FastAPI's
    ``body`` and pydantic's union-member tags (``function-after[...]``, ``list[TextPart]``)."""
    return [str(p) for p in loc if isinstance(p, int) or (p != "body" and str(p).isidentifier())]


def _invalid(exc: RequestValidationError) -> OpenAIError:
    """The first validation error as OpenAI reports bad input: one message, the field it concerns as ``param``.
    Like the app's own handler, it never echoes the input (it may be huge, hostile or not encodable)."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = _field_path(first.get("loc", ()))
    param = ".".join(loc) or None
    kind = first.get("type")
    if kind == "extra_forbidden":
        accepted = ", ".join(ChatCompletionRequest.model_fields)
        where = "message fields are role and content" if "messages" in loc else f"accepted fields: {accepted}"
        message = f"unsupported field {param!r}: this front does not implement it ({where})"
    elif kind == "json_invalid":
        message, param = "the body is not valid JSON", None
    elif kind == "string_unicode" and param is None:
        message = "the body holds invalid Unicode (an unpaired surrogate escape such as \\ud800?); send valid UTF-8"
    else:
        message = f"{param or 'body'}: {first.get('msg', 'invalid value')}".replace("Value error, ", "")
    # one problem per field: a union (content: string or parts) reports each of its members
    others = len({tuple(_field_path(e.get("loc", ()))) for e in errors} - {tuple(loc)})
    if others:
        message += f" (and problems in {others} more field{'s' if others > 1 else ''})"
    return OpenAIError(400, message, param=param)


class OpenAIErrorRoute(APIRoute):
    """Answers this module's refusals, FastAPI's validation errors included, in OpenAI's error shape (the app's
    handler would answer ``{"detail": ...}`` with 422, which OpenAI clients do not read)."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def shaped(request: Request) -> Response:
            try:
                return await handler(request)
            except OpenAIError as exc:
                return exc.response()
            except RequestValidationError as exc:
                return _invalid(exc).response()
            except HTTPException as exc:
                return OpenAIError(exc.status_code, str(exc.detail), headers=exc.headers).response()

        return shaped


router = APIRouter(route_class=OpenAIErrorRoute)


@dataclasses.dataclass(frozen=True)
class HostedJudge:
    role: str
    model: str  # the served model name requests to the engine carry
    judge: Judge


def hosted_judges(service: JudgingService) -> dict[str, HostedJudge]:
    """Every name a request may use: each judge's served model name, and its role as an alias."""
    table: dict[str, HostedJudge] = {}
    for role in ROLES:
        judge: Judge | None = getattr(service, role)
        cfg = getattr(service.config, role)
        if judge is None or cfg is None:
            continue
        entry = HostedJudge(role, cfg.served_model, judge)
        table.setdefault(entry.model, entry)  # two judges on one served name: the principle judge keeps it
        table[role] = entry
    return table


def _unknown_model(name: str, table: dict[str, HostedJudge]) -> OpenAIError:
    served = sorted({e.model for e in table.values()})
    aliases = [r for r in ROLES if r in table]
    return OpenAIError(
        404,
        f"model {name!r} is not served here; use one of {', '.join(served)} (or the role names "
        f"{' / '.join(aliases)}); GET /v1/models lists them",
        param="model",
        code="model_not_found",
    )


def judge_messages(body: ChatCompletionRequest, judge: Judge) -> list[JudgeMessage]:
    """The messages as the engine gets them: every content but a system message's neutralised with the judge's
    special tokens and template markers (``Judge.special_tokens`` holds both)."""
    return [
        {"role": m.role, "content": m.text if m.role == "system" else neutralize(m.text, judge.special_tokens)}
        for m in body.messages
    ]


def engine_request(body: ChatCompletionRequest, judge: Judge, messages: list[JudgeMessage]) -> dict[str, Any]:
    """One OpenAI-style request dict for the judge's client; what the body leaves out comes from the judge's
    settings, so the template and sampling match the ones the project's own routes use."""
    sampling = judge.settings.sampling
    request: dict[str, Any] = {
        "messages": messages,
        "temperature": sampling.temperature if body.temperature is None else body.temperature,
        "top_p": sampling.top_p if body.top_p is None else body.top_p,
        "max_tokens": body.completion_limit or sampling.max_tokens,
    }
    seed = body.seed if body.seed is not None else sampling.seed
    if seed is not None:
        request["seed"] = seed
    for name in ("stop", "presence_penalty", "frequency_penalty"):
        if (value := getattr(body, name)) is not None:
            request[name] = value
    if body.logprobs:
        request["logprobs"] = True
        if body.top_logprobs is not None:
            request["top_logprobs"] = body.top_logprobs
    if judge.settings.chat_template_kwargs:
        request["chat_template_kwargs"] = judge.settings.chat_template_kwargs
    return request


def split_reasoning(completion: Completion) -> tuple[str, str | None]:
    """``(content, reasoning)``: the engine's reasoning parser's split when it made one, else the text around the
    last ``</think>`` (a judge without a parser writes its reasoning into the text)."""
    if completion.reasoning is not None:
        return completion.text, completion.reasoning
    text = completion.text
    if THINK_CLOSE not in text:
        return text, None
    reasoning, _, answer = text.rpartition(THINK_CLOSE)
    reasoning = reasoning.strip().removeprefix(THINK_OPEN).strip()
    return answer.lstrip(), reasoning or None


def chat_completion(model: str, completion: Completion, with_logprobs: bool) -> ChatCompletionResponse:
    content, reasoning = split_reasoning(completion)
    prompt = completion.prompt_tokens or 0
    generated = completion.completion_tokens or 0
    return ChatCompletionResponse(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                message=AssistantMessage(content=content, reasoning_content=reasoning),
                finish_reason=completion.finish_reason or "stop",
                logprobs=ChoiceLogprobs(content=completion.logprobs) if with_logprobs else None,
            )
        ],
        usage=Usage(
            prompt_tokens=prompt,
            completion_tokens=generated,
            total_tokens=completion.total_tokens or prompt + generated,
        ),
    )


async def _call(
    service: JudgingService, hosted: HostedJudge, request: dict[str, Any], stats: RequestStats
) -> Completion:
    """One judge call in an admission slot, through the judge's lane, counted as JudgingService counts its calls;
    every failure becomes the OpenAIError the caller should see."""
    role, retry = hosted.role, {"Retry-After": str(service.limits.retry_after_s)}
    timing = CallTiming()
    try:
        async with service.admission.slot():
            try:
                completion = await service.lanes[role].call(lambda: hosted.judge.client.chat(request), timing)
            finally:
                stats.latencies.append((role, timing.sent_s))
                stats.call_queued_s += timing.queued_s
    except Overloaded:
        limits = service.limits
        raise OpenAIError(
            503,
            f"too many requests in flight (limit {limits.max_concurrent_requests} running + "
            f"{limits.max_queued_requests} queued); retry after {limits.retry_after_s} s",
            headers=retry,
        ) from None
    except JudgeSilent as exc:
        stats.calls[(role, "timeout")] += 1
        raise OpenAIError(503, f"the {role} judge ({hosted.model}) did not answer: {exc}", headers=retry) from None
    except JudgeCallError as exc:
        stats.calls[(role, "error")] += 1
        if exc.status in _REQUEST_REFUSED:
            raise OpenAIError(400, f"the {role} judge's engine refused the request: {exc}") from None
        raise OpenAIError(503, f"the {role} judge ({hosted.model}) is unavailable: {exc}", headers=retry) from None
    except Exception as exc:  # a client bug must still reach the caller as "judge unavailable", not a bare 500
        stats.calls[(role, "error")] += 1
        logger.exception("chat completion through the %s judge failed", role)
        raise OpenAIError(
            503, f"the {role} judge ({hosted.model}) failed: {type(exc).__name__}", headers=retry
        ) from None
    stats.calls[(role, "ok")] += 1
    return completion


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
async def chat_completions(body: ChatCompletionRequest, service: Service) -> Response:
    started = time.perf_counter()
    table = hosted_judges(service)
    hosted = table.get(body.model)
    if hosted is None:
        raise _unknown_model(body.model, table)
    limit = service.limits.max_text_chars
    for i, m in enumerate(body.messages):
        if len(m.text) > limit:
            raise OpenAIError(
                400,
                f"message {i} has {len(m.text)} characters; at most {limit} are allowed (router.max_text_chars)",
                param=f"messages.{i}.content",
            )
    request = engine_request(body, hosted.judge, judge_messages(body, hosted.judge))
    stats = RequestStats("chat_completions")
    try:
        completion = await _call(service, hosted, request, stats)
    except OpenAIError as exc:
        stats.status = str(exc.status)
        record(service.metrics, stats)
        raise
    stats.status, stats.latency_s = "200", time.perf_counter() - started
    answer = chat_completion(hosted.model, completion, bool(body.logprobs))
    return Response(
        # reasoning_content and logprobs are left out when there are none, as OpenAI leaves out what it has not
        content=answer.model_dump_json(exclude_none=True),
        media_type="application/json",
        background=BackgroundTask(record, service.metrics, stats),
    )
