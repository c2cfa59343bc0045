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
    assert rounds[sr.DEFAULT] == 8 and rounds["adaptive + swap, 4N, N/2 pairs a round"] == 4
    assert rounds[sr.YARDSTICK] == 1 and calls[sr.YARDSTICK] == 16 * 15
    assert all(calls[name] <= 64 for name in results if name != sr.YARDSTICK)


def test_the_paired_difference_is_the_mean_with_a_95_percent_interval() -> None:
    a, b = np.array([1.0, 1.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0, 0.0])
    d = a - b
    assert sr.paired(a, b) == f"+0.500 ± {1.96 * d.std(ddof=1) / 2:.3f}"
