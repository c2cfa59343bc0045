"""The tenant fairness benchmark's own parts: quantiles, arrivals, the verdict, the simulated replica's step, and a
small run through the router's real core with short judge answers."""

from __future__ import annotations

import math
import random

import pytest

from bench import fleet_sim as sim
from bench import tenant_fairness as tf


def test_percentile_is_the_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert tf.percentile(values, 0.5) == 3.0
    assert tf.percentile(values, 0.9) == 5.0 and tf.percentile(values, 0.0) == 1.0
    assert math.isnan(tf.percentile([], 0.5))


def test_arrivals_are_poisson_at_the_rate() -> None:
    times = tf.arrivals(2.0, 20_000, random.Random(0))
    assert times == sorted(times) and len(times) == 20_000
    assert times[-1] / len(times) == pytest.approx(0.5, rel=0.03)  # mean gap 1 / rate


def test_the_verdict_says_met_or_missed_by_how_much() -> None:
    assert tf.verdict(1.2).startswith("met")
    assert tf.verdict(1.5).startswith("met")
    assert tf.verdict(3.0) == "missed by 2.00×"


def test_the_step_model_is_fleet_sims() -> None:
    assert tf.step_s(0) == sim.STEP_BASE_S
    assert tf.step_s(100) == pytest.approx(sim.STEP_BASE_S + 100 * sim.STEP_PER_SEQ_S)


def test_a_short_run_keeps_the_light_tenant_ahead_of_the_heavy_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers of ~64 tokens instead of ~8k: the same machinery in a second. The heavy tenant is refused with 429 at
    its own limits, the light tenant never is, both are answered, and each one's judge tokens are its own; without
    tenants the light tenant waits behind the heavy backlog."""
    monkeypatch.setattr(sim, "MEDIAN_TOKENS", 64.0)
    monkeypatch.setattr(sim, "MAX_TOKENS", 128)
    case = tf.measure("rank", sim.MAX_NUM_SEQS, light_groups=12, one_queue=True)
    assert case.capacity > 0
    loaded, alone, fifo = case.loaded, case.alone, case.one_queue
    assert fifo is not None
    assert alone.light.answered == loaded.light.answered == 12 and not loaded.light.refused
    assert loaded.heavy.refused[429] > 0 and loaded.heavy.throughput > 0
    assert loaded.tokens["light"]["completion"] > 0 and loaded.tokens["heavy"]["completion"] > 0
    assert loaded.tokens["heavy"]["completion"] > 5 * loaded.tokens["light"]["completion"]
    assert alone.tokens["heavy"] == {"prompt": 0, "completion": 0}
    one_queue_p50 = tf.percentile(fifo.light.latencies, 0.5)
    assert one_queue_p50 > 2 * tf.percentile(loaded.light.latencies, 0.5)  # what the tenants buy
    text = tf.report([case], "test CPU", 12, 1.0)
    assert "| `/v1/rank` | 128 |" in text and "Without `router.tenants`" in text


def test_a_setup_names_the_lane_and_the_heavy_tenants_limits() -> None:
    assert tf.setup("none") == (None, {})
    assert tf.setup("32") == (32, {})
    assert tf.setup("none/16") == (None, {"max_judge_calls": 16})
    assert tf.setup("none/16/24") == (None, {"max_judge_calls": 16, "max_concurrent_requests": 24})


def test_the_heavy_tenants_judge_call_cap_keeps_the_engines_batch_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short answers again: capped at 4 calls, the heavy tenant leaves the replica's batch at most those and the
    light tenant's few; the report names the limits."""
    monkeypatch.setattr(sim, "MEDIAN_TOKENS", 64.0)
    monkeypatch.setattr(sim, "MAX_TOKENS", 128)
    limits = {"max_judge_calls": 4, "max_concurrent_requests": 24}
    case = tf.measure("rank", None, light_groups=6, one_queue=False, heavy_limits=limits)
    assert case.loaded.light.answered == 6 and case.loaded.heavy.throughput > 0
    assert case.loaded.mean_batch <= 4 + 2 * tf.ROLLOUTS
    assert "`max_concurrent_requests` 24, `max_judge_calls` 4 |" in tf.report([case], "test CPU", 6, 1.0)
