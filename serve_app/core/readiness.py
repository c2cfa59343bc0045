"""Ready means ready: the router says so only after each judge has answered a real call, and only while each judge
still has a live replica.

The router itself is up in seconds, the engines behind it a minute or more later, and an engine's first calls are
slow (lazy initialisation). A client that starts as soon as the HTTP port answers sees failed or timed-out calls.
So at start-up the router sends each judge a small warm-up call, repeated until the judge answers; ``/readyz`` is
200 only once every judge has, and `serve run`'s output says when that happened.

After warm-up a judge can still go away: its node is lost, its replicas die and wait for resources to come back.
A liveness probe (on Serve: the deployment's running replicas, from Serve's own status) is asked on each
``/readyz``, and every :data:`WATCH_S` while calls are in flight or a judge is down. A judge with no live replica is
named by ``/readyz`` and its lane fails its calls at once (Serve would hold them until a replacement runs); when Serve
has replaced it, the judge is ready again without a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from serve_app.core.lanes import JudgeLane
from serve_app.protocols.genrm_api import JudgeReadiness

_CONVERSATION = [{"role": "user", "content": "What is 2 + 2?"}]
#: pause between warm-up attempts of a judge that is not up yet
RETRY_S = 5.0
#: how long one liveness answer is reused: ``/readyz`` is polled by every load balancer and client
LIVENESS_TTL_S = 2.0
#: how often liveness is checked while judge calls are in flight or a judge is down
WATCH_S = 5.0
#: the least time between two looks
MIN_LOOK_GAP_S = 0.1

#: the reason each judge is down (None: it has a live replica), by role
Liveness = Callable[[], Awaitable[Mapping[str, str | None]]]


async def _warm_call(role: str, judge: Any) -> None:
    """One small judge call; any answer the judge produces (even an unreadable one) means its engine is serving."""
    if role == "pairwise":
        await judge.compare(_CONVERSATION, "2 + 2 = 4.", "2 + 2 = 5.")
    else:
        await judge.score(_CONVERSATION, "2 + 2 = 4.", ["correctness"])


class Readiness:
    """Warm-up and liveness state of every judge of one router replica."""

    def __init__(self, judges: Mapping[str, Any], lanes: Mapping[str, JudgeLane], liveness: Liveness | None = None):
        self.judges = dict(judges)
        self.lanes = lanes
        self.liveness = liveness
        self.state = {role: JudgeReadiness(ready=False) for role in self.judges}
        if liveness is not None:
            for lane in lanes.values():
                lane.recheck = self.check
        self._warmed: set[str] = set()
        self._checked = -float("inf")  # when the last look that answered started
        self._look_started = -float("inf")
        self._look: asyncio.Future[None] | None = None  # the look in progress, shared by whoever needs it
        self._started = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ready(self) -> bool:
        return all(s.ready for s in self.state.values())

    @property
    def down(self) -> list[str]:
        """Judges that answered their warm-up call and have since lost every replica."""
        return [role for role, s in self.state.items() if role in self._warmed and not s.ready]

    def start(self) -> None:
        """Begin warming every judge (needs a running event loop)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._warm(role)) for role in self.judges]

    async def check(self, since: float | None = None) -> None:
        """Refresh the warmed judges' liveness unless a look that started at or after ``since`` (default: within
        :data:`LIVENESS_TTL_S`) has already answered. Concurrent callers share one look; a look that fails leaves
        the last answer in place, since it says nothing about the judges."""
        if self.liveness is None or not self._warmed:
            return
        since = time.monotonic() - LIVENESS_TTL_S if since is None else since
        while self._checked < since:
            if self._look is None:
                self._look = asyncio.ensure_future(self._probe())
            await asyncio.shield(self._look)

    async def _probe(self) -> None:
        assert self.liveness is not None
        try:
            # Looks follow each other at most every MIN_LOOK_GAP_S: calls refused while a judge is down each
            # want a look newer than themselves, and must not turn into a stream of controller round trips.
            await asyncio.sleep(max(0.0, self._look_started + MIN_LOOK_GAP_S - time.monotonic()))
            self._look_started = time.monotonic()
            try:
                reasons = await self.liveness()
            except Exception:
                return
            for role in self._warmed:
                reason = reasons.get(role)
                state = self.state[role]
                state.ready, state.last_error = reason is None, reason
                self.lanes[role].set_down(reason)
        finally:
            self._checked = self._look_started
            self._look = None

    async def _watch(self) -> None:
        """Check liveness while it matters: calls in flight (which a lost judge would hold) or a judge down."""
        while True:
            await asyncio.sleep(WATCH_S)
            busy = any(lane.inflight or lane.waiting for lane in self.lanes.values())
            if busy or self.down:
                await self.check()

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
            self._warmed.add(role)
        if self.ready and self.liveness is not None:
            self._tasks.append(asyncio.get_running_loop().create_task(self._watch()))
        if self.ready:
            waits = ", ".join(f"{r} {s.warmup_s:.0f} s" for r, s in self.state.items())
            # Printed, not logged: `serve run` shows a replica's stdout, and this is the line users wait for.
            print(f"genrm-ensemble: READY - every judge answered its warm-up call ({waits}); send requests", flush=True)
