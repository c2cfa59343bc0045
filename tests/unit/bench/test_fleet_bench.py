"""The fleet benchmark's own parts: its arguments, the variants' configs, the hit-rate arithmetic from Ray's metrics
page, the targets' verdicts and the Ray-call replay."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from ray.serve.config import RequestRouterConfig

from bench import fleet_bench as fb
from bench.rl_burst import burst_config

ROOT = Path(__file__).resolve().parents[3]
PAIRWISE, PRINCIPLE = "smollm2-135m-pairwise", "smollm2-135m-principle"
DEPLOYMENT = "pairwise-genrm:smollm2-135m-pairwise"


def _sample(name: str, value: float, **labels: str) -> str:
    # the label set Ray's metrics agent adds to every replica's sample, trimmed
    labels = {"Component": "core_worker", "WorkerId": "w", **labels}
    pairs = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{pairs}}} {value}"


def _page(hits: dict[str, float], computed: dict[str, float], finished: dict[str, float], calls: float) -> str:
    tokens, success, serve = fb.TOKENS + "_total", fb.FINISHED + "_total", fb.RAY_CALLS + "_total"
    lines = [f"# TYPE {tokens} counter"]
    for replica, n in hits.items():
        lines.append(_sample(tokens, n, ReplicaId=replica, model_name=PAIRWISE, source="local_cache_hit"))
    for replica, n in computed.items():
        lines.append(_sample(tokens, n, ReplicaId=replica, model_name=PAIRWISE, source="local_compute"))
    lines.append(_sample(tokens, 999.0, ReplicaId="p1", model_name=PRINCIPLE, source="local_compute"))
    lines.append(f"# TYPE {success} counter")
    for replica, n in finished.items():
        lines.append(_sample(success, n, ReplicaId=replica, model_name=PAIRWISE, finished_reason="stop"))
    lines.append(f"# TYPE {serve} counter")
    lines.append(_sample(serve, calls, application="genrm", deployment=DEPLOYMENT, replica="r1", route="/v1/reward"))
    lines.append(_sample(serve, 4.0, application="genrm", deployment="Router", replica="x", route="/v1/reward"))
    return "\n".join(lines) + "\n"


def test_arguments_default_to_the_fleet_config_and_a_single_replica_with_the_fleets_cache() -> None:
    args = fb.parse_args([])
    assert args.config == ROOT / "configs" / "cpu-fleet.yaml"
    assert args.variants == ["single", "default", "affinity", "prefix"]
    assert args.single_kv_mib == 2 * args.kv_mib
    args = fb.parse_args(["--kv-mib", "300", "--single-kv-mib", "500", "--variants", "affinity"])
    assert (args.kv_mib, args.single_kv_mib, args.variants) == (300, 500, ["affinity"])
    with pytest.raises(SystemExit):
        fb.parse_args(["--groups", "1"])


def test_hit_rates_come_from_each_replicas_counters_before_and_after() -> None:
    before = fb.replica_counts(_page({"r1": 100, "old": 50}, {"r1": 100, "old": 50}, {"r1": 2, "old": 1}, 1), PAIRWISE)
    after = fb.replica_counts(
        _page({"r1": 400, "r2": 90, "old": 50}, {"r1": 200, "r2": 10, "old": 50}, {"r1": 6, "r2": 1, "old": 1}, 5),
        PAIRWISE,
    )
    delta = fb.counts_delta(before, after, skip={"old"})  # an earlier variant's replica, lingering on the page
    assert sorted(delta) == ["r1", "r2"]
    assert (delta["r1"].hit, delta["r1"].computed, delta["r1"].finished) == (300, 100, 4)
    assert delta["r1"].hit_rate == 0.75 and delta["r2"].hit_rate == 0.9  # r2 started after the first read
    total = fb.pooled(delta)
    assert total.tokens == 500 and total.hit_rate == 390 / 500 and total.finished == 5
    assert math.isnan(fb.ReplicaCounts().hit_rate)


def test_ray_calls_are_the_judge_deployments_own_per_route() -> None:
    page = _page({}, {}, {}, 7)
    assert fb.by_label(page, fb.RAY_CALLS, "route", deployment=DEPLOYMENT, application="genrm") == {"/v1/reward": 7.0}


def test_variants_differ_only_in_replicas_router_and_kv_cache() -> None:
    document = burst_config(ROOT / "configs" / "cpu-fleet.yaml", "adaptive", 12)
    llm = {v: fb.variant_args(document, v, 640, 1280)["pairwise"]["hosted"]["llm_config"] for v in fb.VARIANTS}
    assert [llm[v]["deployment_config"]["num_replicas"] for v in fb.VARIANTS] == [1, 2, 2, 2]
    assert "request_router_config" not in llm["default"]["deployment_config"]
    routers = {v: llm[v]["deployment_config"]["request_router_config"] for v in fb.AFFINITY_VARIANTS}
    assert routers["affinity"]["request_router_class"].endswith(".ConsistentHashRouter")
    assert routers["prefix"]["request_router_class"].endswith(".LiveReplicaAffinityRouter")
    for router in routers.values():  # Ray's own schema imports the class
        RequestRouterConfig(**router).get_request_router_class()
    assert [llm[v]["engine_kwargs"]["kv_cache_memory_bytes"] for v in fb.VARIANTS] == [1280 * 2**20, *[640 * 2**20] * 3]
    assert all("VLLM_CPU_KVCACHE_SPACE" not in llm[v]["runtime_env"]["env_vars"] for v in fb.VARIANTS)
    assert [llm[v]["runtime_env"]["env_vars"].get("OMP_NUM_THREADS") for v in fb.VARIANTS] == ["2", None, None, None]
    # the single replica's bound on batches in flight is the whole fleet's
    assert [llm[v]["deployment_config"]["max_ongoing_requests"] for v in fb.VARIANTS] == [16, 8, 8, 8]
    original = document["applications"][0]["args"]["pairwise"]["hosted"]["llm_config"]
    assert "request_router_config" in original["deployment_config"]  # the document itself is left as it was
    assert original["runtime_env"]["env_vars"]["VLLM_CPU_KVCACHE_SPACE"] == "1"


def test_every_group_has_its_own_conversation() -> None:
    groups = fb.burst_groups(4, 3, 2)
    firsts = {conversation[0]["content"] for conversation, _ in groups}
    assert len(firsts) == 4 and all(len(rollouts) == 3 for _, rollouts in groups)
    assert fb.rank_batch_body(groups[2:])["groups"][0]["candidates"] == groups[2][1]


def _outcome(variant: str, hit: float, finished: float, wall_s: float) -> fb.Outcome:
    counts = {"r": fb.ReplicaCounts(hit=hit, computed=100 - hit, finished=finished)}
    return fb.Outcome(variant, counts, {}, wall_s, [1.0], 1.0, [200], 0, 0, 0.0, engine_cpu_s=finished * wall_s)


def test_targets_say_met_or_by_how_much_they_were_missed() -> None:
    met = fb.targets(
        {
            "single": _outcome("single", 90, 10, 1),
            "default": _outcome("default", 70, 10, 2),
            "affinity": _outcome("affinity", 88, 10, 1),
        }
    )
    assert ["**met**" in line for line in met] == [True, True, True]
    missed = fb.targets(
        {
            "single": _outcome("single", 90, 10, 1),
            "default": _outcome("default", 80, 10, 1),
            "affinity": _outcome("affinity", 85, 8, 1),
        }
    )
    assert "missed by 2.0 points" in missed[0] and "missed by 5.0 points" in missed[1] and "missed by 20%" in missed[2]
    both = fb.targets(
        {
            "single": _outcome("single", 90, 10, 1),
            "default": _outcome("default", 80, 10, 1),
            "affinity": _outcome("affinity", 85, 8, 1),
            "prefix": _outcome("prefix", 89, 10, 1),
        }
    )
    assert len(both) == 6 and all(line.startswith("- LiveReplicaAffinityRouter:") for line in both[3:])
    assert ["**met**" in line for line in both[3:]] == [True, False, True] and "missed by 1.0 points" in both[4]


def test_per_group_batching_costs_ray_calls_in_the_replay() -> None:
    body = fb.rank_batch_body(fb.burst_groups(3, 4, 1))
    per_group, judge_calls = fb.replay_ray_calls(body, "swiss", per_group=True)
    per_moment, same_calls = fb.replay_ray_calls(body, "swiss", per_group=False)
    assert judge_calls == same_calls == 3 * 2 * 2 * 2  # swiss on 4: two rounds of two pairs, both orders
    assert (per_group, per_moment) == (3 * 2, 2)  # one Ray call per group and round, against one per round
