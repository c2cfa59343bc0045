"""Admission control: how many requests one router replica judges at once, and how many may wait.

At most ``running`` requests hold a slot; ``queued`` more may wait for one; one more is refused at once
(:class:`Overloaded`, answered as 503 with Retry-After). Work that was already let in — a group of an admitted
/v1/rank_batch, a cohort whose callers have been waiting for it — waits for a slot and is never refused: refusing it
then would waste the wait of everyone in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator


class Overloaded(Exception):
    """The router already holds as many requests as it may."""


class Admission:
    """At most ``running`` requests at once and ``queued`` waiting; one more is refused at once."""

    def __init__(self, running: int, queued: int) -> None:
        self._slots = asyncio.Semaphore(running)
        self._limit = running + queued
        #: requests running or waiting for a slot
        self.inside = 0

    @property
    def full(self) -> bool:
        return self.inside >= self._limit

    def check(self) -> None:
        """Raise :class:`Overloaded` when a new request would be refused (a batch asks once, for all its groups)."""
        if self.full:
            raise Overloaded

    @contextlib.asynccontextmanager
    async def slot(self, *, admitted: bool = False) -> AsyncIterator[float]:
        """A running slot for the block; yields the seconds waited for it. ``admitted``: the work was let in
        already (see the module docstring), so it waits instead of being refused."""
        if not admitted:
            self.check()
        self.inside += 1
        try:
            waited = time.perf_counter()
            async with self._slots:
                yield time.perf_counter() - waited
        finally:
            self.inside -= 1
