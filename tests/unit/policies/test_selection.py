"""The selection entry point and the pair designs, with judges whose answers the test controls."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.simulated_judges import JudgeModel, SimulatedJudges
from policies.ensemble import EnsembleWeights, combine, standardize
from policies.pairings import DesignState, RoundRobin
from policies.selection import SelectionConfig, select_best
from policies.verdicts import PairVerdict, PairwiseResult, PrincipleResult

PAIR_STRATEGIES = ["circular", "knockout", "swiss", "round_robin", "adaptive"]


class ExactJudge:
    """Knows the true qualities. ``bias`` is added to the first-shown margin; ``fail`` fails every k-th call."""

    def __init__(self, quality: list[float], bias: float = 0.0, fail_every: int = 0) -> None:
        self.quality = quality
        self.bias = bias
        self.fail_every = fail_every
        self.calls: list[tuple[int, int]] = []
        self.principle_calls = 0

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        self.calls.append((first, second))
        if self.fail_every and len(self.calls) % self.fail_every == 0:
            return PairwiseResult(failure="unreadable", raw_text="garbage")
        gap = self.quality[first] - self.quality[second]
        margin = float(np.clip(np.sign(gap) * 1.5 + self.bias, -2.5, 2.5))
        lo, hi = min(self.quality), max(self.quality)

        def helpfulness(q: float) -> float:
            return 1 + 4 * (q - lo) / (hi - lo) if hi > lo else 3.0

        return PairwiseResult(
            verdict=PairVerdict(
                score_1=helpfulness(self.quality[first]),
                score_2=helpfulness(self.quality[second]),
                ranking=3.5 - margin,
            )
        )

    async def principle(self, index: int) -> list[PrincipleResult]:
        self.principle_calls += 1
        return [PrincipleResult(principle="correctness", reward=self.quality[index])]


def run(n: int, judge: ExactJudge | SimulatedJudges | None, principle: bool = False, **config):
    pairwise = judge.pairwise if judge is not None else None
    principle_fn = judge.principle if (judge is not None and principle) else None
    return asyncio.run(select_best(n, pairwise, principle_fn, SelectionConfig(**config)))


distinct_qualities = st.lists(st.integers(-1000, 1000), min_size=2, max_size=12, unique=True)


@settings(max_examples=40, deadline=None)
@given(distinct_qualities, st.sampled_from(["knockout", "swiss", "round_robin", "adaptive"]), st.integers(0, 99))
def test_a_noiseless_judge_leads_every_design_to_the_true_best(quality: list[int], strategy: str, seed: int) -> None:
    q = [float(x) for x in quality]
    budget = 2 * len(q) * (len(q) - 1) if strategy == "adaptive" else None
    result = run(
        len(q),
        ExactJudge(q),
        strategy=strategy,
        seed=seed,
        max_pairwise_calls=budget,
        adaptive_stop_confidence=1.0,
    )
    assert result.best == int(np.argmax(q))


@settings(max_examples=40, deadline=None)
@given(distinct_qualities, st.integers(0, 99))
def test_circular_picks_a_candidate_that_beats_both_neighbours(quality: list[int], seed: int) -> None:
    # Circular compares neighbours only, so a noiseless judge guarantees a local maximum, not the global one.
    q = [float(x) for x in quality]
    n = len(q)
    best = run(n, ExactJudge(q), strategy="circular", seed=seed, weights=EnsembleWeights(helpfulness=0)).best
    assert all(q[best] > q[k] for k in {(best - 1) % n, (best + 1) % n} - {best})


def test_principle_only_ranks_by_reward() -> None:
    q = [0.3, 2.0, -1.0, 1.0]
    judge = ExactJudge(q)
    result = run(4, judge, principle=True, strategy="principle")
    assert result.best == 1 and result.ranking == [1, 3, 0, 2]
    assert result.pairwise_calls == 0 and result.principle_calls == 4 and judge.calls == []


@pytest.mark.parametrize("strategy", PAIR_STRATEGIES)
def test_swapping_cancels_a_constant_position_bias_in_the_whole_selection(strategy: str) -> None:
    q = [0.1, 1.7, -0.4, 0.9, 1.2, -2.0, 0.5]
    budget = 40 if strategy == "adaptive" else None
    unbiased = run(7, ExactJudge(q), strategy=strategy, seed=3, max_pairwise_calls=budget)
    biased = run(7, ExactJudge(q, bias=0.8), strategy=strategy, seed=3, max_pairwise_calls=budget)
    assert [c.margin for c in biased.comparisons] == pytest.approx([c.margin for c in unbiased.comparisons])
    assert biased.ranking == unbiased.ranking


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 14),
    st.sampled_from(PAIR_STRATEGIES),
    st.integers(0, 60),
    st.booleans(),
    st.integers(0, 3),
)
def test_the_budget_is_never_exceeded(n: int, strategy: str, budget: int, swap: bool, fail_every: int) -> None:
    judge = ExactJudge([float(k * 7 % 11) + k / 100 for k in range(n)], fail_every=fail_every)
    result = run(n, judge, strategy=strategy, swap=swap, max_pairwise_calls=budget, retries=2)
    assert len(judge.calls) == result.pairwise_calls <= budget
    assert 0 <= result.best < n and sorted(result.ranking) == list(range(n))


@pytest.mark.parametrize("strategy", [*PAIR_STRATEGIES, "principle"])
def test_one_candidate_needs_no_judge_call(strategy: str) -> None:
    judge = ExactJudge([1.0])
    result = run(1, judge, principle=True, strategy=strategy)
    assert result.best == 0 and result.pairwise_calls == result.principle_calls == result.rounds == 0
    assert judge.calls == [] and judge.principle_calls == 0


@pytest.mark.parametrize(
    ("strategy", "n", "pairs", "rounds"),
    [
        ("circular", 16, 16, 1),
        ("circular", 2, 1, 1),
        ("knockout", 16, 15, 4),
        ("knockout", 13, 12, 4),
        ("round_robin", 9, 36, 1),
        ("swiss", 16, 32, 4),
    ],
)
def test_design_costs(strategy: str, n: int, pairs: int, rounds: int) -> None:
    judge = ExactJudge([math.sin(k) for k in range(n)])
    result = run(n, judge, strategy=strategy)
    assert result.pairwise_calls == 2 * pairs and result.rounds == rounds
    assert len(result.comparisons) == pairs
    # With swap every pair is judged in both orders.
    assert Counter(frozenset(c) for c in judge.calls) == Counter({frozenset(c): 2 for c in judge.calls})


def test_round_robin_blocks_give_every_candidate_one_match() -> None:
    n = 8
    pairs = RoundRobin().next_pairs(
        DesignState(n=n, comparisons=[], rng=np.random.default_rng(0), tiebreak=np.arange(n))
    )
    assert len(set(map(frozenset, pairs))) == n * (n - 1) // 2
    for block in range(n - 1):
        counts = Counter(k for pair in pairs[block * 4 : (block + 1) * 4] for k in pair)
        assert counts == Counter(range(n))


def test_the_same_seed_and_answers_give_the_same_choice() -> None:
    def once(seed: int):
        judges = SimulatedJudges(np.linspace(-1, 1, 12), JudgeModel(), np.random.default_rng(5))
        return asyncio.run(select_best(12, judges.pairwise, judges.principle, SelectionConfig(seed=seed)))

    a, b = once(11), once(11)
    assert a.model_dump(exclude={"elapsed_s"}) == b.model_dump(exclude={"elapsed_s"})


def test_failed_calls_are_retried_within_the_budget_and_counted() -> None:
    judge = ExactJudge([0.0, 1.0, 2.0, 3.0], fail_every=2)
    result = run(4, judge, strategy="round_robin", retries=1)
    assert result.failed_calls == len(judge.calls) // 2
    assert result.pairwise_calls == len(judge.calls) > 12
    assert result.best == 3


def test_a_judge_that_is_down_degrades_to_the_other_judge() -> None:
    class Down(ExactJudge):
        async def pairwise(self, first: int, second: int) -> PairwiseResult:
            raise ConnectionError("replica unavailable")

    judge = Down([0.0, 5.0, 1.0])
    result = run(3, judge, principle=True, strategy="round_robin", retries=0)
    assert result.best == 1
    assert result.failed_calls == 6
    assert "pairwise judge gave no usable verdict" in result.degraded
    failure = PairwiseResult(failure="judge error: ConnectionError: replica unavailable")
    assert failure.failure is not None and "ConnectionError" in failure.failure


def test_a_missing_pairwise_judge_falls_back_to_principle_rewards() -> None:
    judge = ExactJudge([0.0, 5.0, 1.0])
    result = asyncio.run(select_best(3, None, judge.principle, SelectionConfig(strategy="knockout")))
    assert result.best == 1 and result.degraded


def test_a_hanging_judge_times_out() -> None:
    class Hangs(ExactJudge):
        async def pairwise(self, first: int, second: int) -> PairwiseResult:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

    result = run(3, Hangs([0.0, 1.0, 2.0]), strategy="round_robin", call_timeout_s=0.05, retries=0)
    assert result.failed_calls == 6 and result.elapsed_s < 5


def test_no_judge_at_all_is_an_error() -> None:
    with pytest.raises(ValueError, match="no usable judge"):
        asyncio.run(select_best(3, None, None))
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(select_best(0, None, None))


def test_config_errors_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="strategy"):
        SelectionConfig(strategy="best_guess")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use_principle"):
        SelectionConfig(strategy="principle", use_principle=False)
    with pytest.raises(ValueError, match="at least one ensemble weight"):
        EnsembleWeights(pairwise=0, principle=0, helpfulness=0)


@given(st.lists(st.floats(-1e6, 1e6) | st.just(float("nan")), min_size=1, max_size=20))
def test_standardize_is_centred_and_ignores_missing(values: list[float]) -> None:
    z = standardize(np.array(values))
    present = np.isfinite(values)
    assert np.all(z[~present] == 0)
    if present.sum() >= 2 and np.std(np.array(values)[present]) > 0:
        assert abs(z[present].mean()) < 1e-6


def test_combine_weights_each_standardised_signal() -> None:
    strength = np.array([0.0, 1.0, 2.0])
    principle = np.array([10.0, 30.0, 20.0])
    only_pairwise = combine(3, EnsembleWeights(pairwise=1, principle=0, helpfulness=0), strength, principle)
    assert int(np.argmax(only_pairwise)) == 2
    principle_heavy = combine(3, EnsembleWeights(pairwise=0.1, principle=1, helpfulness=0), strength, principle)
    assert int(np.argmax(principle_heavy)) == 1


def test_unreadable_principle_answers_are_counted_and_flagged() -> None:
    class HalfReadable(ExactJudge):
        async def principle(self, index: int) -> list[PrincipleResult]:
            if index % 2:
                return [PrincipleResult(principle="correctness", failure="no Final Judgement")]
            return await super().principle(index)

    result = run(4, HalfReadable([0.0, 9.0, 2.0, 1.0]), principle=True, strategy="principle")
    assert result.failed_calls == 2
    assert "2 of 4 candidates have no principle reward" in result.degraded
    assert result.best == 2  # the best readable one; candidate 1 has no reward
