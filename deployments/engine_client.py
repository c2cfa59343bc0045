"""How a judge reaches its model: an OpenAI-style chat request in, one :class:`Completion` out.

Two transports, one request shape:

* :class:`ServeHandleClient` calls a ray.serve.llm ``LLMServer`` deployment through its DeploymentHandle (the model
  is hosted in this application, on its own placement group);
* :class:`OpenAIHttpClient` posts to an existing OpenAI-compatible server (``vllm serve``, a shared GenRM endpoint).

Both raise :class:`JudgeCallError` for anything that is not a completion, so the judges above them read answers in
one way whatever hosts the model.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import dataclasses
import os
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, Field


class JudgeCallError(RuntimeError):
    """The model server answered with an error, or not at all.

    ``status`` is the HTTP status the model server gave its refusal (vLLM's error bodies carry it as ``code``), None
    when it did not answer: a 4xx means the request itself was refused (e.g. longer than the context), so a front
    that forwards a client's request can answer 400 instead of blaming the judge.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Completion(BaseModel):
    """The parts of a chat completion a judge reads."""

    text: str = ""
    finish_reason: str | None = None
    logprobs: list[dict[str, Any]] | None = Field(default=None, description="choices[0].logprobs.content")
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning: str | None = Field(
        default=None, description="the reasoning a server-side reasoning parser split off (text keeps the answer)"
    )
    judge_version: str | None = Field(
        default=None, description="the hosted judge's version stamp (JUDGE_VERSION_FIELD), when it sends one"
    )


#: the key a hosted judge replica adds to each answer: a hash of its LLMConfig (deployments/judge_server.py)
JUDGE_VERSION_FIELD = "genrm_judge_version"
#: (model, version) of the judges that answered the calls made in this context (a selection sets a fresh set)
JUDGE_VERSIONS: contextvars.ContextVar[set[tuple[str, str]] | None] = contextvars.ContextVar(
    "genrm_judge_versions", default=None
)
#: prompt and completion tokens (``usage``) of the judge answers received in this context, by kind ("prompt",
#: "completion"); the router's core sets a fresh tally around each judge call and adds it to the request's account
JUDGE_TOKENS: contextvars.ContextVar[Counter[str] | None] = contextvars.ContextVar("genrm_judge_tokens", default=None)


def completion_from_openai(payload: Mapping[str, Any]) -> Completion:
    """Read an OpenAI chat-completion body (a dict); an error body or an empty choice list raises."""
    if payload.get("error"):
        error = payload["error"]
        code = error.get("code") if isinstance(error, Mapping) else None
        status = code if isinstance(code, int) and 100 <= code < 600 else None
        raise JudgeCallError(f"model server error: {_error_text(error)}", status)
    choices = payload.get("choices") or []
    if not choices:
        raise JudgeCallError("model server returned no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    logprobs = choice.get("logprobs") or {}
    usage = payload.get("usage") or {}
    return Completion(
        text=message.get("content") or "",
        finish_reason=choice.get("finish_reason"),
        logprobs=logprobs.get("content") if isinstance(logprobs, Mapping) else None,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        total_tokens=usage.get("total_tokens"),
        # vLLM's name since 0.11; older servers (and other OpenAI-compatible ones) send reasoning_content
        reasoning=message.get("reasoning") or message.get("reasoning_content") or None,
        judge_version=payload.get(JUDGE_VERSION_FIELD),
    )


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return str(error.get("message") or error)
    return str(error)


#: A request key for the hosted judge deployment only: keep the logprobs from the generated token where the last
#: occurrence of this text begins (a reasoning judge's ``</think>``). The judges read logprobs in the answer, and a
#: reasoning trace of 16k tokens with ten alternatives each costs the replica ~1.4 s to dump and the router ~1.5 s to
#: unpickle per call. No other server knows the key: :class:`OpenAIHttpClient` leaves it out.
LOGPROBS_FROM_LAST = "genrm_logprobs_from_last"

_Position = TypeVar("_Position")


def token_texts(content: Sequence[Any]) -> list[str] | None:
    """Each logprob position's token text (OpenAI entries, as dicts or objects with ``token``); None when one
    position has none. Only the strings are read: a reasoning trace has thousands of positions."""
    tokens = [e.get("token") if isinstance(e, Mapping) else getattr(e, "token", None) for e in content]
    return tokens if all(isinstance(t, str) for t in tokens) else None  # type: ignore[return-value]


def position_at(tokens: Sequence[str], offset: int) -> int:
    """The index of the position whose token holds character ``offset`` of ``"".join(tokens)``."""
    starts = [0]
    for t in tokens:
        starts.append(starts[-1] + len(t))
    return bisect.bisect_right(starts, offset) - 1


def logprobs_from_last(content: Sequence[_Position], marker: str) -> Sequence[_Position]:
    """The positions of ``content`` from the one whose token text holds the start of the last ``marker`` on; all
    of them when the tokens never write it (or a position has no token text)."""
    tokens = token_texts(content)
    if tokens is None:
        return content
    at = "".join(tokens).rfind(marker)
    return content if at < 0 else content[position_at(tokens, at) :]


class ChatClient(Protocol):
    """Sends one non-streaming chat request."""

    model: str

    async def chat(self, request: dict[str, Any]) -> Completion: ...


#: The affinity key of the judge calls being made: a group's prompt (one best-of-N or rank request, one batch
#: group, one cohort). The router's core sets it around a group's judging; :class:`ServeHandleClient` sends the calls
#: of one key as the handle's ``session_id`` and as their batch's ``prompt`` (:class:`ChatBatch`), which Serve's
#: ``ConsistentHashRouter`` and ``PrefixCacheAffinityRouter`` (``request_router_config`` of the judge deployment)
#: each map to one replica, the one that already holds the prompt in its prefix cache.
AFFINITY_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("genrm_affinity_key", default=None)
#: The batch scope of the judge calls being made (any object; compared by identity): :class:`ServeHandleClient`
#: coalesces calls into one ``chat_many`` only within one scope and affinity key. The router's core opens a scope per
#: group's judging, so that when every call of a batch is given up (its deadline passed, its caller went away) the
#: whole Ray call can be cancelled, and its replica aborts those requests in the engine, while other groups' calls,
#: running in the same engine batch, carry on.
CALL_SCOPE: contextvars.ContextVar[object | None] = contextvars.ContextVar("genrm_call_scope", default=None)


class ChatBatch(list[dict[str, Any]]):
    """The argument of one ``chat_many`` call: its request bodies, and as ``prompt`` the text a request router may
    place the batch by. Serve's ``PrefixCacheAffinityRouter`` reads a call's text from the ``prompt`` (or
    ``messages``) attribute of its argument, remembers which replica each text went to, and sends a text it has seen
    to that replica (and a new one to the replica holding the least text): the group's affinity key is that text, so
    a group's batches follow its first and new groups spread evenly. A plain list to everything else."""

    def __init__(self, bodies: Sequence[dict[str, Any]], prompt: str) -> None:
        super().__init__(bodies)
        self.prompt = prompt


class ServeHandleClient:
    """A judge deployment (:mod:`deployments.judge_server`) behind a DeploymentHandle.

    Calls made in the same moment (one round of a best-of-N) are coalesced into one ``chat_many`` call per affinity
    key (:data:`AFFINITY_KEY`) and batch scope (:data:`CALL_SCOPE`): the selection code still issues one call per
    pair, but the router pays for one Ray round trip per group and round, and every call of a group carries the
    group's key as its ``session_id`` and its batch's ``prompt``. When every caller of a batch has cancelled its
    call, the ``chat_many`` call is cancelled: Serve cancels it on its replica, where vLLM aborts the requests
    (``AsyncLLM.generate`` aborts a request whose generator is cancelled).
    """

    #: event-loop turns to wait for the rest of a round before sending (a call reaches ``chat`` a few awaits deep)
    COALESCE_TURNS = 8

    def __init__(self, handle: Any, model: str) -> None:
        self.model = model
        self._many = handle.chat_many  # made once: every new handle adds a long-poll client (options share it)
        self._pending: dict[tuple[str | None, object], list[tuple[dict[str, Any], asyncio.Future[Completion]]]] = {}
        self._flushes: set[asyncio.Task[None]] = set()
        #: Ray calls sent (one per group and round), for the benchmarks' account of what affinity costs
        self.sent = 0

    async def chat(self, request: dict[str, Any]) -> Completion:
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        key = (AFFINITY_KEY.get(), CALL_SCOPE.get())
        pending = self._pending.setdefault(key, [])
        pending.append(({**request, "model": self.model}, future))
        if len(pending) == 1:
            task = asyncio.ensure_future(self._flush(key))
            self._flushes.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._flushes.discard)
        return await future

    async def _flush(self, key: tuple[str | None, object]) -> None:
        for _ in range(self.COALESCE_TURNS):
            await asyncio.sleep(0)
        batch = [(body, future) for body, future in self._pending.pop(key) if not future.done()]
        if not batch:  # every caller went away before the batch left
            return
        affinity = key[0]
        many = self._many if affinity is None else self._many.options(session_id=affinity)
        self.sent += 1
        _own_internal_request_id()
        # a call of no group is placed as a group of its own (the prefix router needs a non-empty text)
        response = many.remote(ChatBatch([body for body, _ in batch], affinity or uuid.uuid4().hex))

        def give_up(_: asyncio.Future[Completion]) -> None:
            if all(future.cancelled() for _, future in batch):
                response.cancel()

        for _, future in batch:
            future.add_done_callback(give_up)
        try:
            answers = await response
        except Exception as exc:  # the replica is gone, the call failed or was given up: no request of it answered
            for _, future in batch:
                if not future.done():
                    future.set_exception(JudgeCallError(f"judge deployment unavailable: {type(exc).__name__}: {exc}"))
            return
        for (_, future), body in zip(batch, answers, strict=True):
            if future.done():  # the caller timed out and went away
                continue
            try:
                future.set_result(completion_from_openai(body))
            except JudgeCallError as exc:
                future.set_exception(exc)


def _own_internal_request_id() -> None:
    """Give the handle calls made from here on (in this task: each flush is its own) an internal request id of
    their own. Serve hands every call made while serving one HTTP request that request's id, and its request
    routers index waiting calls by it: calls that share one (a /v1/rank_batch's groups, each batched under its
    own affinity key, sent in the same moment) collide in that index, and a router that assigns replicas by the
    index (``ConsistentHashRouter``) assigns the first and leaves the others waiting forever. The caller-visible
    ``request_id`` is kept, so the logs still tie each call to its HTTP request."""
    from ray.serve import context

    current = context._get_serve_request_context()
    context._serve_request_context.set(dataclasses.replace(current, _internal_request_id=str(uuid.uuid4())))


class OpenAIHttpClient:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint reached over HTTP."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None, timeout_s: float = 300.0) -> None:
        import httpx

        self.model = model
        headers = {}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    async def chat(self, request: dict[str, Any]) -> Completion:
        import httpx

        try:
            body = {k: v for k, v in request.items() if k != LOGPROBS_FROM_LAST} | {"model": self.model}
            response = await self._client.post("/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise JudgeCallError(f"model endpoint unreachable: {type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise JudgeCallError(
                f"model endpoint answered HTTP {response.status_code} without JSON", response.status_code
            ) from exc
        if response.status_code >= 400:
            detail = body.get("error", body) if isinstance(body, Mapping) else body
            raise JudgeCallError(
                f"model endpoint answered HTTP {response.status_code}: {_error_text(detail)}", response.status_code
            )
        return completion_from_openai(body)

    async def aclose(self) -> None:
        await self._client.aclose()


class GarblingClient:
    """Fault injection for resilience tests and drills: wraps a client and replaces a seeded, reproducible
    fraction of its answers with text no parser reads (and no logprobs), as a broken or confused model would."""

    GARBLE = "<garbled judge output>"

    def __init__(self, inner: ChatClient, fraction: float, seed: int = 0) -> None:
        import random

        self.inner = inner
        self.model = inner.model
        self.fraction = fraction
        self._random = random.Random(seed)

    async def chat(self, request: dict[str, Any]) -> Completion:
        completion = await self.inner.chat(request)
        if self._random.random() < self.fraction:
            return completion.model_copy(update={"text": self.GARBLE, "logprobs": None, "finish_reason": "stop"})
        return completion
