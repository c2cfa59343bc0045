"""The OpenAI-compatible front's serving: ``/v1/chat/completions`` in front of each judge, routed by ``model``.

For clients that prompt a GenRM themselves and speak OpenAI's chat API (NeMo-Gym's ``genrm_model``, ROLL's LLM
judge, RewardBench's API judges, the ``openai`` package): messages in the GenRMs' own roles go to the judge's model
as they are, and the answer comes back with the reasoning split from the verdict and the token usage.

What this front adds on the way, and why:

* every message but a system message is neutralised with the judge's special tokens and template markers, as the
  project's own prompts are (``deployments.text_safety``): a rollout under RL training must not close its turn or
  forge the template's sections whichever route it comes through. The system message is the caller's own
  instruction and passes unchanged;
* the call is the core's :meth:`~serve_app.core.service.JudgingService.chat`: one admission slot and the judge's
  call lane, as ``/v1/compare`` has — the same bounds on what reaches the engine, the same silence timeout, the same
  metrics. A full router answers 503 with Retry-After, which the ``openai`` package retries;
* its refusals are answered in OpenAI's shape (``serve_app.ingress.error_shapes``): bad input 400, an unknown model
  404, a judge that is down or silent 503.

Sampling fields a request leaves out take the judge's configured ones (the model card's). The judge's structured
output constraint is not applied: the caller gets the model's own answer.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from deployments.chat import JudgeMessage
from deployments.engine_client import Completion
from deployments.judge import Judge
from deployments.text_safety import THINK_CLOSE, THINK_OPEN, neutralize
from serve_app.config import JUDGE_ROLES
from serve_app.core.refusal import Refusal
from serve_app.core.service import JudgingService
from serve_app.core.stats import RequestStats
from serve_app.protocols.openai_api import (
    AssistantMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChoiceLogprobs,
    Usage,
)


@dataclasses.dataclass(frozen=True)
class HostedJudge:
    role: str
    model: str  # the served model name requests to the engine carry
    judge: Judge


def hosted_judges(service: JudgingService) -> dict[str, HostedJudge]:
    """Every name a request may use: each judge's served model name, and its role as an alias."""
    table: dict[str, HostedJudge] = {}
    for role in JUDGE_ROLES:
        judge: Judge | None = getattr(service, role)
        cfg = getattr(service.config, role)
        if judge is None or cfg is None:
            continue
        entry = HostedJudge(role, cfg.served_model, judge)
        table.setdefault(entry.model, entry)  # two judges on one served name: the principle judge keeps it
        table[role] = entry
    return table


def _unknown_model(name: str, table: dict[str, HostedJudge]) -> Refusal:
    served = sorted({e.model for e in table.values()})
    aliases = [r for r in JUDGE_ROLES if r in table]
    return Refusal(
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


class OpenAIServing:
    """``/v1/chat/completions`` for one replica's judges."""

    def __init__(self, service: JudgingService) -> None:
        self.service = service

    async def chat_completions(self, body: ChatCompletionRequest, stats: RequestStats) -> ChatCompletionResponse:
        started = time.perf_counter()
        table = hosted_judges(self.service)
        hosted = table.get(body.model)
        if hosted is None:
            raise _unknown_model(body.model, table)
        limit = self.service.limits.max_text_chars
        for i, m in enumerate(body.messages):
            if len(m.text) > limit:
                raise Refusal(
                    422,
                    f"message {i} has {len(m.text)} characters; at most {limit} are allowed (router.max_text_chars)",
                    param=f"messages.{i}.content",
                )
        request = engine_request(body, hosted.judge, judge_messages(body, hosted.judge))
        completion = await self.service.chat(hosted.role, hosted.judge, request, stats)
        stats.status, stats.latency_s = "200", time.perf_counter() - started
        return chat_completion(hosted.model, completion, bool(body.logprobs))
