"""Selection while candidates arrive (policies.incremental, policies.pairings.ArrivingSwiss), on a virtual clock:
judge calls and arrivals take the times the test gives them, and nothing sleeps for real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fleet_sim import on_virtual_clock as on_clock
from policies.incremental import select_arriving
from policies.pairings import ArrivingSwiss, Swiss
from policies.selection import SelectionConfig, SelectionResult, select_best
from policies.verdicts import PairVerdict, PairwiseResult, PrincipleResult


class TimedJudge:
    """Prefers the higher quality (margin 1.5, plus ``bias`` for the first shown); each call takes ``call_s``;
    every ``fail_every``-th call is unreadable. Records when each call was sent."""

    def __init__(self, quality: Sequence[float], call_s: float = 1.0, fail_every: int = 0, bias: float = 0.0) -> None:
        self.quality = list(quality)
        self.call_s = call_s
        self.fail_every = fail_every
        self.bias = bias
        self.sent: list[tuple[float, int, int]] = []
        self.principle_asked: list[int] = []

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        self.sent.append((asyncio.get_running_loop().time(), first, second))
        await asyncio.sleep(self.call_s)
        if self.fail_every and len(self.sent) % self.fail_every == 0:
            return PairwiseResult(failure="unreadable", raw_text="garbage")
        gap = self.quality[first] - self.quality[second]
        margin = float(np.clip(np.sign(gap) * 1.5 + self.bias, -2.5, 2.5))
        return PairwiseResult(verdict=PairVerdict(score_1=3, score_2=3, ranking=3.5 - margin))

    async def principle(self, index: int) -> list[PrincipleResult]:
        self.principle_asked.append(index)
        await asyncio.sleep(self.call_s)
        return [PrincipleResult(principle="correctness", reward=self.quality[index])]


async def arriving(times: Sequence[float], log: list[float] | None = None) -> AsyncIterator[str]:
    """Candidate k arrives at ``times[k]`` (loop time); ``log`` gets each arrival's time."""
    loop = asyncio.get_running_loop()
    for k, t in enumerate(times):
        await asyncio.sleep(max(0.0, t - loop.time()))
        if log is not None:
            log.append(loop.time())
        yield f"candidate {k}"


def select(
    times: Sequence[float],
    judge: TimedJudge,
    principle: bool = False,
    size: int | None = None,
    design: ArrivingSwiss | None = None,
    **config: Any,
) -> SelectionResult:
    async def go() -> SelectionResult:
        return await select_arriving(
            arriving(times),
            size if size is not None else len(times),
            judge.pairwise,
            judge.principle if principle else None,
            SelectionConfig(strategy="swiss", **config),
            design,
        )

    return on_clock(go)


schedules = st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=14).map(sorted)


@settings(max_examples=60, deadline=None)
@given(schedules, st.integers(0, 99), st.booleans(), st.integers(0, 4), st.sampled_from([1.0, 2.0, None]))
def test_every_arrival_is_judged_within_a_full_swiss_budget(
    times: list[float], seed: int, swap: bool, fail_every: int, matches_per_round: float | None
) -> None:
    n = len(times)
    quality = [float((7 * k) % 11) for k in range(n)]
    judge = TimedJudge(quality, fail_every=fail_every)
    result = select(times, judge, design=ArrivingSwiss(None, matches_per_round), seed=seed, swap=swap)
    swiss_pairs = Swiss().pairs_for(n)
    calls_per_pair = 2 if swap else 1
    assert len(result.comparisons) <= swiss_pairs
    if n >= 2:
        assert {k for c in result.comparisons for k in (c.i, c.j)} == set(range(n))
        assert len(result.comparisons) == swiss_pairs  # the whole budget is spent, no more
    # Retries are outside a Swiss's budget, as in select_best: each call is made at most twice.
    assert result.pairwise_calls == len(judge.sent) <= 2 * calls_per_pair * swiss_pairs
    assert all(0 <= c.i < n and 0 <= c.j < n and c.i != c.j for c in result.comparisons)


@settings(max_examples=40, deadline=None)
@given(schedules, st.integers(0, 60), st.integers(0, 3), st.integers(0, 99))
def test_a_call_budget_is_never_exceeded(times: list[float], budget: int, fail_every: int, seed: int) -> None:
    judge = TimedJudge([float(k) for k in range(len(times))], fail_every=fail_every)
    result = select(times, judge, seed=seed, max_pairwise_calls=budget, retries=2)
    assert len(judge.sent) == result.pairwise_calls <= budget


@settings(max_examples=30, deadline=None)
@given(schedules, st.integers(0, 99), st.booleans())
def test_the_result_has_select_bests_shape(times: list[float], seed: int, principle: bool) -> None:
    n = len(times)
    judge = TimedJudge([float((5 * k) % 7) + k / 100 for k in range(n)])
    got = select(times, judge, principle=principle, seed=seed)
    reference = on_clock(
        lambda: select_best(n, judge.pairwise, judge.principle if principle else None, SelectionConfig(seed=seed))
    )
    assert type(got) is type(reference) and got.model_fields_set == reference.model_fields_set
    assert sorted(got.ranking) == list(range(n)) and got.best == got.ranking[0]
    assert [c.index for c in got.candidates] == list(range(n))
    assert [got.ranking.index(c.index) + 1 for c in got.candidates] == [c.rank for c in got.candidates]
    assert len(got.principle_results) == n
    assert got.principle_calls == reference.principle_calls
    assert got.pairwise_calls == sum(c.calls for c in got.comparisons)
    # each candidate's support: two verdicts per match (both orders), one for its principle reward
    for c in got.candidates:
        matches = sum(k == c.index for cmp in got.comparisons for k in (cmp.i, cmp.j))
        assert c.planned_verdicts == 2 * matches + (principle and n > 1)


@settings(max_examples=25, deadline=None)
@given(schedules, st.integers(0, 99))
def test_the_same_seed_and_verdicts_give_the_same_result(times: list[float], seed: int) -> None:
    quality = [float((3 * k) % 5) for k in range(len(times))]  # ties: the seeded order decides
    first = select(times, TimedJudge(quality), seed=seed).model_dump(exclude={"elapsed_s"})
    again = select(times, TimedJudge(quality), seed=seed).model_dump(exclude={"elapsed_s"})
    assert first == again


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=2, max_size=14, unique=True), schedules, st.integers(0, 99))
def test_with_a_noiseless_judge_the_chosen_one_lost_no_match(quality: list[int], times: list[float], seed: int) -> None:
    # Unlike a full Swiss, the design does not promise that the two best ever meet (bench/results/arrivals.md
    # measures how often each finds the best under a noisy judge), but its choice must stand on its verdicts.
    times = (times * len(quality))[: len(quality)]
    result = select(sorted(times), TimedJudge([float(q) for q in quality]), seed=seed)
    chosen = result.candidates[result.best]
    assert chosen.losses == 0 and chosen.wins >= 1


def test_judging_starts_with_the_second_arrival_and_a_straggler_costs_one_round() -> None:
    n = 8
    times = [0.0] * (n - 1) + [20.0]  # seven at once, the last long after they are done
    judge = TimedJudge([float(k) for k in range(n)])
    result = select(times, judge)
    rounds_after_last = {t for t, _, _ in judge.sent if t >= 20.0}
    assert min(t for t, _, _ in judge.sent) == 0.0  # before the group was complete
    assert rounds_after_last == {20.0}  # one round, sent at once, when the last arrived
    last = [(i, j) for t, i, j in judge.sent if t == 20.0]
    assert all(n - 1 in pair for pair in last)  # spent on placing the straggler
    assert sum(n - 1 in (c.i, c.j) for c in result.comparisons) == Swiss().rounds_for(n)
    assert result.pairwise_calls == 2 * Swiss().pairs_for(n)


def test_the_answer_comes_about_one_call_after_spread_arrivals() -> None:
    times = [0.5 * k for k in range(16)]
    judge = TimedJudge([float(k) for k in range(16)])

    async def go() -> float:
        loop = asyncio.get_running_loop()
        await select_arriving(arriving(times), 16, judge.pairwise, None, SelectionConfig(strategy="swiss"))
        return loop.time()

    assert on_clock(go) - times[-1] <= 2 * judge.call_s  # today's full Swiss: four rounds after the last arrival


def test_each_arrival_is_asked_its_principle_reward_when_it_arrives() -> None:
    times = [0.0, 3.0, 7.0]
    judge = TimedJudge([1.0, 3.0, 2.0])
    result = select(times, judge, principle=True)
    assert sorted(judge.principle_asked) == [0, 1, 2] and result.principle_calls == 3
    assert [r[0].reward for r in result.principle_results] == [1.0, 3.0, 2.0]
    assert result.best == 1


@pytest.mark.parametrize("times", [[0.0] * 5, [0.0, 1.0, 2.0, 3.0, 4.0]])
def test_a_group_that_closes_short_is_judged_with_the_budget_of_its_arrivals(times: list[float]) -> None:
    judge = TimedJudge([float(k) for k in range(5)])
    result = select(times, judge, size=16)  # the source ends after five of sixteen
    assert len(result.candidates) == 5 and len(result.comparisons) == Swiss().pairs_for(5)
    assert result.best == 4


def test_a_lone_arrival_is_answered_as_select_best_answers_one() -> None:
    judge = TimedJudge([1.0])
    result = select([0.0], judge, size=4)
    assert result.best == 0 and result.pairwise_calls == 0 and judge.sent == []


def test_other_designs_judge_the_whole_group_once_the_source_ends() -> None:
    judge = TimedJudge([0.0, 2.0, 1.0])
    config = SelectionConfig(strategy="round_robin")

    async def go() -> SelectionResult:
        return await select_arriving(arriving([0.0, 1.0, 2.0]), 3, judge.pairwise, None, config)

    result = on_clock(go)
    assert min(t for t, _, _ in judge.sent) == 2.0  # nothing before the last arrival
    assert result.best == 1 and len(result.comparisons) == 3


def test_more_arrivals_than_the_size_is_an_error_and_leaves_nothing_running() -> None:
    judge = TimedJudge([float(k) for k in range(4)])

    async def go() -> None:
        config = SelectionConfig(strategy="swiss")
        with pytest.raises(ValueError, match="more than size=3"):
            await select_arriving(arriving([0.0, 0.0, 0.0, 5.0]), 3, judge.pairwise, None, config)
        for _ in range(3):  # cancelled tasks finish on the next turns of the loop
            await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    on_clock(go)
