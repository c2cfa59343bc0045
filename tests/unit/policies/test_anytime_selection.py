"""Anytime selection (``SelectionConfig.deadline_s``): when the deadline passes, the calls still running are cancelled
and the answer is the best so far, scored from the verdicts back by then."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.selection import SelectionConfig, select_best
from policies.verdicts import PairVerdict, PairwiseResult, PrincipleResult


class SlowJudge:
    """Prefers the candidate with the higher quality; each call takes ``delay(first, second)`` seconds and records
    whether it answered or was cancelled."""

    def __init__(self, quality: list[float], delay: Callable[[int, int], float]) -> None:
        self.quality = quality
        self.delay = delay
        self.started: list[tuple[float, int, int]] = []
        self.answered = self.cancelled = self.inflight = 0
        self.principle_answered = self.principle_cancelled = 0

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        self.started.append((time.perf_counter(), first, second))
        self.inflight += 1
        try:
            await asyncio.sleep(self.delay(first, second))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.inflight -= 1
        self.answered += 1
        better = self.quality[first] > self.quality[second]
        return PairwiseResult(
            verdict=PairVerdict(score_1=4 if better else 2, score_2=2 if better else 4, ranking=2 if better else 5)
        )

    async def principle(self, index: int) -> list[PrincipleResult]:
        try:
            await asyncio.sleep(self.delay(index, index))
        except asyncio.CancelledError:
            self.principle_cancelled += 1
            raise
        self.principle_answered += 1
        return [PrincipleResult(principle="correct", reward=self.quality[index])]


QUALITY = [0.0, 3.0, 1.0, 2.0, 0.5, 1.5]


def _select(judge: SlowJudge, principle: bool = False, **config: object):
    return asyncio.run(
        select_best(
            len(judge.quality), judge.pairwise, judge.principle if principle else None, SelectionConfig(**config)
        )
    )


def test_at_the_deadline_the_answer_is_the_best_of_the_verdicts_back_and_the_rest_are_cancelled() -> None:
    # Pairs with candidate 1 (the best) answer at once; every other pair would take a minute.
    judge = SlowJudge(QUALITY, lambda a, b: 0.01 if 1 in (a, b) else 60.0)
    started = time.perf_counter()
    result = _select(judge, strategy="round_robin", swap=True, deadline_s=0.3)
    assert time.perf_counter() - started < 5
    assert result.deadline_reached and result.best == 1
    slow_calls = 2 * (15 - 5)  # round robin over 6, both orders, minus the 5 pairs with candidate 1
    assert judge.answered == result.pairwise_calls == 10 and judge.cancelled == result.cancelled_calls == slow_calls
    assert judge.inflight == 0  # nothing keeps running after the answer
    best = next(c for c in result.candidates if c.index == 1)
    assert best.p_best is not None and best.p_best > 1 / len(QUALITY)
    assert any("deadline_s 0.3 s passed" in d for d in result.degraded)
    # Every planned pair is listed; the cut ones with no verdict, so they count against their candidates' support.
    assert len(result.comparisons) == 15 and sum(c.margin is not None for c in result.comparisons) == 5
    assert not any(c.valid for c in result.candidates if c.index != 1)


def test_a_design_that_ends_before_its_deadline_is_untouched() -> None:
    judge = SlowJudge(QUALITY, lambda a, b: 0.001)
    result = _select(judge, strategy="round_robin", swap=True, deadline_s=30)
    assert not result.deadline_reached and result.cancelled_calls == 0 and judge.cancelled == 0
    assert result.pairwise_calls == 30 and result.best == 1 and not result.degraded
    assert result == result.model_copy(update={"elapsed_s": result.elapsed_s})


def test_no_round_starts_after_the_deadline() -> None:
    """Adaptive rounds of 0.1 s each against a 0.25 s deadline: the third round is cut, no fourth is sent."""
    judge = SlowJudge(QUALITY, lambda a, b: 0.1)
    started = time.perf_counter()
    result = _select(judge, strategy="adaptive", swap=False, adaptive_pairs_per_round=2, deadline_s=0.25)
    assert result.deadline_reached and result.rounds == 3
    assert all(t - started < 0.25 for t, _, _ in judge.started)
    last_round = [c for c in result.comparisons if c.round == 2]
    assert last_round and all(c.calls == 0 and c.margin is None for c in last_round)
    assert judge.answered == result.pairwise_calls and judge.cancelled == result.cancelled_calls == len(last_round)


def test_principle_calls_cut_by_the_deadline_are_cancelled_not_failed() -> None:
    judge = SlowJudge(QUALITY, lambda a, b: 0.01 if a == b and a < 3 else 0.02 if a != b else 60.0)
    result = _select(judge, principle=True, strategy="circular", swap=False, deadline_s=0.3)
    assert result.deadline_reached and judge.principle_cancelled == 3
    assert result.principle_calls == 3 and result.failed_calls == 0 and result.cancelled_calls == 3
    assert [c.principle_reward is not None for c in sorted(result.candidates, key=lambda c: c.index)] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


@pytest.mark.parametrize("strategy", ["knockout", "swiss", "adaptive", "circular"])
def test_a_cut_design_ranks_by_score_not_by_a_half_played_tournament(strategy: str) -> None:
    judge = SlowJudge(QUALITY, lambda a, b: 0.01 if 1 in (a, b) else 60.0)
    result = _select(judge, strategy=strategy, swap=False, deadline_s=0.2)
    assert result.deadline_reached
    score = {c.index: c.score for c in result.candidates}
    assert result.ranking[0] == result.best
    assert all(score[a] >= score[b] for a, b in zip(result.ranking, result.ranking[1:], strict=False))


@settings(max_examples=25, deadline=None)
@given(
    delays=st.lists(st.floats(0.0, 0.04), min_size=15, max_size=15),
    deadline_s=st.floats(0.001, 0.05),
    swap=st.booleans(),
    strategy=st.sampled_from(["round_robin", "swiss", "adaptive", "knockout"]),
)
def test_every_call_is_answered_or_cancelled_and_none_outlives_the_answer(
    delays: list[float], deadline_s: float, swap: bool, strategy: str
) -> None:
    judge = SlowJudge(QUALITY, lambda a, b: delays[(3 * a + 5 * b) % 15])
    started = time.perf_counter()
    result = _select(judge, strategy=strategy, swap=swap, deadline_s=deadline_s)
    assert judge.inflight == 0
    assert len(judge.started) == judge.answered + judge.cancelled
    assert result.pairwise_calls == judge.answered and result.cancelled_calls == judge.cancelled
    assert all(t - started <= deadline_s + 0.01 for t, _, _ in judge.started)
    assert result.deadline_reached == (judge.cancelled > 0)
    assert result.best == result.ranking[0] and sorted(result.ranking) == list(range(len(QUALITY)))
