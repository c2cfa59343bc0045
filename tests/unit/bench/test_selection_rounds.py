"""The fewer-rounds benchmark's own parts: the designs it compares spend 4N calls in the rounds it says, and the
paired difference is a mean with its interval."""

from __future__ import annotations

import asyncio

import numpy as np

from bench import selection_rounds as sr
from bench.simulated_judges import VARIANTS


def test_half_the_candidates_a_round_takes_four_rounds_where_the_default_takes_eight() -> None:
    results = asyncio.run(sr.run(VARIANTS["base"], 16, trials=3, seed=0))
    rounds = {name: got["rounds"].mean() for name, got in results.items()}
    calls = {name: got["calls"].max() for name, got in results.items()}
    assert rounds[sr.OLD_DEFAULT] == 8 and rounds["adaptive + swap, 4N, N/2 pairs a round"] == 4
    assert rounds[sr.WHOLE] <= 4
    round_robin = [name for name in results if name.startswith(sr.YARDSTICK)]
    assert all(rounds[name] == 1 and calls[name] == 16 * 15 for name in round_robin)
    assert all(calls[name] <= 64 for name in results if name not in round_robin)


def test_the_target_is_decided_by_the_interval_and_the_rounds() -> None:
    rr = np.zeros(1000)
    rr[::2] = 1.0
    same, four = rr.copy(), np.full(1000, 4.0)
    assert sr.target(same, rr, four) == "**met**"
    assert sr.target(same, rr, four + 1) == "over 4 rounds"
    worse = rr.copy()
    worse[:200:2] = 0.0  # 100 fewer hits in 1000: -0.1
    assert sr.target(worse, rr, four).startswith("missed by 0.09")
    slightly = rr.copy()
    slightly[:20:2] = 0.0  # -0.01 on the mean: the interval reaches below
    assert sr.target(slightly, rr, four).startswith("not shown")


def test_the_paired_difference_is_the_mean_with_a_95_percent_interval() -> None:
    a, b = np.array([1.0, 1.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0, 0.0])
    d = a - b
    assert sr.paired(a, b) == f"+0.500 ± {1.96 * d.std(ddof=1) / 2:.3f}"
