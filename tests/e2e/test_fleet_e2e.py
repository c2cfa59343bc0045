"""The judge fleet on a real multi-node Ray cluster (tests/fleet_cluster.py): configs/cpu-fleet.yaml with its judges
pinned to nodes of their own, two router replicas and two cohort owner shards. In order, on one cluster:

1. placement: the router on the head, the pairwise judge's two replicas on one node, the principle judge on
   another (three node ids, from Ray's state API), and requests flow across them; the judges report their engines'
   load to Serve's autoscaler;
2. a cohort owner is killed mid-cohort: its waiting callers get a 503 with Retry-After at once, their retries land
   on its replacement, and the other owner's open cohorts close complete;
3. the pairwise judge scales from two replicas to one during a burst: no call is lost (the replica drains);
4. the pairwise judge autoscales on its engine's load (Serve's autoscaler with deployments.autoscaling's policy):
   a burst starts a second replica, idle engines bring it back to one;
5. the pairwise node is lost without grace: in-flight requests end, its engine processes are gone, ``/readyz``
   names the pairwise judge; a replacement node joins and the same application serves again.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import httpx
import pytest
from fleet_cluster import GROUP_SIZE, OWNERS, TARGET_SEQUENCES, Fleet, alive, descendants
from live_service import CONVERSATION, PAIRWISE_DEPLOYMENT, PRINCIPLE_DEPLOYMENT, alive_actors

from deployments.autoscaling import ENGINE_SEQUENCES
from serve_app.config import DEFAULT_TENANT
from serve_app.core.cohorts import Sample, prompt_fingerprint, shard_of

APP = "genrm"
CANDIDATES = ["The capital of France is Paris.", "I think it is Lyon.", "Paris.", "France has no capital."]


def replicas(deployment: str) -> list[Any]:
    """The live replica actors of one deployment of the application, from Ray's state API."""
    import ray

    name = f"ServeReplica:{APP}:{deployment}"
    return [a for a in alive_actors(ray.get_runtime_context().gcs_address) if a.class_name == name]


def running(deployment: str, starting: bool = False) -> int:
    """The deployment's running replicas (with ``starting``: also those Serve is starting) as Serve counts them."""
    from ray import serve

    states = serve.status().applications[APP].deployments[deployment].replica_states
    wanted = ("RUNNING", "STARTING") if starting else ("RUNNING",)
    return sum(n for state, n in states.items() if str(state).endswith(wanted))


def wait_for(condition: Any, timeout_s: float, what: str, pause_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(pause_s)


def best_of_n(client: httpx.Client, k: int = 0, timeout_s: float = 600) -> httpx.Response:
    question = [{"role": "user", "content": f"What is the capital of France? (ask {k})"}]
    body = {"conversation": question, "candidates": CANDIDATES[:3], "strategy": "knockout"}
    return client.post("/v1/best_of_n", json=body, timeout=timeout_s)


def test_router_and_judges_run_on_three_nodes_and_requests_cross_them(fleet: Fleet) -> None:
    from ray import serve

    nodes = {
        "router": {a.node_id for a in replicas("Router")},
        "owners": {a.node_id for k in range(OWNERS) for a in replicas(f"CohortOwner{k}")},
        "pairwise": {a.node_id for a in replicas(PAIRWISE_DEPLOYMENT)},
        "principle": {a.node_id for a in replicas(PRINCIPLE_DEPLOYMENT)},
    }
    assert all(len(ids) == 1 for ids in nodes.values()), nodes
    assert len(nodes["router"] | nodes["pairwise"] | nodes["principle"]) == 3, nodes
    assert nodes["owners"] == nodes["router"]
    assert len(replicas(PAIRWISE_DEPLOYMENT)) == 2 and len(replicas("Router")) == 2

    # the one principle replica: a call with no text of its own to the pairwise fleet's affinity router goes to the
    # less busy of its two replicas, which may be idle while the other runs every group
    judge = serve.get_deployment_handle(PRINCIPLE_DEPLOYMENT, app_name=APP)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        answers = [pool.submit(best_of_n, fleet.client, k) for k in range(4)]
        # while they run: the engine's own load, as the judge reports it to Serve's autoscaler
        load = []
        while not all(a.done() for a in answers):
            load.append(judge.record_autoscaling_stats.remote().result()[ENGINE_SEQUENCES])
            time.sleep(0.5)
    for answer in answers:
        r = answer.result()
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["pairwise_calls"] > 0 and out["principle_calls"] > 0 and out["failed_calls"] == 0
    assert max(load) >= 1, load  # sequences in the engine while requests ran


def _owner_of(group_id: str) -> int:
    sample = Sample(response="", fingerprint="", prompt=None, group_id=group_id)
    sample.scope = prompt_fingerprint([DEFAULT_TENANT, None])
    return shard_of(sample.key, OWNERS)


def test_losing_a_cohort_owner_loses_only_its_cohorts(fleet: Fleet) -> None:
    import ray

    groups = [f"owner-kill-{k}" for k in range(6)]
    owner_of = {g: _owner_of(g) for g in groups}
    assert set(owner_of.values()) == set(range(OWNERS)), owner_of  # both shards hold cohorts
    answers = [f"Paris ({k})." if k % 2 else f"Lyon ({k})." for k in range(GROUP_SIZE)]

    def reward(group: str, k: int) -> tuple[list[tuple[int, float, str | None]], dict[str, Any] | None]:
        """Post one sample, retrying a 503 after its Retry-After; the statuses seen (with their time and header),
        and the reward."""
        seen = []
        body = {"conversation": CONVERSATION, "response": answers[k], "group_id": group, "group_size": GROUP_SIZE}
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            r = fleet.client.post("/v1/reward", json=body, timeout=600)
            seen.append((r.status_code, time.monotonic(), r.headers.get("retry-after")))
            if r.status_code == 200:
                return seen, r.json()
            if r.status_code != 503:
                return seen, None
            time.sleep(min(float(r.headers.get("retry-after", 1)), 2))
        return seen, None

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(groups) * GROUP_SIZE)
    first = {(g, k): pool.submit(reward, g, k) for g in groups for k in range(2)}
    time.sleep(3)  # the first two samples of every group wait in their open cohorts
    (victim,) = replicas("CohortOwner0")
    killed_at = time.monotonic()
    ray.kill(ray.get_actor(victim.name, namespace=victim.ray_namespace))
    # the rest of each group's samples arrive once the replacement owner runs
    wait_for(lambda: running("CohortOwner0") == 1 and len(replicas("CohortOwner0")) == 1, 120, "a new owner")
    rest = {(g, k): pool.submit(reward, g, k) for g in groups for k in range(2, GROUP_SIZE)}
    results = {key: f.result(timeout=900) for key, f in {**first, **rest}.items()}
    pool.shutdown()

    for (group, k), (seen, out) in results.items():
        assert out is not None, (group, k, seen)  # every caller got its reward in the end; none hung
        refusals = [(t, header) for status, t, header in seen if status == 503]
        if owner_of[group] == 1 or k >= 2:
            assert not refusals, (group, k, seen)  # the surviving owner's callers never noticed
        else:
            assert refusals and refusals[0][1] is not None, (group, k, seen)  # waiting on the lost owner: 503
            assert refusals[0][0] - killed_at < 10, (group, k, seen)  # ... with Retry-After, within 10 s
    for group in groups:
        outs = [results[(group, k)][1] for k in range(GROUP_SIZE)]
        assert len({o["cohort_id"] for o in outs}) == 1, (group, outs)  # no cohort split
        assert {o["closed_by"] for o in outs} == {"full"} and {o["size_judged"] for o in outs} == {GROUP_SIZE}
        assert sorted(o["rank"] for o in outs) == list(range(1, GROUP_SIZE + 1))


def test_scaling_the_pairwise_judge_down_during_a_burst_loses_no_call(fleet: Fleet) -> None:
    routers_before = {a.actor_id for a in replicas("Router")}
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        burst = [pool.submit(best_of_n, fleet.client, 100 + k) for k in range(6)]
        time.sleep(4)  # the burst's calls are on both replicas
        fleet.scale_pairwise(1, 1)  # a lightweight update of the judge alone
        wait_for(lambda: len(replicas(PAIRWISE_DEPLOYMENT)) == 1, 400, "the pairwise judge down to one replica")
        answers = [f.result(timeout=900) for f in burst]
    for r in answers:
        assert r.status_code == 200, r.text
        assert r.json()["failed_calls"] == 0, r.text  # the replica that left finished its calls first
    assert {a.actor_id for a in replicas("Router")} == routers_before  # only the judge's replica count changed
    assert best_of_n(fleet.client, 200).status_code == 200


def test_the_pairwise_judge_autoscales_on_its_engines_load(fleet: Fleet) -> None:
    """Serve's autoscaler with the judges' own policy (deployments.autoscaling.EngineLoadPolicy): a burst's
    sequences in the engine exceed one replica's target, so Serve starts a second replica; once the engines are
    idle it goes back to one. The handle calls Serve would count by default are batches: only the engine's count
    (``engine_sequences``, reported by the replica) drives it."""
    from ray import serve

    assert running(PAIRWISE_DEPLOYMENT) == 1  # the previous test left one replica
    routers_before = {a.actor_id for a in replicas("Router")}
    fleet.scale_pairwise(1, 2)
    time.sleep(5)  # idle engines: one replica stays (the policy never goes below one)
    assert running(PAIRWISE_DEPLOYMENT) == 1 and len(replicas(PAIRWISE_DEPLOYMENT)) == 1
    judge = serve.get_deployment_handle(PAIRWISE_DEPLOYMENT, app_name=APP)
    load: list[float] = []  # the engine's sequences, as the replica reports them to Serve
    most = 1  # the most replicas Serve ran or started during the burst
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        burst = [pool.submit(best_of_n, fleet.client, 300 + k) for k in range(8)]
        while not all(f.done() for f in burst):
            load.append(judge.record_autoscaling_stats.remote().result()[ENGINE_SEQUENCES])
            most = max(most, running(PAIRWISE_DEPLOYMENT, starting=True))
            time.sleep(0.5)
        answers = [f.result() for f in burst]
    assert max(load) > TARGET_SEQUENCES, load  # what Serve scales on: more sequences than one replica's target
    assert most == 2, (most, load)  # ... and it did, to the maximum
    for r in answers:
        assert r.status_code == 200 and r.json()["failed_calls"] == 0, r.text
    # idle again: down to one replica (it drains first), within the downscale delay and a few control loops
    wait_for(lambda: len(replicas(PAIRWISE_DEPLOYMENT)) == 1, 300, "the idle pairwise judge back to one replica")
    fleet.scale_pairwise(1, 1)  # one replica again for the next test
    wait_for(lambda: running(PAIRWISE_DEPLOYMENT) == 1, 120, "one running pairwise replica")
    assert {a.actor_id for a in replicas("Router")} == routers_before  # the judge alone changed


def _readiness(client: httpx.Client) -> dict[str, Any]:
    try:
        r = client.get("/readyz", timeout=10)
    except httpx.HTTPError as exc:
        return {"status": f"unreachable: {exc}"}
    return {"code": r.status_code, **r.json()}


def test_losing_the_pairwise_node_and_replacing_it(fleet: Fleet) -> None:
    (replica,) = replicas(PAIRWISE_DEPLOYMENT)
    engines = {replica.pid} | descendants(replica.pid)
    assert len(engines) > 1  # the replica and the engine processes it started
    routers_before = {a.actor_id for a in replicas("Router")}

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        in_flight = [pool.submit(best_of_n, fleet.client, 300 + k, 120) for k in range(3)]
        time.sleep(3)
        killed_at = time.monotonic()
        fleet.cluster.kill_node("pairwise")
        ended = []
        for f in in_flight:
            try:
                ended.append(f.result(timeout=max(1.0, 60 - (time.monotonic() - killed_at))).status_code)
            except concurrent.futures.TimeoutError:
                pytest.fail("a request in flight when the pairwise node died is still waiting after 60 s")
            except httpx.HTTPError as exc:
                ended.append(type(exc).__name__)
    assert time.monotonic() - killed_at < 60
    assert all(status in (200, 500, 502, 503) for status in ended), ended

    wait_for(lambda: not any(alive(pid) for pid in engines), 60, f"the lost node's engine processes {engines} end")
    wait_for(lambda: _readiness(fleet.client).get("down") == ["pairwise"], 120, "/readyz names the pairwise judge")
    report = _readiness(fleet.client)
    assert report["code"] == 503 and report["status"] == "judge_down" and report["judges"]["principle"]["ready"]

    fleet.cluster.add_node("pairwise", name="pairwise-replacement")
    wait_for(lambda: _readiness(fleet.client).get("code") == 200, 600, "ready again on the replacement node", 5)
    r = best_of_n(fleet.client, 400)
    assert r.status_code == 200 and r.json()["failed_calls"] == 0, r.text
    assert {a.actor_id for a in replicas("Router")} == routers_before  # the same application: no restart
    assert fleet.cluster.nodes["head"].poll() is None
