"""Ready means ready: the router says so only after each judge has answered a real call.

The router itself is up in seconds, the engines behind it a minute or more later, and an engine's first calls are
slow (lazy initialisation). A client that starts as soon as the HTTP port answers sees failed or timed-out calls.
So at start-up the router sends each judge a small warm-up call, repeated until the judge answers; ``/readyz`` is
200 only once every judge has, and `serve run`'s output says when that happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from serve_app.core.lanes import JudgeLane
from serve_app.protocols.genrm_api import JudgeReadiness

_CONVERSATION = [{"role": "user", "content": "What is 2 + 2?"}]
#: pause between warm-up attempts of a judge that is not up yet
RETRY_S = 5.0


async def _warm_call(role: str, judge: Any) -> None:
    """One small judge call; any answer the judge produces (even an unreadable one) means its engine is serving."""
    if role == "pairwise":
        await judge.compare(_CONVERSATION, "2 + 2 = 4.", "2 + 2 = 5.")
    else:
        await judge.score(_CONVERSATION, "2 + 2 = 4.", ["correctness"])


class Readiness:
    """Warm-up state of every judge of one router replica."""

    def __init__(self, judges: Mapping[str, Any], lanes: Mapping[str, JudgeLane]) -> None:
        self.judges = dict(judges)
        self.lanes = lanes
        self.state = {role: JudgeReadiness(ready=False) for role in self.judges}
        self._started = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ready(self) -> bool:
        return all(s.ready for s in self.state.values())

    def start(self) -> None:
        """Begin warming every judge (needs a running event loop)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._warm(role)) for role in self.judges]

    async def _warm(self, role: str) -> None:
        state = self.state[role]
        while not state.ready:
            state.attempts += 1
            try:
                await self.lanes[role].call(lambda: _warm_call(role, self.judges[role]))
            except Exception as exc:  # not up yet: the deployment is still starting, or the call timed out
                state.last_error = f"{type(exc).__name__}: {exc}"[:300]
                await asyncio.sleep(RETRY_S)
                continue
            state.ready, state.last_error = True, None
            state.warmup_s = time.monotonic() - self._started
        if self.ready:
            waits = ", ".join(f"{r} {s.warmup_s:.0f} s" for r, s in self.state.items())
            # Printed, not logged: `serve run` shows a replica's stdout, and this is the line users wait for.
            print(f"genrm-ensemble: READY - every judge answered its warm-up call ({waits}); send requests", flush=True)
