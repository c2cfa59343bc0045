"""How the router waits for one judge: bounded calls in flight, and a timeout that tells a busy judge from a hung one.

A fixed per-call timeout cannot do both jobs. Real evaluation items are long, and on a small machine a burst of
them queues inside the engine: every call then takes minutes, none is broken, and a fixed timeout fails them all.
A hung judge, on the other hand, must be given up on quickly. So:

* at most ``max_inflight`` calls are sent to the judge at once; the rest wait in the router, where the wait is
  visible (``queued_s``) and no timeout runs — a request's own deadline (``router.max_request_s``) bounds it;
* a sent call times out when its judge has been **silent** for ``silence_s``: no call to that judge has completed
  since this one was sent, or since the last completion. A judge that keeps answering other calls is busy, not
  hung, and its calls keep their place; a judge that answers nothing is given up on after ``silence_s``;
* ``max_call_s`` bounds one call whatever else happens;
* a judge that Serve reports without a live replica (:meth:`JudgeLane.set_down`, fed by
  ``serve_app.core.readiness``) fails its calls at once with :class:`JudgeDown`: Serve would hold them until a
  replacement replica runs, minutes after a node is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from serve_app.config import DEFAULT_TENANT
from serve_app.core.admission import FairSlots

T = TypeVar("T")


class JudgeSilent(TimeoutError):
    """The judge answered no call for too long (or one call outlived ``max_call_s``)."""


class JudgeDown(ConnectionError):
    """The judge has no live replica: its calls fail now rather than wait for a replacement."""


@dataclass
class CallTiming:
    """Where one call's time went."""

    queued_s: float = 0.0
    sent_s: float = 0.0


class JudgeLane:
    """One judge's calls: a bounded number in flight, shared fairly between tenants (``weights``), each tenant at
    most its ``caps`` in flight, and the time of its last answer."""

    def __init__(
        self,
        name: str,
        silence_s: float,
        max_inflight: int | None = None,
        max_call_s: float | None = None,
        weights: Mapping[str, float] | None = None,
        caps: Mapping[str, int] | None = None,
    ):
        self.name = name
        self.silence_s = silence_s
        self.max_call_s = max_call_s if max_call_s is not None else 10 * silence_s
        # with tenant caps but no lane bound, the lane still counts each tenant's calls (an unbounded capacity)
        self._slots = FairSlots(max_inflight or sys.maxsize, weights, caps) if max_inflight or caps else None
        self.max_inflight = max_inflight
        self.inflight = 0
        self.waiting = 0
        #: monotonic time of the last call this judge answered
        self.last_answer = float("-inf")
        #: why the judge is down (None: it has a live replica, or nobody has looked yet)
        self.down: str | None = None
        self._went_down: asyncio.Future[None] | None = None  # resolved when the judge goes down; shared by calls
        #: refreshes ``down`` with a look that started no earlier than the given time (serve_app.core.readiness):
        #: a call is refused only on a look newer than the call, since a judge that came back since the last look
        #: (seen back by another router replica, say) would otherwise be refused until the next one
        self.recheck: Callable[[float], Awaitable[None]] | None = None

    def set_down(self, reason: str | None) -> None:
        """Mark the judge down (``reason``) or up (None). Going down fails every call in flight."""
        self.down = reason
        if reason is not None and self._went_down is not None and not self._went_down.done():
            self._went_down.set_result(None)

    def _down_signal(self) -> asyncio.Future[None]:
        """The future the calls in flight wait on beside their own: resolved when the judge goes down."""
        if self._went_down is None or (self._went_down.done() and self.down is None):
            self._went_down = asyncio.get_running_loop().create_future()
        return self._went_down

    def _refuse_if_down(self) -> None:
        if self.down is not None:
            raise JudgeDown(f"the {self.name} judge is down: {self.down}")

    @contextlib.asynccontextmanager
    async def _slot(self, tenant: str) -> AsyncIterator[None]:
        if self._slots is None:
            yield
            return
        self.waiting += 1
        try:
            await self._slots.acquire(tenant)
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._slots.release(tenant)

    async def call(
        self, make: Callable[[], Awaitable[T]], timing: CallTiming | None = None, tenant: str = DEFAULT_TENANT
    ) -> T:
        """Run ``make()`` when a slot is free (the tenant's fair turn); raise :class:`JudgeSilent` as the module
        docstring says."""
        timing = timing if timing is not None else CallTiming()
        queued = time.monotonic()
        if self.down is not None and self.recheck is not None:
            await self.recheck(queued)
        self._refuse_if_down()
        async with self._slot(tenant):
            self._refuse_if_down()
            sent = time.monotonic()
            timing.queued_s = sent - queued
            self.inflight += 1
            task = asyncio.ensure_future(make())
            try:
                return await self._wait(task, sent)
            finally:
                self.inflight -= 1
                timing.sent_s = time.monotonic() - sent
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # retrieved: a call given up on must not log "exception never retrieved"

    async def _wait(self, task: asyncio.Future[T], sent: float) -> T:
        hard_deadline = sent + self.max_call_s
        went_down = self._down_signal()
        while True:
            now = time.monotonic()
            # the judge's silence is counted from whichever is later: this call's sending or its last answer
            silent_until = max(sent, self.last_answer) + self.silence_s
            deadline = min(silent_until, hard_deadline)
            if now >= deadline:
                if now >= hard_deadline:
                    raise JudgeSilent(f"{self.name} judge call timed out after {self.max_call_s:g} s (max_call_s)")
                raise JudgeSilent(
                    f"{self.name} judge call timed out: the judge answered no call for {self.silence_s:g} s "
                    f"(call_timeout_s)"
                )
            done, _ = await asyncio.wait({task, went_down}, timeout=deadline - now, return_when="FIRST_COMPLETED")
            if task in done:
                result = task.result()  # a failed call raises here and is no sign of life
                self.last_answer = time.monotonic()
                return result
            if went_down in done:
                self._refuse_if_down()
                went_down = self._down_signal()  # it came back up before this call noticed
