"""The judges' autoscaling policy, through Ray Serve's own schema and context classes: replicas follow the engines'
sequences, not the handle calls."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployments.autoscaling import ENGINE_SEQUENCES, POLICY_PATH, EngineLoadPolicy

serve_config = pytest.importorskip("ray.serve.config")


def context(reports: dict[str, float], running: list[str], target: int = 1, ongoing_calls: float = 1) -> Any:
    return serve_config.AutoscalingContext(
        deployment_id=None,
        deployment_name="pairwise-genrm",
        app_name="genrm",
        current_num_replicas=len(running),
        target_num_replicas=target,
        running_replicas=running,
        total_num_requests=ongoing_calls,
        total_queued_requests=0,
        aggregated_metrics={ENGINE_SEQUENCES: reports} if reports else {},
        raw_metrics={},
        capacity_adjusted_min_replicas=1,
        capacity_adjusted_max_replicas=8,
        policy_state={},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=0.0,
        config=None,
    )


def test_one_batched_call_holding_many_sequences_scales_up() -> None:
    """One ongoing handle call (a batch of 96 judge requests) on one replica: Serve's default policy sees 1 request
    against a target of 32 and would scale down; the engine holds 96 sequences, so three replicas are asked for."""
    policy = EngineLoadPolicy(target_sequences=32)
    desired, _ = policy(context({"r1": 96.0}, ["r1"], ongoing_calls=1))
    assert desired == 3


def test_reports_of_replicas_no_longer_running_do_not_count_and_no_report_keeps_the_target() -> None:
    policy = EngineLoadPolicy(target_sequences=8)
    assert policy(context({"r1": 8.0, "gone": 64.0}, ["r1", "r2"], target=2))[0] == 1
    assert policy(context({}, ["r1", "r2"], target=2))[0] == 2  # replicas starting: no report yet


@given(st.lists(st.floats(min_value=0, max_value=1e4), min_size=1, max_size=8), st.floats(0.5, 256))
def test_replicas_cover_the_load_at_the_target(loads: list[float], target: float) -> None:
    running = [f"r{k}" for k in range(len(loads))]
    desired, _ = EngineLoadPolicy(target)(context(dict(zip(running, loads, strict=True)), running))
    assert desired >= 1 and desired * target >= sum(loads) - 1e-6
    assert desired == 1 or (desired - 1) * target < sum(loads)


def test_the_policy_is_accepted_by_serves_autoscaling_schema() -> None:
    config = serve_config.AutoscalingConfig(
        min_replicas=1,
        max_replicas=4,
        policy={"policy_function": POLICY_PATH, "policy_kwargs": {"target_sequences": 24}},
    )
    assert config.policy.policy_function == POLICY_PATH
    with pytest.raises(ValueError, match="target_sequences"):
        EngineLoadPolicy(0)
