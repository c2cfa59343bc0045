"""Stand-in judges for in-process route tests: a replica's real FastAPI app (``serve_app.ingress.asgi.build_api``) and
JudgingService in front of judges that answer at once, with no Ray and no engine.

* :class:`QualityClient` is a pairwise *model*: behind the real ``PairwiseJudge`` (prompts built, answers parsed),
  it reads "quality N" from each response of a pair and prefers the higher, so ranks are predictable. Its verdict
  has no position bias: helpfulness ``min(5, 1 + N)`` per response, ranking 2 / 5 for the better first / second
  response, 3 for equal qualities. Its ``usage`` counts whitespace-separated words as tokens, and it keeps what it
  answered (``answered``) so a test can add them up.
* :class:`QualityPrinciple` is a principle *judge* (duck-typed ``score``): reward = N of "quality N".
* :func:`stand_in_service` builds the JudgingService; :func:`run_app` runs ``go(http_client)`` against its app;
  :func:`served` runs an app under uvicorn on a free local port, for clients that need a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import httpx

from deployments.engine_client import Completion
from deployments.pairwise.judge import PairwiseJudge, PairwiseSettings
from policies.verdicts import PrincipleResult
from serve_app.config import AppConfig
from serve_app.core.judge_pool import Judges
from serve_app.core.service import JudgingService
from serve_app.core.stats import NullMetrics
from serve_app.ingress.asgi import build_api

CONVERSATION = [{"role": "user", "content": "Name a prime number."}]
_QUALITY = re.compile(r"quality (\d+)")


class QualityClient:
    """A pairwise model that prefers the response with the higher "quality N"."""

    model = "stand-in"

    def __init__(
        self,
        delay_s: float = 0.0,
        breaks_on: Callable[[str], bool] | None = None,
        version: Callable[[int], str | None] | None = None,
    ) -> None:
        self.delay_s = delay_s
        #: the version stamp of the k-th call's answer, as a hosted judge replica stamps it (a rolling update)
        self.version = version
        #: fault injection: a call whose prompt this says yes to gets an unreadable answer
        self.breaks_on = breaks_on
        self.calls = self.inflight = self.peak = 0
        #: (prompt, prompt tokens, completion tokens) of every answer
        self.answered: list[tuple[str, int, int]] = []

    async def chat(self, request: dict[str, Any]) -> Completion:
        self.calls += 1
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
        finally:
            self.inflight -= 1
        prompt = request["messages"][-1]["content"]
        if self.breaks_on is not None and self.breaks_on(prompt):
            return Completion(text="I cannot judge this.", finish_reason="stop")
        found = [int(q) for q in _QUALITY.findall(prompt)]
        first, second = found[-2:] if len(found) >= 2 else (0, 0)  # (0, 0): the warm-up call
        ranking = 2 if first > second else 5 if second > first else 3
        verdict = {"score_1": min(5, 1 + first), "score_2": min(5, 1 + second), "ranking": ranking}
        stamp = self.version(self.calls) if self.version is not None else None
        text = json.dumps(verdict)
        used = (sum(len(m["content"].split()) for m in request["messages"]), len(text.split()))
        self.answered.append((prompt, *used))
        return Completion(
            text=text, finish_reason="stop", judge_version=stamp, prompt_tokens=used[0], completion_tokens=used[1]
        )


class QualityPrinciple:
    """A principle judge whose reward for every principle is the response's "quality N" (0 without one)."""

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[tuple[Any, str]] = []  # (conversation, response) of every call

    async def score(self, conversation: Any, response: str, principles: Sequence[str]) -> list[PrincipleResult]:
        self.calls += 1
        self.seen.append((conversation, response))
        found = _QUALITY.findall(response)
        reward = float(found[-1]) if found else 0.0
        return [PrincipleResult(principle=p, reward=reward, answer="Yes") for p in principles]


def stand_in_service(
    router: dict[str, Any] | None = None,
    client: QualityClient | None = None,
    principle: QualityPrinciple | None = None,
    *,
    pairwise: bool = True,
) -> JudgingService:
    """A JudgingService with the stand-in pairwise model (unless ``pairwise=False``) and, when given, the
    stand-in principle judge; the router section defaults to round robin."""
    endpoint = {"endpoint": {"base_url": "http://unused/v1", "model": "stand-in", "tokenizer": "unused"}}
    args: dict[str, Any] = {"router": {"selection": {"strategy": "round_robin"}, **(router or {})}}
    if pairwise:
        args["pairwise"] = endpoint
    if principle is not None:
        args["principle"] = endpoint
    config = AppConfig.model_validate(args)
    judge = None
    if pairwise:
        settings = PairwiseSettings(prompt_format="rendered", structured_output="compact")
        judge = PairwiseJudge(client or QualityClient(), settings)
    judges = Judges(pairwise=judge, principle=principle)  # type: ignore[arg-type]
    return JudgingService(config, judges, metrics=NullMetrics())


def run_app(
    go: Callable[[httpx.AsyncClient], Awaitable[Any]],
    router: dict[str, Any] | None = None,
    client: QualityClient | None = None,
    principle: QualityPrinciple | None = None,
    *,
    pairwise: bool = True,
) -> Any:
    """``go(http)`` against a fresh replica app in its own event loop; returns what ``go`` returns."""

    async def main() -> Any:
        app = build_api(stand_in_service(router, client, principle, pairwise=pairwise))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://router", timeout=30) as http:
            return await go(http)

    return asyncio.run(main())


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve ``app`` under uvicorn in a background thread on a free local port; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a free port, held from here on, so nothing can take it before uvicorn starts
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class OwnerHandle:
    """Stands in for the DeploymentHandle of the owner replica: ``handle.forwarded_reward.remote(payload)``."""

    def __init__(self, owner: JudgingService) -> None:
        self.forwarded_reward = self
        self.owner = owner

    async def remote(self, payload: dict[str, Any]) -> dict[str, Any]:
        # Through Ray the payload and answer are pickled: a copy, never the caller's objects.
        return copy.deepcopy(await self.owner.forwarded_reward(copy.deepcopy(payload)))
