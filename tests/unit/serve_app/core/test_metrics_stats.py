"""Per-request metric collection: counts reach Ray's metrics as positive increments only."""

from __future__ import annotations

import pytest

pytest.importorskip("ray.serve", reason="the metrics module needs ray[serve]")

from serve_app.core.stats import RequestStats, record


class _Recorder:
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def inc(self, value: float = 1.0, tags: dict | None = None) -> None:
        if value <= 0:  # what ray.util.metrics.Counter does
            raise ValueError(f"value must be >0, got {value}")
        self.log.append((self.name, value, tags))

    def observe(self, value: float, tags: dict | None = None) -> None:
        self.log.append((self.name, value, tags))


class _Metrics:
    def __init__(self) -> None:
        self.log: list = []
        for name in (
            "judge_calls",
            "judge_latency",
            "parse_failures",
            "retries",
            "swap_inconsistency",
            "degraded",
            "requests",
            "request_latency",
        ):
            setattr(self, name, _Recorder(name, self.log))


def test_record_aggregates_and_skips_zero_counts() -> None:
    stats = RequestStats("best_of_n")
    stats.calls[("pairwise", "ok")] += 3
    stats.calls[("pairwise", "timeout")] += 0
    stats.parse_failures["pairwise"] += 0
    stats.retries["pairwise"] += 2
    stats.latencies += [("pairwise", 0.1), ("pairwise", 0.2)]
    stats.status, stats.latency_s, stats.strategy, stats.swap_inconsistency = "200", 1.5, "knockout", 0.25
    metrics = _Metrics()
    record(metrics, stats)  # type: ignore[arg-type]
    names = [(n, v) for n, v, _ in metrics.log]
    assert ("judge_calls", 3) in names and ("retries", 2) in names
    assert not any(n == "parse_failures" for n, _ in names)
    assert [v for n, v in names if n == "judge_latency"] == [0.1, 0.2]
    assert ("swap_inconsistency", 0.25) in names and ("request_latency", 1.5) in names
    assert not any(n == "degraded" for n, _ in names)


def test_the_real_metrics_take_every_record_including_judge_health() -> None:
    """Ray's own metric classes, built and fed as the router does (a bad histogram boundary, a zero increment or
    an unknown tag raises here, not first in a deployed replica)."""
    from policies.health import JudgeHealth
    from serve_app.core.stats import RouterMetrics

    stats = RequestStats("rank", tenant="job-a")
    stats.calls[("pairwise", "ok")] += 4
    stats.latencies.append(("pairwise", 0.3))
    stats.tokens.update({("pairwise", "prompt"): 1200, ("pairwise", "completion"): 36, ("principle", "prompt"): 0})
    stats.status, stats.latency_s = "200", 0.5
    stats.health = JudgeHealth(
        pairwise_calls=4,
        verdicts=4,
        two_order_comparisons=2,
        cut_off_share=0.25,
        tie_share=0.5,
        flip_share=0.5,
        length_correlation=-0.4,
        judged_triples=1,
        cycle_share=0.0,
        principle_answers=0,
    )
    record(RouterMetrics(), stats)
