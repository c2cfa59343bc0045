"""Judge stand-ins that answer at once, for measuring what the router itself costs.

They are Serve deployments with LLMServer's ``chat`` signature (an async generator yielding one completion) and the
same ``chat_many`` batching as the hosted judges, so the router reaches them through the same ServeHandleClient and
parsers as a real engine. The verdict is a
hash of the prompt, so different pairs get different, repeatable answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from deployments.judge_server import BatchedChat


def _digest(request: Any) -> int:
    text = json.dumps(request.messages if hasattr(request, "messages") else request, sort_keys=True, default=str)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _response(content: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return {"id": "instant", "object": "chat.completion", "choices": [choice], "usage": {}}


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
class InstantPairwise(BatchedChat):
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s  # > 0: a judge that takes its time, for admission-control tests

    async def chat(self, request: Any) -> AsyncIterator[dict[str, Any]]:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        h = _digest(request)
        verdict = {"score_1": 1 + h % 5, "score_2": 1 + (h >> 8) % 5, "ranking": 1 + (h >> 16) % 6}
        yield _response(json.dumps(verdict))


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
class InstantPrinciple(BatchedChat):
    def __init__(self, yes_id: int, no_id: int) -> None:
        self.yes_id, self.no_id = yes_id, no_id

    async def chat(self, request: Any) -> AsyncIterator[dict[str, Any]]:
        h = _digest(request)
        yes = -((h % 1000) / 250.0)
        no = -(((h >> 10) % 1000) / 250.0)
        answer, answer_lp = ("Yes", yes) if yes >= no else ("No", no)
        pieces = ["Final", " Judgement", ":", f" {answer}"]
        top = [
            {"token": f"token_id:{self.yes_id}", "logprob": yes},
            {"token": f"token_id:{self.no_id}", "logprob": no},
        ]
        content = [{"token": p, "logprob": -0.1, "top_logprobs": []} for p in pieces[:-1]]
        content.append({"token": pieces[-1], "logprob": answer_lp, "top_logprobs": top})
        yield _response("Final Judgement: " + answer, content)
