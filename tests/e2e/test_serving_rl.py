"""End to end on the CPU default: the RL routes over HTTP against the real engines (tiny texts, so they are quick).

Per-sample /v1/reward requests sent concurrently, as OpenRLHF or veRL send them, complete one cohort and are judged
together; a /v1/rank_batch of two groups answers each as /v1/rank would, a bad group reported in place."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
httpx = pytest.importorskip("httpx")

from live_service import BASE, CONVERSATION  # noqa: E402


def test_concurrent_rewards_complete_one_cohort(service: httpx.Client) -> None:
    responses = ["Paris.", "Lyon.", "It is Paris."]
    paths = service.get("/openapi.json").json()["paths"]
    assert "/v1/reward" in paths and "/v1/rank_batch" in paths

    def post(k: int) -> httpx.Response:
        body = {"conversation": CONVERSATION, "response": responses[k], "group_id": "e2e-cohort", "group_size": 3}
        return httpx.post(f"{BASE}/v1/reward", json=body, timeout=600)

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(post, range(3)))
    assert [r.status_code for r in answers] == [200] * 3, [r.text for r in answers]
    out = [r.json() for r in answers]
    assert len({o["cohort_id"] for o in out}) == 1
    assert sorted(o["rank"] for o in out) == [1, 2, 3]
    assert sorted(o["rollout_index"] for o in out) == [0, 1, 2]
    for o in out:
        assert (o["complete"], o["size_judged"], o["closed_by"], o["group_id"]) == (True, 3, "full", "e2e-cohort")
        assert o["pairwise_calls"] > 0 and o["principle_calls"] == 3  # the cohort's calls, made once
    best = min(out, key=lambda o: o["rank"])
    assert best["reward"] == max(o["reward"] for o in out)
    # The group has had its 3 samples: one more is refused, saying so.
    extra = {"conversation": CONVERSATION, "response": "Marseille.", "group_id": "e2e-cohort", "group_size": 3}
    r = service.post("/v1/reward", json=extra)
    assert r.status_code == 422 and "at most group_size" in r.text


def test_rank_batch_of_two_groups(service: httpx.Client) -> None:
    knockout = {"strategy": "knockout", "use_principle": False}
    body = {
        "groups": [
            {"conversation": CONVERSATION, "candidates": ["Paris.", "Lyon."], **knockout},
            {"conversation": [{"role": "user", "content": "2 + 2?"}], "candidates": ["4", "5"], **knockout},
            {"conversation": CONVERSATION, "candidates": ["Paris.", " "]},
        ]
    }
    r = service.post("/v1/rank_batch", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["judged"], out["failed"]) == (2, 1)
    for entry in out["results"][:2]:
        assert entry["status"] == 200
        assert sorted(entry["result"]["ranks"]) == [1, 2] and entry["result"]["pairwise_calls"] >= 2
    assert out["results"][2]["status"] == 422 and "candidate 1 is empty" in str(out["results"][2]["detail"])


def test_two_router_replicas_give_each_cohort_one_owner(service: httpx.Client) -> None:
    """A second application with two router replicas (and so a cohort owner) in front of an instant judge: samples
    spread over both replicas still meet in one cohort."""
    from live_service import deployed, smollm2_folder

    from bench.instant_judges import InstantPairwise
    from serve_app.app import bind_router
    from serve_app.config import AppConfig

    config = AppConfig.model_validate(
        {
            "pairwise": {"hosted": {"llm_config": {"model_loading_config": {"model_id": "instant-rl"}}}},
            "router": {
                "cohorts": {"group_size": 6, "group_timeout_s": 60},
                "deployment": {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0}},
            },
        }
    )
    judge = InstantPairwise.options(name="RlPairwise").bind()
    app = bind_router(config, {"pairwise": str(smollm2_folder())}, None, judge, name="RlRouter", owner_name="RlOwner")
    with deployed(app, "rl-replicas", service) as prefix:

        def post(k: int) -> httpx.Response:
            body = {"conversation": CONVERSATION, "response": f"Paris ({k})."}
            return httpx.post(f"{BASE}{prefix}/v1/reward", json=body, timeout=120)

        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(post, range(6)))
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    out = [r.json() for r in answers]
    assert len({o["cohort_id"] for o in out}) == 1 and all(o["complete"] for o in out)
    assert sorted(o["rank"] for o in out) == [1, 2, 3, 4, 5, 6]


def _affinity_routers() -> dict[str, dict[str, Any]]:
    """The fleet benchmark's two affinity routers, and Serve's prefix router class itself."""
    from bench.fleet_bench import ROUTERS

    ours = ROUTERS["prefix"]
    assert ours is not None and ROUTERS["affinity"] is not None
    serve_class = {**ours, "request_router_class": "ray.serve.llm.request_router.PrefixCacheAffinityRouter"}
    return {"consistent_hash": ROUTERS["affinity"], "prefix_cache": serve_class, "live_prefix_cache": ours}


AFFINITY_ROUTERS = ("consistent_hash", "live_prefix_cache", "prefix_cache")


def _rank_batch_through(
    service: httpx.Client, router: str, stale_replica: bool = False
) -> tuple[httpx.Response, dict[str, list[str]]]:
    """One /v1/rank_batch of six groups through ``router`` in front of two replicas of an instant judge that reports
    which replica answered each group's batches; the response, and the replicas each group's key reached.
    ``stale_replica``: the deployment's prefix tree (Serve's actor, made here first) already names a replica that
    is gone, as after the application was deployed again on the same cluster."""
    import time

    import ray
    from live_service import connect, deployed, smollm2_folder
    from ray.llm._internal.serve.routing_policies.prefix_aware.prefix_tree import PrefixTreeActor
    from ray.serve.config import RequestRouterConfig

    from bench.instant_judges import ReplicaWitness, WitnessedPairwise
    from serve_app.app import bind_router
    from serve_app.config import AppConfig

    config = AppConfig.model_validate(
        {
            "pairwise": {
                "hosted": {"llm_config": {"model_loading_config": {"model_id": "instant-affinity"}}},
                "call_timeout_s": 15,
            },
            "router": {"selection": {"strategy": "swiss", "use_principle": False}, "cohorts": {"enabled": False}},
        }
    )
    name, deployment = f"affinity-{router.replace('_', '-')}{'-stale' * stale_replica}", f"Witnessed{router}"
    routing = RequestRouterConfig(**_affinity_routers()[router])
    connect()  # before the first actor: Ray would start a cluster of its own
    witness = ReplicaWitness.options(name=f"witness-{name}", namespace="genrm-tests").remote()
    # the tree actor Serve's prefix routers share per deployment (found by this name, or made)
    tree = PrefixTreeActor.options(
        name="LlmPrefixTreeActor", namespace=f"serve::{name}::{deployment}", lifetime="detached", get_if_exists=True
    ).remote()
    if stale_replica:
        ray.get(tree.add_tenants.remote([f"SERVE_REPLICA::{name}#{deployment}#gone"], time.time()))
    judge = WitnessedPairwise.options(name=deployment, num_replicas=2, request_router_config=routing).bind(
        f"witness-{name}", "genrm-tests"
    )
    app = bind_router(config, {"pairwise": str(smollm2_folder())}, None, judge, name=f"AffinityRouter{router}")
    groups = [
        {
            "conversation": [{"role": "user", "content": f"Name city {g}."}],
            "candidates": [f"City {g}.{k}" for k in range(4)],
        }
        for g in range(6)
    ]
    try:
        with deployed(app, name, service) as prefix:
            r = httpx.post(f"{BASE}{prefix}/v1/rank_batch", json={"groups": groups}, timeout=60)
        return r, ray.get(witness.replicas_by_key.remote("Name city"))  # not the start-up check's call
    finally:
        ray.kill(witness)
        ray.kill(tree)


@pytest.mark.parametrize("router", AFFINITY_ROUTERS)
def test_a_rank_batch_through_an_affinity_router_keeps_each_group_on_one_replica(
    service: httpx.Client, router: str
) -> None:
    """Each group's calls go out as their own handle call under the group's key, in the same moment, and every
    batch of a group reaches one replica.

    - ConsistentHashRouter reads the key from the handle's session_id. The batches once shared the HTTP request's
      internal id, which that router indexes waiting calls by: it assigned one and left the others waiting until
      the judge's silence limit, round after round.
    - The prefix routers read the batch's ``prompt`` (a plain list of bodies fails them) and place a new key on
      the replica holding the least text: the six groups use both replicas."""
    r, seen = _rank_batch_through(service, router)
    assert r.status_code == 200, r.text
    results = [e["result"] for e in r.json()["results"]]
    assert len(results) == 6 and all(x["failed_calls"] == 0 and x["pairwise_calls"] > 0 for x in results), r.text
    assert len(seen) == 6 and all(len(replicas) == 1 for replicas in seen.values()), seen
    if router != "consistent_hash":
        assert len({replicas[0] for replicas in seen.values()}) == 2, seen


def test_the_prefix_router_forgets_a_replica_that_is_gone(service: httpx.Client) -> None:
    """The prefix tree outlives its routers: a replica of an earlier deployment of the application stays in it.
    Named as the least loaded, it would draw every new group to a replica that does not exist. The fleet's
    router (deployments/routing.py) prunes it when it first sees the replica set: every group is judged, on the
    two live replicas."""
    r, seen = _rank_batch_through(service, "live_prefix_cache", stale_replica=True)
    assert r.status_code == 200, r.text
    results = [e["result"] for e in r.json()["results"]]
    assert all(x["failed_calls"] == 0 and x["pairwise_calls"] > 0 for x in results), r.text
    assert len(seen) == 6 and len({replica for replicas in seen.values() for replica in replicas}) == 2, seen


def test_a_judge_updated_alone_while_a_cohort_is_open_judges_the_cohort_on_one_version(
    service: httpx.Client,
) -> None:
    """The judge is an application of its own, updated by itself (Serve's rolling update: the new replica starts,
    the old one drains and stops) while the router, untouched, holds a cohort whose first three rollouts the old
    version has been judging. The last rollout arrives after the update. The cohort would mix two versions'
    verdicts: it is judged again, whole, on the new version, and every answer names that version alone, from one
    cohort closed full. The stamps are the replicas' own (BatchedChat.chat_many), carried through Serve's handles."""
    import time

    from live_service import connect, deployed, smollm2_folder
    from ray import serve

    from bench.instant_judges import InstantPairwise
    from serve_app.app import bind_router
    from serve_app.config import AppConfig

    connect()
    judge_app, deployment = "versioned-judge", "VersionedPairwise"

    def update_judge(version: str) -> None:
        judge = InstantPairwise.options(name=deployment, ray_actor_options={"num_cpus": 0}).bind(0.3, version)
        serve.run(judge, name=judge_app, route_prefix=None)
        deadline = time.monotonic() + 120
        while serve.status().applications[judge_app].deployments[deployment].replica_states != {"RUNNING": 1}:
            assert time.monotonic() < deadline, "the judge's update did not finish"  # the old replica has stopped
            time.sleep(0.2)

    config = AppConfig.model_validate(
        {
            "pairwise": {
                "hosted": {"llm_config": {"model_loading_config": {"model_id": "instant-versioned"}}},
                "call_timeout_s": 30,
            },
            "router": {
                "selection": {"use_principle": False},
                "cohorts": {"group_size": 4, "group_timeout_s": 120, "incremental": True},
            },
        }
    )
    update_judge("v1")
    try:
        handle = serve.get_deployment_handle(deployment, app_name=judge_app)
        app = bind_router(config, {"pairwise": str(smollm2_folder())}, None, handle, name="VersionRouter")
        with deployed(app, "versioned", service) as prefix:
            url = f"{BASE}{prefix}/v1/reward"
            at_start = handle.calls_answered.remote().result()  # the router's start-up check

            def post(k: int) -> httpx.Response:
                body = {"conversation": CONVERSATION, "response": f"Paris ({k}).", "group_id": "g", "group_size": 4}
                return httpx.post(url, json=body, timeout=300)

            with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
                early = [pool.submit(post, k) for k in range(3)]
                deadline = time.monotonic() + 60
                while (on_v1 := handle.calls_answered.remote().result() - at_start) < 2:
                    assert time.monotonic() < deadline, "the first rollouts were never judged"
                    time.sleep(0.1)
                update_judge("v2")
                last = post(3)
                responses = [f.result() for f in early] + [last]
            on_v2 = handle.calls_answered.remote().result()
    finally:
        serve.delete(judge_app)
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    out = [r.json() for r in responses]
    assert on_v1 >= 2  # the old version was judging the cohort when the update came
    assert {tuple(o["provenance"]["judge_versions"].items()) for o in out} == {(("instant-versioned", "v2"),)}, out
    assert len({o["cohort_id"] for o in out}) == 1 and {o["closed_by"] for o in out} == {"full"}
    assert on_v2 >= out[0]["pairwise_calls"] > 0  # every call of the answer was made on the new version
    assert sorted(o["rank"] for o in out) == [1, 2, 3, 4]
