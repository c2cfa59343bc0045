"""Cohorts: per-sample reward requests held until their group of rollouts has arrived, then judged once together.

RL trainers (OpenRLHF, veRL, slime, AReaL) ask for a reward once per rollout, concurrently, while a pairwise judge
needs the whole group of a prompt. So each sample joins the cohort of its group key; the cohort closes when
``group_size`` samples have arrived ("full") or ``group_timeout_s`` after its first sample ("timeout", judged with
what arrived), is judged once by the injected ``judge`` function, and every caller gets the same outcome and reads
its own place in it. With ``incremental`` the judging starts at the first sample and follows the arrivals, so that
little is left to judge when the cohort closes; the answer still comes after the close.

Rules (each refusal is a :class:`CohortRefused` with the HTTP status to answer):

* a group key is explicit (the client's ``group_id``) or derived from the prompt (conversation and principles),
  always within the sample's scope (its tenant, and its job when the caller names one);
  under a derived key, samples beyond a full cohort open the next cohort of that prompt (the same prompt twice in a
  step, the next epoch); under an explicit key they are refused: 422 when the cohort already had all its samples,
  409 when it stopped waiting and was judged without them;
* every sample has a rollout index (given, or the lowest free one): a repeated index with another response → 409;
  the same index with the same response is the same rollout sent again (a client retry) and gets that rollout's
  answer;
* bounded: at most ``max_open_cohorts`` cohorts not yet answered and ``max_waiting_samples`` samples waiting in
  them; beyond that → 503. With several tenants each holds at most its weighted share of both (its weight over the
  tenants' total, at least one cohort and one sample); beyond its share → 429, so a tenant that floods the table
  is told to slow down and never fills the room the others' samples need;
* a caller's cancellation (its client disconnected) never reaches the cohort: the judging runs in a task owned by
  the table, callers wait through :func:`asyncio.shield`;
* a cohort never waits forever: its timer closes it.

A sample the caller was refused for on its own (blank response, too long) still *arrives*: it is counted with
``judged=False``, so its cohort is not left waiting for it, and it is not judged.

Pure asyncio: no Ray, no HTTP. Bookkeeping per sample is a few dictionary operations (tested to stay well under a
millisecond).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies.selection import Strategy, Strengths

R = TypeVar("R")
ClosedBy = Literal["full", "timeout"]


class CohortSettings(BaseModel):
    """``router.cohorts`` in the configuration."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="serve POST /v1/reward (per-sample rewards through cohorts)")
    group_size: int = Field(
        default=8, ge=1, le=1024, description="rollouts per prompt, for samples that do not name a group_size"
    )
    group_timeout_s: float = Field(
        default=120.0,
        gt=0.0,
        description="a cohort is judged with what arrived this long after its first sample; keep it plus the "
        "judging time below the trainer's request timeout",
    )
    owners: int = Field(
        default=1,
        ge=1,
        le=64,
        description="with several router replicas: cohort owner shards, each a one-replica deployment holding the "
        "cohorts whose key hashes to it (losing one loses only its cohorts)",
    )
    max_open_cohorts: int = Field(
        default=256,
        ge=1,
        description="cohorts collecting or being judged; more get 503 (a tenant beyond its weighted share: 429)",
    )
    max_waiting_samples: int = Field(
        default=4096,
        ge=1,
        description="samples waiting for their answer; more get 503 (a tenant beyond its weighted share: 429)",
    )
    incremental: bool = Field(
        default=True,
        description="judge a cohort while its samples arrive, from the second one on, so that about one judge round "
        "is left once it closes (policies.incremental; only for a Swiss cohort design, others are judged at the "
        "close): bench/results/arrivals.md measured about one round instead of Swiss's three to four after the "
        "last arrival, at the same calls and Spearman ρ",
    )
    strategy: Strategy | None = Field(
        default="swiss",
        description="pair design for cohorts (None: router.selection.strategy, as /v1/rank). Swiss with both orders "
        "orders a whole group best per judge call at RL budgets (bench/results/rank_quality.md: Spearman 0.81 at "
        "N = 8 with 24 calls, 0.86 at N = 16 with 64), where the best-of-N default (adaptive) is tuned to find the "
        "best one only",
    )
    strengths: Strengths | None = Field(
        default="whole_verdict",
        description="how cohorts fit strengths (None: router.selection.strengths). The whole verdict (each call's "
        "ranking and both helpfulness scores) ranked every simulated judge better with the cohort design: Spearman "
        "+0.015 to +0.10 (bench/results/whole_verdict.md)",
    )

    @model_validator(mode="after")
    def _room_for_a_group(self) -> CohortSettings:
        if self.max_waiting_samples < self.group_size:
            raise ValueError(
                f"max_waiting_samples ({self.max_waiting_samples}) must be at least group_size ({self.group_size}), "
                f"or no cohort could ever be complete"
            )
        return self


class CohortRefused(Exception):
    """A sample the table will not take: ``status`` is the HTTP status, ``message`` says why and what to do."""

    def __init__(self, status: int, message: str, retry_after: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def prompt_fingerprint(prompt: Any) -> str:
    """A short digest of the prompt's JSON form: the derived group key, and the check that an explicit group is one
    prompt. ``prompt`` must be JSON-able (e.g. ``[[role, content], ...], principles``)."""
    text = json.dumps(prompt, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclasses.dataclass(slots=True)
class Sample:
    """What one caller brings."""

    response: str
    fingerprint: str
    #: what the judge needs besides the responses (conversation, principles); the cohort keeps its first sample's
    prompt: Any
    group_id: str | None = None
    group_size: int | None = None
    rollout_index: int | None = None
    #: whose cohorts these are (a tenant, and a job within it): samples of different scopes never share a cohort
    scope: str = ""
    #: the caller's name for this sample across retries (``idempotency_key``)
    idempotency_key: str | None = None
    #: the tenant whose share of the table this sample and its cohort count against
    tenant: str = ""
    #: what the cohort's reward rule reads of this rollout besides the judged response (NeMo-Gym's reasoning and
    #: answer texts for its length terms); opaque here, handed back in judged order (``CohortOutcome.rollouts``)
    rollout: Any = None

    @property
    def key(self) -> str:
        if self.group_id is not None:
            return f"group:{self.scope}:{self.group_id}"
        return f"prompt:{self.scope}:{self.fingerprint}:{self.group_size}"


def shard_of(key: str, shards: int) -> int:
    """The owner shard (0 .. shards-1) of a cohort key: a stable hash, the same in every process and run."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


@dataclasses.dataclass(slots=True, eq=False)
class Cohort(Generic[R]):
    id: str
    key: str
    explicit: bool
    size: int
    fingerprint: str
    prompt: Any
    opened: float
    done: asyncio.Future[CohortOutcome[R]]
    tenant: str = ""
    #: rollout index -> response; None for a sample that arrived but is not judged
    arrived: dict[int, str | None] = dataclasses.field(default_factory=dict)
    #: rollout index -> the judged sample's ``Sample.rollout`` (its first arrival's, for a retry)
    rollouts: dict[int, Any] = dataclasses.field(default_factory=dict)
    next_free: int = 0
    closed_by: ClosedBy | None = None
    closed: float | None = None
    timer: asyncio.TimerHandle | None = None
    #: the rollout indices of the samples to judge, in the order they arrived
    order: list[int] = dataclasses.field(default_factory=list)
    #: set at every arrival to judge and at the close (what :meth:`arrivals` and :meth:`closing` wait on)
    news: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    judging: bool = False  # its judging task has started

    def judged(self) -> list[tuple[int, str]]:
        """The samples to judge, by rollout index."""
        return sorted((i, r) for i, r in self.arrived.items() if r is not None)

    async def arrivals(self) -> AsyncIterator[tuple[int, str]]:
        """The samples to judge (rollout index, response) as they arrive, from the first; ends once the cohort
        has closed (incremental judging reads the cohort this way)."""
        seen = 0
        while True:
            while seen < len(self.order):
                index = self.order[seen]
                seen += 1
                response = self.arrived[index]
                assert response is not None
                yield index, response
            if self.closed_by is not None:
                return
            self.news.clear()
            await self.news.wait()

    async def closing(self) -> None:
        """Wait until the cohort has closed (a judge that needs it whole, under incremental judging)."""
        while self.closed_by is None:
            self.news.clear()
            await self.news.wait()


@dataclasses.dataclass(slots=True, frozen=True)
class CohortOutcome(Generic[R]):
    """What the cohort's judging produced, shared by all its callers."""

    cohort_id: str
    group_size: int
    #: the judged rollout indices, in the order the judge saw them (position k = indices[k])
    indices: list[int]
    arrived: int
    closed_by: ClosedBy
    waited_s: float  # first arrival to close
    judging_s: float
    result: R | None  # None only when no sample of the cohort was judgeable (then no caller waits for it)
    #: each judged sample's ``Sample.rollout``, in the order of ``indices``
    rollouts: list[Any] = dataclasses.field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.arrived == self.group_size


@dataclasses.dataclass(slots=True, frozen=True)
class Ticket(Generic[R]):
    """One caller's place: its cohort and rollout index."""

    cohort: Cohort[R]
    rollout_index: int
    arrived: float

    async def outcome(self) -> CohortOutcome[R]:
        """Wait for the cohort's answer. Cancelling this wait (a disconnected caller) leaves the cohort alone."""
        return await asyncio.shield(self.cohort.done)

    def position(self, outcome: CohortOutcome[R]) -> int:
        return outcome.indices.index(self.rollout_index)


class Cohorts(Generic[R]):
    """The cohorts of one router replica. ``judge(cohort)`` judges a cohort's :meth:`Cohort.judged` samples and
    returns once it has closed; whatever it returns (or raises) is every caller's outcome. It is called at the
    close, or with ``settings.incremental`` at the cohort's first sample to judge, so that it can judge while the
    others arrive (:meth:`Cohort.arrivals`, :meth:`Cohort.closing`)."""

    def __init__(
        self,
        settings: CohortSettings,
        judge: Callable[[Cohort[R]], Awaitable[R]],
        clock: Callable[[], float] = time.monotonic,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        """``weights``: the tenants' weights (``router.tenants``); with two or more, each tenant's share of the
        table is bounded (see the module docstring)."""
        self.settings = settings
        self._judge = judge
        self._clock = clock
        self._weights = dict(weights or {}) if len(weights or {}) > 1 else {}
        self._open: dict[str, Cohort[R]] = {}  # key -> the cohort collecting samples
        # Explicit keys stay reserved while judged and for group_timeout_s after: late, overfull and repeated
        # samples of that group are answered, not taken as the start of another group.
        self._closed: dict[str, Cohort[R]] = {}
        self._expiry: collections.deque[tuple[float, str, Cohort[R]]] = collections.deque()
        self._tasks: set[asyncio.Task[None]] = set()
        # Retries (see :meth:`retry_of`): places by the caller's idempotency key, and places whose caller left, by
        # (cohort key, response).
        self._keyed: dict[str, Ticket[R]] = {}
        self._left: dict[tuple[str, str], list[Ticket[R]]] = {}
        self._retry_expiry: collections.deque[tuple[Ticket[R], Callable[[], None]]] = collections.deque()
        self._ids = itertools.count(1)
        self.unanswered = 0  # cohorts collecting or being judged
        self.waiting = 0  # samples (to be judged) whose cohort has not answered yet
        self.unanswered_by: collections.Counter[str] = collections.Counter()  # the same two, by tenant
        self.waiting_by: collections.Counter[str] = collections.Counter()

    # ---- joining --------------------------------------------------------------------------------------------

    def join(self, sample: Sample, *, judged: bool = True) -> Ticket[R]:
        """Place ``sample`` in its cohort (opening one when needed); raises :class:`CohortRefused`. With
        ``judged=False`` the sample only counts as arrived (its caller was refused on its own). A retry
        (:meth:`retry_of`) gets the first place back."""
        now = self._clock()
        self._forget_expired(now)
        if judged and (earlier := self.retry_of(sample)) is not None:
            return earlier
        ticket = self._join(sample, judged, now)
        if judged and sample.idempotency_key is not None:
            scoped = f"{sample.scope}:{sample.idempotency_key}"
            self._keyed[scoped] = ticket
            self._retry_expiry.append((ticket, lambda: self._keyed.pop(scoped, None)))
        return ticket

    # ---- retries --------------------------------------------------------------------------------------------

    def retry_of(self, sample: Sample) -> Ticket[R] | None:
        """The place ``sample`` already has, if it is a retry. With an idempotency key: the place first taken under
        that key (same scope), its caller waiting or not. Without one (OpenRLHF and slime name none): a sample
        identical to one whose caller has left (:meth:`left`: a client that timed out) is its retry; a sample
        identical to one whose caller still waits is another rollout that happens to read the same."""
        if sample.idempotency_key is not None:
            return self._keyed.get(f"{sample.scope}:{sample.idempotency_key}")
        if sample.rollout_index is not None:
            return None  # an indexed sample is matched by its index (join)
        places = self._left.get((sample.key, sample.response))
        if not places:
            return None
        ticket = places.pop()
        if not places:
            del self._left[sample.key, sample.response]
        return ticket

    def left(self, ticket: Ticket[R], sample: Sample) -> None:
        """``ticket``'s caller stopped waiting (disconnected): its place stays in the cohort for a retry."""
        if sample.idempotency_key is not None or sample.rollout_index is not None:
            return  # found again by key or index
        where = (sample.key, sample.response)
        self._left.setdefault(where, []).append(ticket)

        def forget() -> None:
            places = self._left.get(where)
            if places and ticket in places:
                places.remove(ticket)
                if not places:
                    del self._left[where]

        self._retry_expiry.append((ticket, forget))

    def _join(self, sample: Sample, judged: bool, now: float) -> Ticket[R]:
        key = sample.key
        cohort = self._open.get(key)
        if cohort is None and sample.group_id is not None and (earlier := self._closed.get(key)) is not None:
            return self._after_close(earlier, sample, now)
        size = sample.group_size or (cohort.size if cohort is not None else self.settings.group_size)
        if cohort is not None:
            self._check_fits(cohort, sample, size)
            index = sample.rollout_index
            if index is not None and index in cohort.arrived:
                if judged and cohort.arrived[index] == sample.response:
                    return Ticket(cohort, index, now)  # the same rollout sent again
                raise CohortRefused(
                    409,
                    f"rollout_index {index} is already in cohort {cohort.id} with another response; give each "
                    f"rollout of a group its own index, or omit rollout_index",
                )
        elif sample.rollout_index is not None and sample.rollout_index >= size:
            raise _out_of_range(sample.rollout_index, size)
        if judged:
            self._check_share(sample.tenant, self.waiting_by, self.settings.max_waiting_samples, "samples waiting")
        if cohort is None:
            self._check_share(sample.tenant, self.unanswered_by, self.settings.max_open_cohorts, "cohorts open")
        if judged and self.waiting >= self.settings.max_waiting_samples:
            raise CohortRefused(
                503,
                f"{self.waiting} samples are waiting for their cohorts (router.cohorts.max_waiting_samples); retry "
                f"later",
                retry_after=True,
            )
        if cohort is None:
            if self.unanswered >= self.settings.max_open_cohorts:
                raise CohortRefused(
                    503,
                    f"{self.unanswered} cohorts are open (router.cohorts.max_open_cohorts); retry later",
                    retry_after=True,
                )
            cohort = self._open_cohort(sample, key, size, now)
        index = sample.rollout_index if sample.rollout_index is not None else self._free_index(cohort)
        cohort.arrived[index] = sample.response if judged else None
        if judged:
            cohort.rollouts[index] = sample.rollout
            cohort.order.append(index)
            cohort.news.set()
            self.waiting += 1
            self.waiting_by[cohort.tenant] += 1
            if self.settings.incremental and not cohort.judging:
                self._start(cohort)  # judging begins with the first sample and follows the arrivals
        if len(cohort.arrived) >= cohort.size:
            self._close(cohort, "full")
        return Ticket(cohort, index, now)

    def share(self, tenant: str, limit: int) -> int | None:
        """The most of ``limit`` that ``tenant`` may hold (None: one tenant, no share of its own). A tenant the
        table has no weight for counts with weight 1."""
        if not self._weights:
            return None
        return max(1, int(limit * self._weights.get(tenant, 1.0) / sum(self._weights.values())))

    def _check_share(self, tenant: str, held: collections.Counter[str], limit: int, what: str) -> None:
        share = self.share(tenant, limit)
        if share is not None and held[tenant] >= share:
            raise CohortRefused(
                429,
                f"tenant {tenant!r} has {held[tenant]} {what}, its weighted share of the {limit} this replica holds "
                f"(router.cohorts and router.tenants[].weight); retry later",
                retry_after=True,
            )

    def _check_fits(self, cohort: Cohort[R], sample: Sample, size: int) -> None:
        if size != cohort.size:
            raise CohortRefused(
                422,
                f"group_size {size} differs from the {cohort.size} that cohort {cohort.id}'s first sample gave; "
                f"send the same group_size with every sample of a group",
            )
        if sample.fingerprint != cohort.fingerprint:
            raise CohortRefused(
                422,
                f"this sample's conversation or principles differ from those of cohort {cohort.id} (group_id "
                f"{sample.group_id!r}); a group is the rollouts of one prompt",
            )
        if sample.rollout_index is not None and sample.rollout_index >= size:
            raise _out_of_range(sample.rollout_index, size)

    def _after_close(self, cohort: Cohort[R], sample: Sample, now: float) -> Ticket[R]:
        """A sample for an explicit group that is no longer collecting."""
        index = sample.rollout_index
        if index is not None and index in cohort.arrived and cohort.arrived[index] == sample.response:
            return Ticket(cohort, index, now)  # a retry: the same answer
        if cohort.closed_by == "full":
            raise CohortRefused(
                422,
                f"cohort {cohort.id} (group_id {sample.group_id!r}) already had all {cohort.size} samples of its "
                f"group_size; a group takes at most group_size samples",
            )
        raise CohortRefused(
            409,
            f"cohort {cohort.id} (group_id {sample.group_id!r}) stopped waiting after "
            f"{self.settings.group_timeout_s:g} s (router.cohorts.group_timeout_s) with {len(cohort.arrived)} of "
            f"{cohort.size} samples and was judged without this one; send a group's samples closer together or "
            f"raise the timeout",
        )

    def _open_cohort(self, sample: Sample, key: str, size: int, now: float) -> Cohort[R]:
        loop = asyncio.get_running_loop()
        cohort: Cohort[R] = Cohort(
            id=f"c{next(self._ids)}-{sample.fingerprint[:8]}",
            key=key,
            explicit=sample.group_id is not None,
            size=size,
            fingerprint=sample.fingerprint,
            prompt=sample.prompt,
            opened=now,
            done=loop.create_future(),
            tenant=sample.tenant,
        )
        # Retrieved here, so an outcome nobody waits for any more (every caller left) logs no "never retrieved".
        cohort.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        cohort.timer = loop.call_later(self.settings.group_timeout_s, self._close, cohort, "timeout")
        self._open[key] = cohort
        self.unanswered += 1
        self.unanswered_by[cohort.tenant] += 1
        return cohort

    @staticmethod
    def _free_index(cohort: Cohort[R]) -> int:
        while cohort.next_free in cohort.arrived:
            cohort.next_free += 1
        return cohort.next_free

    # ---- closing and judging --------------------------------------------------------------------------------

    def _close(self, cohort: Cohort[R], why: ClosedBy) -> None:
        if cohort.closed_by is not None:
            return
        self._stop(cohort, why)
        if not cohort.judging:
            self._start(cohort)

    def _stop(self, cohort: Cohort[R], why: ClosedBy) -> None:
        """The cohort takes no more samples."""
        cohort.closed_by, cohort.closed = why, self._clock()
        cohort.news.set()
        if cohort.timer is not None:
            cohort.timer.cancel()
        if self._open.get(cohort.key) is cohort:
            del self._open[cohort.key]
        if cohort.explicit:
            self._closed[cohort.key] = cohort

    def _start(self, cohort: Cohort[R]) -> None:
        cohort.judging = True
        task = asyncio.get_running_loop().create_task(self._run(cohort))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _run(self, cohort: Cohort[R]) -> None:
        failed = True
        try:
            result = await self._judge(cohort) if cohort.order else None
            if cohort.closed_by is None:
                raise RuntimeError(f"cohort {cohort.id} was judged before it closed")
        except asyncio.CancelledError:  # shutdown: the callers must not hang
            cohort.done.cancel()
            raise
        except Exception as exc:  # every caller gets the failure (a 503, a 422)
            cohort.done.set_exception(exc)
        else:
            failed = False
            judged = cohort.judged()
            assert cohort.closed is not None and cohort.closed_by is not None
            cohort.done.set_result(
                CohortOutcome(
                    cohort_id=cohort.id,
                    group_size=cohort.size,
                    indices=[i for i, _ in judged],
                    arrived=len(cohort.arrived),
                    closed_by=cohort.closed_by,
                    waited_s=cohort.closed - cohort.opened,
                    judging_s=self._clock() - cohort.closed,
                    result=result,
                    rollouts=[cohort.rollouts.get(i) for i, _ in judged],
                )
            )
        finally:
            if cohort.closed_by is None:  # judging failed while samples arrived: its callers have the failure
                self._stop(cohort, "timeout")
            judged = cohort.judged()
            self.unanswered -= 1
            self.waiting -= len(judged)
            self.unanswered_by[cohort.tenant] -= 1
            self.waiting_by[cohort.tenant] -= len(judged)
            if cohort.explicit and failed:  # its samples sent again (after a 503) form a new cohort at once
                if self._closed.get(cohort.key) is cohort:
                    del self._closed[cohort.key]
            elif cohort.explicit:
                self._expiry.append((self._clock() + self.settings.group_timeout_s, cohort.key, cohort))
                self._forget_expired(self._clock())

    def _forget_expired(self, now: float) -> None:
        # Expiry times are appended in order; the cap bounds memory whatever the arrival rate.
        cap = 4 * self.settings.max_open_cohorts
        while self._expiry and (self._expiry[0][0] <= now or len(self._expiry) > cap):
            _, key, cohort = self._expiry.popleft()
            if self._closed.get(key) is cohort:
                del self._closed[key]
        # A retry place lasts until its cohort has answered and group_timeout_s has passed since it closed
        # (entries in about arrival order; the cap bounds memory).
        retries_cap = self.settings.max_waiting_samples
        while self._retry_expiry:
            ticket, forget = self._retry_expiry[0]
            cohort = ticket.cohort
            lingered = cohort.done.done() and now - (cohort.closed or now) > self.settings.group_timeout_s
            if not (lingered or len(self._retry_expiry) > retries_cap):
                break
            self._retry_expiry.popleft()
            forget()

    async def aclose(self) -> None:
        """Stop (replica shutdown, tests): open cohorts and judging in progress are cancelled, so no caller hangs."""
        for cohort in list(self._open.values()):
            if cohort.timer is not None:
                cohort.timer.cancel()
            cohort.done.cancel()
        self._open.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _out_of_range(index: int, size: int) -> CohortRefused:
    return CohortRefused(
        422, f"rollout_index {index} is outside 0..{size - 1}, the indices of a group of group_size {size}"
    )
