"""The judge-side deployment: ray.serve.llm's LLMServer plus one method that answers a batch of chat requests.

A best-of-N round sends many judge calls at once. One Ray call per judge call costs ~2 ms of router and replica CPU
each, which on small machines is more than the rest of the router's work; :meth:`BatchedChat.chat_many` takes the
whole round in one call and runs the requests concurrently inside the replica, where the engine batches them anyway.
Requests travel as plain dicts and become vLLM's ChatCompletionRequest here, so the router never imports vLLM.

On a machine where the engines and the router share a few cores (the CPU configs), ``GENRM_ENGINE_NICE`` in the
judge's ``runtime_env`` lowers the replica's scheduling priority before its engine starts, so the engine processes
it starts inherit it: the engines still get every idle cycle, but the proxy and the router, which need little CPU
and answer refusals and health checks, no longer wait behind them.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from deployments.autoscaling import engine_load
from deployments.engine_client import JUDGE_VERSION_FIELD, LOGPROBS_FROM_LAST, logprobs_from_last


def _trim_logprobs(item: Any, marker: str) -> None:
    """Cut the first choice's logprobs of a response (vLLM's model or a dict) down to ``marker``'s last occurrence."""
    choices = item.get("choices") if isinstance(item, Mapping) else getattr(item, "choices", None)
    if not choices:
        return
    choice = choices[0]
    logprobs = choice.get("logprobs") if isinstance(choice, Mapping) else getattr(choice, "logprobs", None)
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else getattr(logprobs, "content", None)
    if not content:
        return
    kept = list(logprobs_from_last(content, marker))
    if isinstance(logprobs, Mapping):
        logprobs["content"] = kept  # type: ignore[index]
    else:
        logprobs.content = kept


class BatchedChat:
    """Mixin for any deployment with LLMServer's ``chat`` (an async generator of one response when not streaming)."""

    def _chat_request(self, body: dict[str, Any]) -> Any:
        return body

    async def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            marker = body.get(LOGPROBS_FROM_LAST)
            if marker is not None:
                body = {k: v for k, v in body.items() if k != LOGPROBS_FROM_LAST}
            stream = self.chat(self._chat_request(body))  # type: ignore[attr-defined]
            if inspect.isawaitable(stream):
                stream = await stream  # LLMServer.chat is a coroutine that returns the generator
            async for item in stream:
                if isinstance(marker, str) and marker:
                    _trim_logprobs(item, marker)  # before the dump: the dump is most of the cost
                return item.model_dump(mode="json") if hasattr(item, "model_dump") else dict(item)
            return {"error": {"message": "the engine closed the stream without an answer"}}
        except Exception as exc:  # one bad request must not fail the whole batch
            return {"error": {"message": f"{type(exc).__name__}: {exc}"}}

    def _judge_version(self) -> str | None:
        """What this replica stamps its answers with (None: no stamp): replicas that judge differently (old and
        new during a rolling update) must stamp differently, so a group never mixes their verdicts."""
        return None

    async def chat_many(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """OpenAI chat-completion bodies (or error bodies), one per request, in order, each with the version
        stamp."""
        answers = list(await asyncio.gather(*(self._answer(b) for b in bodies)))
        version = self._judge_version()
        return answers if version is None else [{**a, JUDGE_VERSION_FIELD: version} for a in answers]


#: The environment variable a hosted judge reads its niceness increment from (0 to 19; unset: unchanged).
ENGINE_NICE_ENV = "GENRM_ENGINE_NICE"


def lower_priority(env: Mapping[str, str] = os.environ) -> int | None:
    """Raise this process's niceness by ``env[ENGINE_NICE_ENV]``; the new niceness, or None when it is unset."""
    raw = env.get(ENGINE_NICE_ENV, "").strip()
    if not raw:
        return None
    try:
        increment = int(raw)
    except ValueError:
        increment = -1
    if not 0 <= increment <= 19:
        raise ValueError(f"{ENGINE_NICE_ENV}={raw!r}: a niceness increment is an integer from 0 to 19")
    return os.nice(increment)


def judge_server_class() -> type:
    """LLMServer with :class:`BatchedChat` (built on demand: importing ray.serve.llm needs a vLLM build)."""
    from ray.serve.llm import LLMServer
    from ray.serve.llm.openai_api_models import ChatCompletionRequest

    class JudgeServer(BatchedChat, LLMServer):
        async def __init__(self, *args: Any, **kwargs: Any) -> None:
            lower_priority()  # before LLMServer starts the engine, whose processes inherit it
            await super().__init__(*args, **kwargs)

        def _chat_request(self, body: dict[str, Any]) -> Any:
            return ChatCompletionRequest.model_validate({**body, "stream": False})

        def _judge_version(self) -> str:
            """A hash of this replica's LLMConfig: two replicas with different models, sources or engine settings
            stamp their answers differently."""
            version = getattr(self, "_genrm_version", None)
            if version is None:
                config = self._llm_config.model_dump(exclude={"deployment_config", "runtime_env"})
                text = json.dumps(config, sort_keys=True, default=str)
                # an object's repr may carry its address, which differs between replicas of one version
                text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)
                digest = hashlib.sha256(text.encode()).hexdigest()
                version = self._genrm_version = digest[:12]
            return version

        async def record_autoscaling_stats(self) -> dict[str, float]:
            """Serve's hook for custom autoscaling metrics: the engine's own load (deployments/autoscaling.py).
            ray.serve.llm keeps the vLLM engine client on its engine wrapper; there is no public accessor."""
            return engine_load(getattr(self.engine, "_engine_client", None))

    return JudgeServer
