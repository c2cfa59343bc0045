"""Admission control: how many requests one router replica judges at once, how many may wait, and for whom.

At most ``running`` requests hold a slot; ``queued`` more may wait for one; one more is refused at once
(:class:`Overloaded`, answered as 503 with Retry-After). Work that was already let in — a group of an admitted
/v1/rank_batch, a cohort whose callers have been waiting for it — waits for a slot and is never refused: refusing it
then would waste the wait of everyone in it.

Several tenants (``router.tenants``) share the replica. Each may have limits of its own, running and queued, checked
before the replica's: a tenant over them is refused with :class:`TenantOverloaded` (429 with Retry-After) while the
others are still let in. The limits hold per router replica. When slots are contended, tenants take turns in
proportion to their weights (:class:`FairSlots`), so a heavy tenant's backlog never sits in front of a light
tenant's request. The judge lanes (``serve_app.core.lanes``) share their calls the same way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping

from serve_app.config import DEFAULT_TENANT


class Overloaded(Exception):
    """The router already holds as many requests as it may."""


class TenantOverloaded(Exception):
    """This tenant already holds as many requests as its own limits allow."""

    def __init__(self, tenant: str, running: int, queued: int) -> None:
        super().__init__(tenant)
        self.tenant, self.running, self.queued = tenant, running, queued


class FairSlots:
    """At most ``capacity`` holders at once, shared between tenants by weighted fair queueing (start-time fair
    queueing, one slot as the unit of work): each grant to tenant t is tagged F_t = max(F_t, V) + 1 / w_t, where V
    is the start tag of the latest grant, and a freed slot goes to the waiting tenant with the smallest tag. Over
    a contended stretch each backlogged tenant is granted slots in proportion to its weight (``weights``, default
    1), and a tenant that was idle starts level with the others instead of behind a backlog; first come first
    served within a tenant and between equal tags. A cancelled waiter leaves no trace; a slot granted to a waiter
    cancelled at that moment is passed on. ``caps``: a tenant holds at most that many slots even when more are free,
    so the rest stay free for the others (a reserve, paid for in that tenant's throughput)."""

    def __init__(
        self, capacity: int, weights: Mapping[str, float] | None = None, caps: Mapping[str, int] | None = None
    ) -> None:
        self.capacity = capacity
        self.weights = dict(weights or {})
        self.caps = dict(caps or {})
        self.held: collections.Counter[str] = collections.Counter()
        self._free = capacity
        self._waiting: dict[str, collections.deque[tuple[int, asyncio.Future[None]]]] = {}
        self._order = itertools.count()
        self._finish: dict[str, float] = {}
        self._clock = 0.0

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def _tag(self, tenant: str) -> float:
        return max(self._finish.get(tenant, 0.0), self._clock) + 1.0 / self.weights.get(tenant, 1.0)

    def _take(self, tenant: str) -> None:
        tag = self._tag(tenant)
        self._clock = tag - 1.0 / self.weights.get(tenant, 1.0)
        self._finish[tenant] = tag
        self._free -= 1
        self.held[tenant] += 1

    def _capped(self, tenant: str) -> bool:
        return tenant in self.caps and self.held[tenant] >= self.caps[tenant]

    def _eligible(self) -> list[str]:
        """The tenants with a waiter that may be granted a slot (not at their cap)."""
        return [t for t, q in self._waiting.items() if q and not self._capped(t)]

    def _grant(self) -> None:
        while self._free > 0:
            for tenant in [t for t, q in self._waiting.items() if not q]:
                del self._waiting[tenant]
            eligible = self._eligible()
            if not eligible:
                return
            tenant = min(eligible, key=lambda t: (self._tag(t), self._waiting[t][0][0]))
            _, future = self._waiting[tenant].popleft()
            if future.done():  # cancelled while waiting
                continue
            future.set_result(None)
            self._take(tenant)

    async def acquire(self, tenant: str = DEFAULT_TENANT) -> None:
        if self._free > 0 and not self._capped(tenant) and not self._eligible():
            self._take(tenant)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, collections.deque()).append((next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted as it was cancelled: pass the slot on
                self.release(tenant)
            raise

    def release(self, tenant: str = DEFAULT_TENANT) -> None:
        self.held[tenant] -= 1
        if not self.held[tenant]:
            del self.held[tenant]
        self._free += 1
        self._grant()

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str = DEFAULT_TENANT) -> AsyncIterator[None]:
        await self.acquire(tenant)
        try:
            yield
        finally:
            self.release(tenant)


class HeldWhileBusy:
    """One slot for work whose calls come and go (a cohort judged while its samples arrive): taken, by ``take()``,
    when a call starts with none in flight, given back when the last one in flight ends, so that between its calls
    the work keeps no other request out. Wrap each call in :meth:`hold`."""

    def __init__(self, take: Callable[[], contextlib.AbstractAsyncContextManager[float]]) -> None:
        self._take = take
        self._busy = 0
        self._lock = asyncio.Lock()  # one taker at a time: the calls starting together share its slot
        self._held: contextlib.AbstractAsyncContextManager[float] | None = None
        self.queued_s = 0.0  # the waits for a slot, summed

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._lock:
            if self._busy == 0:
                held = self._take()
                self.queued_s += await held.__aenter__()
                self._held = held
            self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            # Given back outside the lock: a taker holding it waits for a slot, possibly this very one.
            if self._busy == 0 and self._held is not None:
                held, self._held = self._held, None
                await held.__aexit__(None, None, None)


class Admission:
    """At most ``running`` requests at once and ``queued`` waiting; one more is refused at once. ``tenants``: each
    tenant's weight and own limits (``None``: only the replica's)."""

    def __init__(self, running: int, queued: int, tenants: Mapping[str, TenantLimits] | None = None) -> None:
        self.tenants = dict(tenants or {})
        self._slots = FairSlots(running, {name: t.weight for name, t in self.tenants.items()})
        self._limit = running + queued
        #: requests running or waiting for a slot
        self.inside = 0
        self._inside_by: collections.Counter[str] = collections.Counter()

    @property
    def full(self) -> bool:
        return self.inside >= self._limit

    def check(self, tenant: str = DEFAULT_TENANT) -> None:
        """Raise :class:`TenantOverloaded` when the tenant is at its own limits, :class:`Overloaded` when the
        replica is full (a batch asks once, for all its groups)."""
        limits = self.tenants.get(tenant)
        if limits is not None and limits.running is not None and self._inside_by[tenant] >= limits.capacity:
            raise TenantOverloaded(tenant, limits.running, limits.queued or 0)
        if self.full:
            raise Overloaded

    @contextlib.asynccontextmanager
    async def slot(self, *, admitted: bool = False, tenant: str = DEFAULT_TENANT) -> AsyncIterator[float]:
        """A running slot for the block; yields the seconds waited for it. ``admitted``: the work was let in
        already (see the module docstring), so it waits instead of being refused."""
        if not admitted:
            self.check(tenant)
        self.inside += 1
        self._inside_by[tenant] += 1
        try:
            waited = time.perf_counter()
            limits = self.tenants.get(tenant)
            own = limits.slots if limits is not None else None
            # the tenant's own running slot first, then the replica's (where tenants take fair turns)
            async with own.slot(tenant) if own is not None else contextlib.nullcontext(), self._slots.slot(tenant):
                yield time.perf_counter() - waited
        finally:
            self.inside -= 1
            self._inside_by[tenant] -= 1


class TenantLimits:
    """One tenant's share of a replica: its weight, and at most ``running`` of its requests at once with ``queued``
    more waiting (``running`` None: only the replica's limits)."""

    def __init__(self, weight: float = 1.0, running: int | None = None, queued: int | None = None) -> None:
        self.weight, self.running, self.queued = weight, running, queued
        self.slots = FairSlots(running) if running is not None else None

    @property
    def capacity(self) -> int:
        """Requests of this tenant running or waiting at most (its own limits)."""
        return (self.running or 0) + (self.queued or 0)
