"""Cohorts on their own (pure asyncio, no Ray): completion by arrivals and by timeout, callers that leave, overfull,
repeated and late samples, the limits, failures, and what the bookkeeping costs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serve_app.core.cohorts import (
    Cohort,
    CohortOutcome,
    CohortRefused,
    Cohorts,
    CohortSettings,
    Sample,
    prompt_fingerprint,
)

PROMPT = [[["user", "What is 2 + 2?"]], ["correctness"], None]
FINGERPRINT = prompt_fingerprint(PROMPT)


class Judge:
    """Records each cohort it judges; the result is the judged responses in order (so a caller can find its own)."""

    def __init__(self, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.delay_s = delay_s
        self.error = error
        self.calls: list[list[str]] = []

    async def __call__(self, cohort: Cohort[list[str]]) -> list[str]:
        await cohort.closing()  # under incremental judging it is called at the first sample
        responses = [r for _, r in cohort.judged()]
        self.calls.append(responses)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return responses


def sample(response: str, *, group_id: str | None = "g", size: int | None = 4, index: int | None = None, **kw: Any):
    fingerprint = kw.pop("fingerprint", FINGERPRINT)
    return Sample(
        response=response,
        fingerprint=fingerprint,
        prompt=None,
        group_id=group_id,
        group_size=size,
        rollout_index=index,
        **kw,
    )


def table(judge: Judge, **overrides: Any) -> Cohorts[list[str]]:
    return Cohorts(CohortSettings(**{"group_size": 4, "group_timeout_s": 5.0, **overrides}), judge)


async def ask(cohorts: Cohorts[list[str]], s: Sample) -> tuple[str, CohortOutcome[list[str]]]:
    """One caller: join, wait, and read its own response back from the shared result."""
    ticket = cohorts.join(s)
    outcome = await ticket.outcome()
    assert outcome.result is not None
    return outcome.result[ticket.position(outcome)], outcome


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_arrivals_complete_the_cohort_judged_once() -> None:
    async def main() -> None:
        judge = Judge(delay_s=0.01)
        cohorts = table(judge)
        answers = await asyncio.gather(*(ask(cohorts, sample(f"r{k}")) for k in range(4)))
        assert [own for own, _ in answers] == ["r0", "r1", "r2", "r3"]
        outcome = answers[0][1]
        assert all(o is outcome for _, o in answers)  # one outcome, shared
        assert (outcome.closed_by, outcome.complete, outcome.indices) == ("full", True, [0, 1, 2, 3])
        assert judge.calls == [["r0", "r1", "r2", "r3"]]
        assert (cohorts.unanswered, cohorts.waiting) == (0, 0)

    run(main())


def test_a_cohort_that_does_not_fill_is_judged_at_its_timeout_with_what_arrived() -> None:
    async def main() -> None:
        judge = Judge()
        cohorts = table(judge, group_timeout_s=0.05)
        started = time.monotonic()
        answers = await asyncio.gather(ask(cohorts, sample("a", index=3)), ask(cohorts, sample("b")))
        waited = time.monotonic() - started
        outcome = answers[0][1]
        assert 0.04 <= waited < 1.0
        assert (outcome.closed_by, outcome.complete, outcome.arrived) == ("timeout", False, 2)
        assert outcome.indices == [0, 3]  # the index-less sample took the lowest free index
        assert [own for own, _ in answers] == ["a", "b"]
        assert judge.calls == [["b", "a"]]  # judged in index order

    run(main())


def test_each_samples_rollout_comes_back_in_judged_order() -> None:
    """What a sample brings for the reward rule (``Sample.rollout``) is handed back beside ``indices``: a sample that
    only arrived (refused on its own) has none in it, and a retry of a rollout keeps its first arrival's."""

    async def main() -> None:
        cohorts = table(Judge(), group_timeout_s=0.05)
        answers = asyncio.gather(
            ask(cohorts, sample("c", index=3, rollout="texts of c")),
            ask(cohorts, sample("a", index=0, rollout="texts of a")),
            ask(cohorts, sample("a", index=0, rollout="texts of a, again")),  # the same rollout sent again
        )
        cohorts.join(sample("", index=1, rollout="never judged"), judged=False)
        (_, outcome), *_ = await answers
        assert outcome.indices == [0, 3] and outcome.rollouts == ["texts of a", "texts of c"]

    run(main())


def test_a_caller_that_leaves_costs_nobody_else_their_answer() -> None:
    """One caller is cancelled while waiting for arrivals, another while the cohort is judged: the cohort is judged
    with every sample, once, and the callers that stayed get their answers."""

    async def main() -> None:
        judge = Judge(delay_s=0.05)
        cohorts = table(judge, group_size=3)
        leaves_early = asyncio.ensure_future(ask(cohorts, sample("early", size=3)))
        await asyncio.sleep(0.01)
        leaves_early.cancel()
        stays = asyncio.ensure_future(ask(cohorts, sample("stays", size=3)))
        leaves_late = asyncio.ensure_future(ask(cohorts, sample("late", size=3)))
        await asyncio.sleep(0.02)  # the cohort is full and being judged
        assert judge.calls == [["early", "stays", "late"]]
        leaves_late.cancel()
        own, outcome = await stays
        assert own == "stays" and outcome.complete
        for task in (leaves_early, leaves_late):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert len(judge.calls) == 1 and cohorts.waiting == 0

    run(main())


def test_more_samples_than_group_size_get_422_under_an_explicit_group() -> None:
    async def main() -> None:
        judge = Judge(delay_s=0.02)
        cohorts = table(judge, group_size=2)
        first = [asyncio.ensure_future(ask(cohorts, sample(r, size=2))) for r in ("a", "b")]
        await asyncio.sleep(0)
        with pytest.raises(CohortRefused) as refused:  # while the cohort is judged
            cohorts.join(sample("c", size=2))
        assert refused.value.status == 422 and "at most group_size" in refused.value.message
        await asyncio.gather(*first)
        with pytest.raises(CohortRefused) as refused:  # and after it answered
            cohorts.join(sample("c", size=2))
        assert refused.value.status == 422

    run(main())


def test_samples_beyond_a_full_prompt_cohort_open_the_next_one() -> None:
    """Without group_id the key is the prompt: the same prompt twice in a step is two cohorts, not an error."""

    async def main() -> None:
        judge = Judge()
        cohorts = table(judge, group_size=2)
        answers = await asyncio.gather(*(ask(cohorts, sample(f"r{k}", group_id=None, size=2)) for k in range(4)))
        assert [own for own, _ in answers] == ["r0", "r1", "r2", "r3"]
        assert answers[0][1].cohort_id == answers[1][1].cohort_id != answers[2][1].cohort_id
        assert judge.calls == [["r0", "r1"], ["r2", "r3"]]

    run(main())


def test_a_repeated_index_is_409_unless_it_is_the_same_rollout_again() -> None:
    async def main() -> None:
        judge = Judge()
        cohorts = table(judge, group_size=3)
        first = cohorts.join(sample("a", index=1, size=3))
        with pytest.raises(CohortRefused) as refused:
            cohorts.join(sample("b", index=1, size=3))
        assert refused.value.status == 409 and "rollout_index 1" in refused.value.message
        retry = cohorts.join(sample("a", index=1, size=3))  # a client retry: the same rollout, the same answer
        assert retry.cohort is first.cohort and retry.rollout_index == 1 and cohorts.waiting == 1
        rest = [asyncio.ensure_future(ask(cohorts, sample(r, size=3))) for r in ("x", "y")]
        a, b = await asyncio.gather(first.outcome(), retry.outcome())
        assert a is b and a.result is not None and a.result[first.position(a)] == "a"
        await asyncio.gather(*rest)
        again = cohorts.join(sample("a", index=1, size=3))  # after the answer, within the linger: still the same
        assert (await again.outcome()) is a

    run(main())


def test_late_samples_of_a_timed_out_group_get_409() -> None:
    async def main() -> None:
        cohorts = table(Judge(), group_timeout_s=0.02)
        await ask(cohorts, sample("a"))
        with pytest.raises(CohortRefused) as refused:
            cohorts.join(sample("b"))
        assert refused.value.status == 409 and "stopped waiting" in refused.value.message

    run(main())


@pytest.mark.parametrize(
    ("second", "status", "fragment"),
    [
        (sample("b", size=8), 422, "group_size 8 differs"),
        (sample("b", fingerprint="another prompt"), 422, "one prompt"),
        (sample("b", index=4), 422, "outside 0..3"),
    ],
)
def test_samples_that_do_not_fit_their_cohort_get_422(second: Sample, status: int, fragment: str) -> None:
    async def main() -> None:
        cohorts = table(Judge())
        cohorts.join(sample("a"))
        with pytest.raises(CohortRefused) as refused:
            cohorts.join(second)
        assert refused.value.status == status and fragment in refused.value.message
        await cohorts.aclose()

    run(main())


def test_limits_give_503_with_retry_after() -> None:
    async def main() -> None:
        cohorts = table(Judge(), max_open_cohorts=2, max_waiting_samples=4, group_size=4)
        cohorts.join(sample("a", group_id="g1"))
        cohorts.join(sample("b", group_id="g2"))
        with pytest.raises(CohortRefused) as refused:
            cohorts.join(sample("c", group_id="g3"))
        assert refused.value.status == 503 and refused.value.retry_after and "max_open_cohorts" in refused.value.message
        cohorts.join(sample("c", group_id="g1"))
        cohorts.join(sample("d", group_id="g2"))
        with pytest.raises(CohortRefused) as refused:
            cohorts.join(sample("e", group_id="g1"))
        assert refused.value.status == 503 and "max_waiting_samples" in refused.value.message
        await cohorts.aclose()

    run(main())


def test_each_tenant_holds_only_its_weighted_share_of_the_table() -> None:
    """The tenant gap the tenant benchmark found: a heavy tenant filled max_open_cohorts and both tenants got 503.
    With shares, the heavy tenant is told 429 at its share (weight 3 of 4: 6 of 8 cohorts, 12 of 16 samples), the
    light one still opens its cohorts, and a share frees up when the tenant's cohorts are answered."""

    async def main() -> None:
        judge = Judge(delay_s=0.05)
        cohorts = Cohorts(
            CohortSettings(group_size=2, group_timeout_s=5.0, max_open_cohorts=8, max_waiting_samples=16),
            judge,
            weights={"heavy": 3.0, "light": 1.0},
        )

        def of(tenant: str, group: str, response: str = "r") -> Sample:
            return sample(response, group_id=group, size=2, scope=tenant, tenant=tenant)

        for k in range(6):
            cohorts.join(of("heavy", f"h{k}"))
        with pytest.raises(CohortRefused) as refused:
            cohorts.join(of("heavy", "h6"))
        assert refused.value.status == 429 and refused.value.retry_after and "'heavy'" in refused.value.message
        light = [cohorts.join(of("light", f"l{k}")) for k in range(2)]  # room the heavy tenant could not take
        with pytest.raises(CohortRefused) as refused:
            cohorts.join(of("light", "l2"))
        assert refused.value.status == 429 and cohorts.unanswered == 8
        closing = [cohorts.join(of("heavy", f"h{k}", "s")) for k in range(6)]  # 12 samples: the heavy share
        await asyncio.gather(*(t.outcome() for t in closing))
        assert cohorts.unanswered_by["heavy"] == 0 and cohorts.waiting_by["heavy"] == 0
        cohorts.join(of("heavy", "h7"))  # its share is free again
        assert cohorts.share("heavy", 8) == 6 and cohorts.share("light", 8) == 2 and light
        await cohorts.aclose()

    run(main())


def test_one_tenant_has_the_whole_table() -> None:
    cohorts: Cohorts[list[str]] = Cohorts(CohortSettings(), Judge(), weights={"only": 1.0})
    assert cohorts.share("only", 256) is None


def test_a_sample_refused_on_its_own_still_arrives() -> None:
    """A caller refused for its own sample (blank, too long) counts as arrived, so the others need not wait for the
    timeout; it is not judged."""

    async def main() -> None:
        judge = Judge()
        cohorts = table(judge, group_size=3)
        waiting = [asyncio.ensure_future(ask(cohorts, sample(r, size=3))) for r in ("a", "b")]
        await asyncio.sleep(0)
        cohorts.join(sample("", size=3), judged=False)
        answers = await asyncio.wait_for(asyncio.gather(*waiting), timeout=1.0)
        outcome = answers[0][1]
        assert outcome.complete and outcome.indices == [0, 1] and judge.calls == [["a", "b"]]

    run(main())


def test_a_failed_judging_reaches_every_caller_and_a_retry_starts_afresh() -> None:
    async def main() -> None:
        judge = Judge(error=RuntimeError("judges down"))
        cohorts = table(judge, group_size=2)
        results = await asyncio.gather(*(ask(cohorts, sample(r, size=2)) for r in "ab"), return_exceptions=True)
        assert [str(r) for r in results] == ["judges down", "judges down"]
        assert (cohorts.unanswered, cohorts.waiting) == (0, 0)
        judge.error = None  # the judges are back: the group sent again is judged, not refused as overfull
        answers = await asyncio.gather(*(ask(cohorts, sample(r, size=2)) for r in "ab"))
        assert [own for own, _ in answers] == ["a", "b"] and len(judge.calls) == 2

    run(main())


def test_settings_refuse_a_waiting_limit_below_the_group_size() -> None:
    with pytest.raises(ValueError, match="at least group_size"):
        CohortSettings(group_size=16, max_waiting_samples=8)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=5),
    order_seed=st.randoms(use_true_random=False),
    with_index=st.booleans(),
)
def test_every_caller_gets_its_own_row_whatever_the_interleaving(
    sizes: Sequence[int], order_seed: Any, with_index: bool
) -> None:
    """Several groups' samples in a random order (some indices given in a shuffled order): every cohort is judged
    once and complete, every caller reads its own response back, and the counters return to zero."""

    async def main() -> None:
        judge = Judge()
        cohorts = table(judge, group_size=6)
        samples = []
        for g, size in enumerate(sizes):
            indices = list(range(size))
            order_seed.shuffle(indices)
            for k in range(size):
                index = indices[k] if with_index else None
                samples.append(sample(f"g{g}-{k}", group_id=f"g{g}", size=size, index=index))
        order_seed.shuffle(samples)

        async def caller(s: Sample) -> str:
            await asyncio.sleep(order_seed.random() * 0.002)
            own, outcome = await ask(cohorts, s)
            assert outcome.complete and outcome.closed_by == "full"
            return own

        answers = await asyncio.gather(*(caller(s) for s in samples))
        assert answers == [s.response for s in samples]
        assert sorted(len(c) for c in judge.calls) == sorted(sizes)
        assert (cohorts.unanswered, cohorts.waiting) == (0, 0)

    run(main())


def test_bookkeeping_costs_well_under_a_millisecond_per_sample() -> None:
    """Joining (the fingerprint of a realistic prompt included) and closing 8000 samples in cohorts of 8, with a
    judge that answers at once: the router's own cost per sample."""
    conversation = [["system", "You are a careful assistant. " * 20], ["user", "Prove that the sum " * 60]]

    async def main() -> float:
        cohorts = table(Judge(), group_size=8, max_waiting_samples=10_000, max_open_cohorts=2_000)
        tickets = []
        started = time.perf_counter()
        for k in range(8000):
            prompt = [conversation, ["correctness"], f"prompt {k // 8}"]
            s = Sample(response=f"rollout {k}", fingerprint=prompt_fingerprint(prompt), prompt=prompt, group_size=8)
            tickets.append(cohorts.join(s))
        elapsed = time.perf_counter() - started
        outcomes = await asyncio.gather(*(t.outcome() for t in tickets))
        assert all(o.complete for o in outcomes) and cohorts.waiting == 0
        return elapsed / 8000

    per_sample = run(main())
    assert per_sample < 1e-3, f"{per_sample * 1e6:.0f} µs per sample"  # the target; measured: tens of µs


class Follower:
    """An incremental judge: reads the samples as they arrive and answers them in arrival order after the close;
    ``fail_after`` of them read, it fails instead."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.seen: list[tuple[int, str]] = []
        self.closed_when_called: list[bool] = []

    async def __call__(self, cohort: Cohort[list[str]]) -> list[str]:
        self.closed_when_called.append(cohort.closed_by is not None)
        async for index, response in cohort.arrivals():
            self.seen.append((index, response))
            if self.fail_after is not None and len(self.seen) == self.fail_after:
                raise RuntimeError("the judges are down")
        return [r for _, r in cohort.judged()]


def test_an_incremental_judge_starts_at_the_first_sample_and_reads_the_rest_as_they_arrive() -> None:
    async def main() -> None:
        judge = Follower()
        cohorts = table(judge, incremental=True)
        cohorts.join(sample("", index=2), judged=False)  # arrived, refused on its own: nothing to judge yet
        await asyncio.sleep(0)
        assert judge.closed_when_called == []
        first = asyncio.ensure_future(ask(cohorts, sample("b", index=1)))
        await asyncio.sleep(0.01)
        assert judge.closed_when_called == [False] and judge.seen == [(1, "b")]
        rest = await asyncio.gather(ask(cohorts, sample("a", index=0)), ask(cohorts, sample("d", index=3)), first)
        assert judge.seen == [(1, "b"), (0, "a"), (3, "d")]  # arrival order
        assert [own for own, _ in rest] == ["a", "d", "b"] and rest[0][1].indices == [0, 1, 3]
        assert (cohorts.unanswered, cohorts.waiting) == (0, 0)

    run(main())


def test_without_incremental_judging_the_judge_is_called_at_the_close() -> None:
    async def main() -> None:
        judge = Follower()
        cohorts = table(judge, incremental=False)
        await asyncio.gather(*(ask(cohorts, sample(f"r{k}")) for k in range(4)))
        assert judge.closed_when_called == [True] and len(judge.seen) == 4

    run(main())


def test_judging_that_fails_while_samples_arrive_stops_the_cohort() -> None:
    """Its callers get the failure at once; the group's next sample starts a new cohort, which is judged."""

    async def main() -> None:
        judge = Follower(fail_after=2)
        cohorts = table(judge, incremental=True)
        early = [cohorts.join(sample(r)) for r in ("a", "b")]
        for ticket in early:
            with pytest.raises(RuntimeError, match="down"):
                await ticket.outcome()
        assert (cohorts.unanswered, cohorts.waiting) == (0, 0)
        judge.fail_after = None
        again = await asyncio.gather(*(ask(cohorts, sample(r)) for r in ("a", "b", "c", "d")))
        assert again[0][1].cohort_id != early[0].cohort.id and again[0][1].complete

    run(main())
