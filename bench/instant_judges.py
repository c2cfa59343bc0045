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

import ray
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


def _pairwise_verdict(request: Any) -> dict[str, Any]:
    h = _digest(request)
    return _response(json.dumps({"score_1": 1 + h % 5, "score_2": 1 + (h >> 8) % 5, "ranking": 1 + (h >> 16) % 6}))


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
class InstantPairwise(BatchedChat):
    def __init__(self, delay_s: float = 0.0, version: str | None = None) -> None:
        self.delay_s = delay_s  # > 0: a judge that takes its time, for admission-control tests
        self.version = version  # stamped on its answers as a hosted judge stamps its own (deployments.judge_server)
        self.answered = 0

    def _judge_version(self) -> str | None:
        return self.version

    def calls_answered(self) -> int:
        """The calls this replica has answered."""
        return self.answered

    async def chat(self, request: Any) -> AsyncIterator[dict[str, Any]]:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.answered += 1
        yield _pairwise_verdict(request)


@ray.remote(num_cpus=0)
class ReplicaWitness:
    """Which replica answered the batches of each group: a batch's ``prompt`` is its group's affinity key."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}
        self._texts: dict[str, str] = {}

    def saw(self, key: str, replica: str, text: str) -> None:
        self._seen.setdefault(key, set()).add(replica)
        self._texts[key] = text

    def replicas_by_key(self, containing: str = "") -> dict[str, list[str]]:
        """The replicas of each key whose requests' text contains ``containing``."""
        return {key: sorted(seen) for key, seen in self._seen.items() if containing in self._texts[key]}


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
class WitnessedPairwise(BatchedChat):
    """:class:`InstantPairwise`'s verdicts, and each batch reported to a :class:`ReplicaWitness` (by name)."""

    def __init__(self, witness: str, namespace: str) -> None:
        self._witness = ray.get_actor(witness, namespace=namespace)
        self._replica = serve.get_replica_context().replica_id.unique_id

    async def chat_many(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        text = json.dumps([body.get("messages") for body in bodies])
        await self._witness.saw.remote(getattr(bodies, "prompt", ""), self._replica, text)
        return await super().chat_many(bodies)

    async def chat(self, request: Any) -> AsyncIterator[dict[str, Any]]:
        yield _pairwise_verdict(request)


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
