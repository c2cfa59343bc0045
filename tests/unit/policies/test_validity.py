"""A failed judgement is never a reward: each candidate's support (usable verdicts against the verdicts its design
planned), the valid mark, and the neutral value a protocol without a mark gets."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_selection import ExactJudge

from policies.selection import SelectionConfig, select_best
from policies.validity import neutral_fill, verdict_support
from policies.verdicts import PairwiseResult, PrincipleResult


class BlindToOne(ExactJudge):
    """Every call showing candidate ``blind`` fails (its text breaks the judge); the rest are answered."""

    def __init__(self, quality: list[float], blind: int) -> None:
        super().__init__(quality)
        self.blind = blind

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        if self.blind in (first, second):
            self.calls.append((first, second))
            return PairwiseResult(failure="unreadable", raw_text="")
        return await super().pairwise(first, second)

    async def principle(self, index: int) -> list[PrincipleResult]:
        if index == self.blind:
            return [PrincipleResult(principle="correctness", failure="unreadable")]
        return await super().principle(index)


@pytest.mark.parametrize("strategy", ["circular", "round_robin", "swiss", "knockout"])
def test_a_candidate_no_call_could_judge_is_invalid_and_the_others_stay_valid(strategy: str) -> None:
    judge = BlindToOne([0.0, 3.0, 1.0, 2.0, 4.0, 0.5], blind=4)
    result = asyncio.run(select_best(6, judge.pairwise, judge.principle, SelectionConfig(strategy=strategy, retries=0)))
    rows = sorted(result.candidates, key=lambda c: c.index)
    assert [c.valid for c in rows] == [k != 4 for k in range(6)]
    assert rows[4].verdicts == 0 and rows[4].planned_verdicts > 0
    assert all(c.verdicts <= c.planned_verdicts for c in rows)
    assert any("too few verdicts" in d for d in result.degraded)


class DownForOne(BlindToOne):
    """Every call showing candidate ``blind`` gets no answer (the judge raises, as a judge that is down does)."""

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        if self.blind in (first, second):
            raise ConnectionError("no replica")
        return await ExactJudge.pairwise(self, first, second)

    async def principle(self, index: int) -> list[PrincipleResult]:
        if index == self.blind:
            raise ConnectionError("no replica")
        return await ExactJudge.principle(self, index)


@pytest.mark.parametrize("down", [False, True])
def test_unanswered_calls_are_told_apart_from_unreadable_answers(down: bool) -> None:
    """A call that raised counts as unanswered on both its candidates' rows (and the principle request that
    raised on its candidate's); an answer that could not be read does not."""
    judge = (DownForOne if down else BlindToOne)([0.0, 3.0, 1.0, 2.0], blind=2)
    config = SelectionConfig(strategy="round_robin", retries=0)
    result = asyncio.run(select_best(4, judge.pairwise, judge.principle, config))
    rows = sorted(result.candidates, key=lambda c: c.index)
    if not down:
        assert [c.unanswered_calls for c in rows] == [0, 0, 0, 0]
        return
    # round robin in both orders: 2 calls with each of the 3 others, plus its own principle request
    assert [c.unanswered_calls for c in rows] == [2, 2, 7, 2]
    assert sum(c.unanswered for c in result.comparisons) == 6 == result.failed_calls - 1


def test_half_the_planned_verdicts_is_the_default_bar() -> None:
    from policies.debias import combine_orders
    from policies.verdicts import PairVerdict

    verdict = PairVerdict(score_1=4, score_2=2, ranking=2)
    # candidate 0: two pairs planned in both orders (4 verdicts); one order of one pair answered -> 1 of 4
    one = [combine_orders(0, 1, verdict, None), combine_orders(0, 2, None, None)]
    verdicts, planned, valid = verdict_support(3, one, 2, False, [True] * 3, 0.5)
    assert (verdicts[0], planned[0], valid[0]) == (1, 4, False)
    two = [combine_orders(0, 1, verdict, verdict), combine_orders(0, 2, None, None)]
    assert verdict_support(3, two, 2, False, [True] * 3, 0.5)[2][0] is True  # 2 of 4: the bar is met
    assert verdict_support(3, two, 2, False, [True] * 3, 0.75)[2][0] is False


@given(st.lists(st.tuples(st.floats(-10, 10), st.booleans()), min_size=1, max_size=16))
def test_an_invalid_reward_is_the_mean_of_the_valid_ones(rows: list[tuple[float, bool]]) -> None:
    rewards, valid = [r for r, _ in rows], [ok for _, ok in rows]
    filled = neutral_fill(rewards, valid)
    kept = [r for r, ok in rows if ok]
    for r, ok, f in zip(rewards, valid, filled, strict=True):
        assert f == r if ok else f == pytest.approx(sum(kept) / len(kept) if kept else 0.0)
    if kept:  # the group's mean, and so every valid advantage, is unchanged by the filled entries
        assert sum(filled) / len(filled) == pytest.approx(sum(kept) / len(kept), abs=1e-9)
