"""Judge replicas follow their engines' real load: the sequences vLLM holds, not the handle calls Serve counts.

Serve's default policy scales on ongoing handle calls. A judge's calls are batches (``chat_many`` carries a whole
round, or one group's share of it), so one ongoing call may hold 1 or 64 sequences: the count says nothing about
the engine. Instead each judge replica reports, through Serve's ``record_autoscaling_stats`` hook (polled by the
replica every metrics interval and averaged by the controller over ``look_back_period_s``):

* ``engine_sequences`` — the requests its vLLM engine has accepted and not finished: the running batch plus the
  waiting queue (``AsyncLLM.get_num_unfinished_requests``, the count the engine's own scheduler works down);
* ``engine_queued_tokens`` — prompt tokens of those still in prefill (``get_num_queued_tokens``), reported for the
  dashboards.

:class:`EngineLoadPolicy` asks for ``ceil(Σ engine_sequences / target_sequences)`` replicas; Serve's wrapper then
applies the deployment's min/max, up/downscale delays and factors, as for its own policy. Scaling down is safe
during a burst: Serve stops routing to the replica it removes and waits up to ``graceful_shutdown_timeout_s`` for its
ongoing calls, which the configs set above the judge's longest call (``serve_app.config_check``).

The router bounds what reaches the engines (``max_inflight_calls`` per router replica): with autoscaling, set it to
at least ``max_replicas × target_sequences`` over the router replicas, or the queue stays in the router, where the
engines cannot see it (the config check says so).
"""

from __future__ import annotations

import math
from typing import Any

#: the names of the metrics a judge replica reports to Serve's autoscaler
ENGINE_SEQUENCES = "engine_sequences"
ENGINE_QUEUED_TOKENS = "engine_queued_tokens"
#: the import path a deployment's ``autoscaling_config.policy.policy_function`` names
POLICY_PATH = "deployments.autoscaling:EngineLoadPolicy"


def engine_load(engine_client: Any) -> dict[str, float]:
    """The load metrics of one vLLM engine client (AsyncLLM); zeros before the engine is up."""
    if engine_client is None:
        return {ENGINE_SEQUENCES: 0.0, ENGINE_QUEUED_TOKENS: 0.0}
    return {
        ENGINE_SEQUENCES: float(engine_client.get_num_unfinished_requests()),
        ENGINE_QUEUED_TOKENS: float(engine_client.get_num_queued_tokens()),
    }


class EngineLoadPolicy:
    """Serve autoscaling policy (a class: Serve builds it once with ``policy_kwargs``): as many replicas as the
    engines' sequences fill at ``target_sequences`` each. A tick with no report yet (replicas starting) keeps the
    current target, so a cold replica never reads as idle."""

    def __init__(self, target_sequences: float = 32.0) -> None:
        if not target_sequences > 0:
            raise ValueError(f"target_sequences must be > 0, got {target_sequences}")
        self.target_sequences = float(target_sequences)

    def __call__(self, ctx: Any) -> tuple[float, dict[str, Any]]:
        reported = (ctx.aggregated_metrics or {}).get(ENGINE_SEQUENCES) or {}
        running = set(ctx.running_replicas)
        loads = [value for replica, value in reported.items() if replica in running]
        if not loads:
            return ctx.target_num_replicas, {}
        return max(1, math.ceil(sum(loads) / self.target_sequences)), {}
