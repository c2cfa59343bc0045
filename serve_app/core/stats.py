"""Router metrics, exported by Ray on its Prometheus endpoint (names get Ray's ``ray_`` prefix there).

Created inside the replica: ray.serve.metrics objects need a running Ray worker.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any

from ray.serve.metrics import Counter, Histogram

from policies.health import JudgeHealth
from policies.health import events as health_events
from serve_app.config import DEFAULT_TENANT

_LATENCY_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600]


class RouterMetrics:
    def __init__(self) -> None:
        self.judge_calls = Counter(
            "genrm_judge_calls",
            description="Judge calls by judge, outcome (ok, parse_failure, error, timeout) and tenant.",
            tag_keys=("judge", "outcome", "tenant"),
        )
        self.judge_latency = Histogram(
            "genrm_judge_latency_seconds",
            description="Latency of one judge call (a principle call covers all principles of one candidate).",
            boundaries=_LATENCY_BOUNDARIES,
            tag_keys=("judge",),
        )
        self.parse_failures = Counter(
            "genrm_parse_failures",
            description="Judge answers that could not be read into a verdict.",
            tag_keys=("judge",),
        )
        self.retries = Counter(
            "genrm_retries",
            description="Pairwise calls repeated after a failed attempt.",
            tag_keys=("judge",),
        )
        self.swap_inconsistency = Histogram(
            "genrm_swap_inconsistency",
            description="Per request: share of pairs whose two orders disagree on the winner.",
            boundaries=[0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0],
            tag_keys=("strategy",),
        )
        self.degraded = Counter(
            "genrm_degraded_answers",
            description="Answers that rest on less than was asked (failed calls, a judge down).",
            tag_keys=("route",),
        )
        self.judge_tokens = Counter(
            "genrm_judge_tokens",
            description="Tokens of the judges' answers (their usage) by judge, kind (prompt, completion) and tenant.",
            tag_keys=("judge", "kind", "tenant"),
        )
        self.requests = Counter(
            "genrm_requests",
            description="Requests by route, HTTP status and tenant.",
            tag_keys=("route", "status", "tenant"),
        )
        self.request_latency = Histogram(
            "genrm_request_latency_seconds",
            description="End-to-end latency of a best-of-N or rank request inside the router.",
            boundaries=_LATENCY_BOUNDARIES,
            tag_keys=("route",),
        )
        self.judge_health = Counter(
            "genrm_judge_health_events",
            description="Judge health (policies.health) as counts whose ratios are its shares: cut_off/call, "
            "parse_failure/call, tie/verdict, flip/two_order, cyclic_triple/judged_triple; principle: "
            "cut_off/answer, failure/answer.",
            tag_keys=("judge", "event", "tenant"),
        )
        # Ray's histograms take positive boundaries only: the correlation is recorded shifted by one
        self.length_correlation = Histogram(
            "genrm_length_correlation_plus_one",
            description="Per judged group: 1 + the Spearman correlation of the candidates' scores with their lengths "
            "(0: longer is always worse, 1: no relation, 2: longer is always better).",
            boundaries=[0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0],
            tag_keys=("tenant",),
        )


class NullMetrics:
    """Metrics that drop every update: for the core run outside a Ray worker (in-process tests, the fleet
    simulation), where ray.serve.metrics objects cannot be created."""

    class _Instrument:
        def inc(self, *args: Any, **kwargs: Any) -> None: ...

        def observe(self, *args: Any, **kwargs: Any) -> None: ...

    def __getattr__(self, name: str) -> Any:
        return self._Instrument()


@dataclass
class RequestStats:
    """What one request observed, recorded in one go after the response is sent: each Ray metric update costs a
    few hundred microseconds, which per judge call would be most of the router's own latency."""

    route: str
    tenant: str = DEFAULT_TENANT  # who asked (router.tenants; the token names it)
    calls: Tally[tuple[str, str]] = field(default_factory=Tally)  # (judge, outcome) -> count
    tokens: Tally[tuple[str, str]] = field(default_factory=Tally)  # (judge, "prompt" | "completion") -> tokens
    latencies: list[tuple[str, float]] = field(default_factory=list)  # (judge, seconds) per call, once sent
    call_queued_s: float = 0.0  # summed over calls: time spent waiting for a free judge slot in the router
    parse_failures: Tally[str] = field(default_factory=Tally)
    retries: Tally[str] = field(default_factory=Tally)
    status: str | None = None
    latency_s: float | None = None
    strategy: str | None = None
    swap_inconsistency: float | None = None
    degraded: bool = False
    health: JudgeHealth | None = None  # the judges' health in this request's judging (one group)


def record(metrics: RouterMetrics, stats: RequestStats) -> None:
    # Ray counters reject increments of 0, so every count below is skipped unless positive.
    for (judge, outcome), count in (+stats.calls).items():
        metrics.judge_calls.inc(count, tags={"judge": judge, "outcome": outcome, "tenant": stats.tenant})
    for (judge, kind), count in (+stats.tokens).items():
        metrics.judge_tokens.inc(count, tags={"judge": judge, "kind": kind, "tenant": stats.tenant})
    for judge, seconds in stats.latencies:
        metrics.judge_latency.observe(seconds, tags={"judge": judge})
    for judge, count in (+stats.parse_failures).items():
        metrics.parse_failures.inc(count, tags={"judge": judge})
    for judge, count in (+stats.retries).items():
        metrics.retries.inc(count, tags={"judge": judge})
    if stats.status is not None:
        metrics.requests.inc(tags={"route": stats.route, "status": stats.status, "tenant": stats.tenant})
    if stats.latency_s is not None:
        metrics.request_latency.observe(stats.latency_s, tags={"route": stats.route})
    if stats.swap_inconsistency is not None and stats.strategy is not None:
        metrics.swap_inconsistency.observe(stats.swap_inconsistency, tags={"strategy": stats.strategy})
    if stats.degraded:
        metrics.degraded.inc(tags={"route": stats.route})
    if stats.health is not None:
        for (judge, event), count in health_events(stats.health).items():
            if count > 0:
                metrics.judge_health.inc(count, tags={"judge": judge, "event": event, "tenant": stats.tenant})
        if stats.health.length_correlation is not None:
            metrics.length_correlation.observe(1 + stats.health.length_correlation, tags={"tenant": stats.tenant})
