"""What the trainer protocols' serving classes share
(``serve_app/serving/{nemo_gym,openrlhf,slime,llamafactory}_serving.py``).

Each protocol turns its request into the project's own bodies (``serve_app.protocols.genrm_api``) and calls the
replica's :class:`~serve_app.core.service.JudgingService`; these helpers do the common parts of that translation:

* :func:`conversation` — a list of chat or Responses-API messages as the judges' conversation;
* :func:`core_body` — one of the project's request models built from translated fields, a 422 naming what was wrong
  when it does not validate;
* :func:`policy_reader` — the configured :class:`~serve_app.chat_text.PolicyText` (templated text → messages);
* :func:`rank_by_prompt` — samples grouped by prompt, every group ranked at once (``rank_batch``);
* :func:`cohort_rewards` — every sample through the cohorts (``reward``), concurrently.

Refusals are :class:`~serve_app.core.refusal.Refusal`; every protocol here is spoken by a client that reads our
error shape (``{"detail": ...}``) or only the status.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from deployments.chat import ChatMessage
from serve_app.chat_text import PolicyText, TextSplitError, content_text, policy_text, to_conversation
from serve_app.config import DEFAULT_TENANT, PolicyTextSettings
from serve_app.core.cohorts import prompt_fingerprint
from serve_app.core.refusal import Refusal, reject, validation_errors
from serve_app.core.service import JudgingService
from serve_app.core.stats import RequestStats
from serve_app.protocols.genrm_api import RankBatchRequest, RewardRequest, RewardResponse

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

#: one sample as the judges take it: the conversation it answers and its response text
Rollout = tuple[list[ChatMessage], str]


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc)


def invalid(where: str, exc: ValidationError) -> Refusal:
    """A 422 listing each error's place (prefixed with ``where``) and message, never the input."""
    errors = validation_errors(exc)
    text = "; ".join(f"{_where([where, *e['loc']])}: {e['msg']}" for e in errors)
    return reject(422, text or f"{where} is invalid")


def core_body(model: type[M], where: str, **fields: Any) -> M:
    """``model`` from translated fields; a 422 that names ``where`` when they do not validate (a surrogate in a
    text, a conversation that does not end with a user turn, ...)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise invalid(where, exc) from None


def conversation(
    items: Sequence[Mapping[str, Any]], where: str, *, instructions: str | None = None
) -> list[ChatMessage]:
    """Chat messages (``{role, content}``) or Responses-API input items as the judges' conversation. Items without
    a role (function calls and their output, reasoning) are not turns and are left out; ``instructions`` (the
    Responses API's system prompt) leads. 422 unless it ends with the user turn being answered."""
    turns: list[tuple[str, str]] = []
    if instructions:
        turns.append(("system", instructions))
    for k, item in enumerate(items):
        role = item.get("role")
        if role is None:
            continue
        if not isinstance(role, str) or not role.strip():
            raise reject(422, f"{where}[{k}].role must be a string such as 'user' or 'assistant'")
        content = item.get("content")
        if content is not None and not isinstance(content, str | list):
            raise reject(422, f"{where}[{k}].content must be a string or a list of content parts with 'text'")
        turns.append((role.strip().lower(), content_text(content)))
    try:
        return to_conversation(turns)
    except ValueError as exc:
        raise reject(422, f"{where}: {exc}") from None


def policy_reader(settings: PolicyTextSettings, trainer: str) -> PolicyText:
    """The configured reader of the policy's templated text; a tokenizer folder that cannot be read is the
    deployment's fault, not the request's: 503 saying which setting to fix."""
    try:
        return policy_text(settings.policy_tokenizer, settings.strip_reasoning)
    except ValueError as exc:
        raise reject(503, f"router.trainers.{trainer}.policy_tokenizer: {exc}") from None


def read_text(read: Callable[[], T], where: str) -> T:
    """``read()`` (a :class:`PolicyText` reading of one text), its :class:`TextSplitError` a 422 naming ``where``."""
    try:
        return read()
    except TextSplitError as exc:
        raise reject(422, f"{where}: {exc}") from None


@dataclasses.dataclass
class Ranked:
    """Per sample, in request order: its score in its group (an invalid sample's is the group's mean valid score),
    its rank there (1 = best), the group's size and whether a judgement stands behind the score."""

    scores: list[float]
    ranks: list[int]
    sizes: list[int]
    stats: list[RequestStats]
    valid: list[bool] = dataclasses.field(default_factory=list)


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(f"{_where(e.get('loc', []))}: {e.get('msg', '')}" for e in detail if isinstance(e, Mapping))
    return str(detail)


async def rank_by_prompt(
    service: JudgingService,
    samples: Sequence[Rollout],
    where: str,
    *,
    principle: str | None = None,
    tenant: str = DEFAULT_TENANT,
) -> Ranked:
    """The samples grouped by conversation, each group ranked as one ``/v1/rank`` group, all groups at once
    (``rank_batch``: one admission, then each group in its own slot). A group of one is judged alone (no
    comparison: score 0). A refused group refuses the request with its status, naming its samples."""
    groups: dict[str, list[int]] = {}
    for k, (conv, _) in enumerate(samples):
        groups.setdefault(prompt_fingerprint([[m.role, m.content] for m in conv]), []).append(k)
    members = list(groups.values())
    bodies = [
        {
            "conversation": [m.model_dump() for m in samples[idx[0]][0]],
            "candidates": [samples[k][1] for k in idx],
            **({"principle_for_pairwise": principle} if principle is not None else {}),
        }
        for idx in members
    ]
    answer, stats = await service.rank_batch(RankBatchRequest(groups=bodies), tenant)
    scores = [0.0] * len(samples)
    ranks = [1] * len(samples)
    sizes = [1] * len(samples)
    valid = [True] * len(samples)
    for idx, entry in zip(members, answer.results, strict=True):
        if entry.status != 200 or entry.result is None:
            retry = service.limits.retry_after_s if entry.status == 503 else None
            raise reject(
                entry.status, f"{where}: samples {idx} (one prompt) were refused: {_detail_text(entry.detail)}", retry
            )
        result = entry.result
        for k, score, rank, ok in zip(idx, result.scores, result.ranks, result.valid, strict=True):
            scores[k], ranks[k], sizes[k], valid[k] = score, rank, len(idx), ok
    return Ranked(scores=scores, ranks=ranks, sizes=sizes, stats=stats, valid=valid)


async def cohort_rewards(
    service: JudgingService,
    samples: Sequence[Rollout],
    where: str,
    route: str,
    *,
    group_size: int | None,
    tenant: str = DEFAULT_TENANT,
) -> tuple[list[RewardResponse], list[RequestStats]]:
    """Every sample through the cohorts (``/v1/reward`` with a key derived from its conversation), concurrently:
    each waits until its prompt's group is complete or timed out. The first refusal refuses the request (the
    other samples stay in their cohorts, as a disconnected caller's would)."""
    bodies = [
        core_body(RewardRequest, f"{where}[{k}]", conversation=conv, response=response, group_size=group_size)
        for k, (conv, response) in enumerate(samples)
    ]
    stats = [RequestStats(route, tenant=tenant) for _ in bodies]
    results = await asyncio.gather(
        *(service.reward(b, s) for b, s in zip(bodies, stats, strict=True)), return_exceptions=True
    )
    answers: list[RewardResponse] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        answers.append(result)
    return answers, stats
