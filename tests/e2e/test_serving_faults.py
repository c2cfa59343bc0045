"""Faults on the running CPU default: garbled judge answers, a judge that hangs, a request that runs too long, a
judge replica killed under load, and what reaches the logs. Runs after test_serving.py (it kills a replica)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
httpx = pytest.importorskip("httpx")

from live_service import (  # noqa: E402
    BASE,
    CANDIDATES,
    CONVERSATION,
    PAIRWISE_DEPLOYMENT,
    PRINCIPLE_DEPLOYMENT,
    connect,
    cpu_args,
    deployed,
    judge_handle,
    metrics_text,
    router_app,
    smollm2_folder,
)

CANARY = "canary-7d41e9b2-candidate-text"


@contextlib.contextmanager
def tarpit() -> Iterator[int]:
    """A TCP server on loopback that accepts connections and never answers: a hung model server."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for s in [*held, server]:
            s.close()


def _post_all(url: str, bodies: list[dict], workers: int, timeout_s: float) -> list[tuple[int, dict, float]]:
    def post(body: dict) -> tuple[int, dict, float]:
        started = time.monotonic()
        r = httpx.post(url, json=body, timeout=timeout_s)
        return r.status_code, r.json(), time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(post, bodies))


def test_parse_failures_injected_at_30_percent_are_counted_not_fatal(service: httpx.Client) -> None:
    args = cpu_args()
    config = {
        "principle": {**args["principle"], "fault_injection": {"garble_fraction": 0.3, "seed": 1}},
        "pairwise": {**args["pairwise"], "fault_injection": {"garble_fraction": 0.3, "seed": 2}},
        "router": {"selection": {"retries": 1}},
    }
    before = metrics_text()
    app = router_app(config, judge_handle(PRINCIPLE_DEPLOYMENT), judge_handle(PAIRWISE_DEPLOYMENT), "GarbledRouter")
    with deployed(app, "garbled", service) as prefix:
        body = {"conversation": CONVERSATION, "candidates": CANDIDATES, "strategy": "knockout"}
        results = _post_all(f"{BASE}{prefix}/v1/best_of_n", [body] * 4, workers=4, timeout_s=600)
    assert [s for s, _, _ in results] == [200] * 4, results
    calls = sum(out["pairwise_calls"] + out["principle_calls"] for _, out, _ in results)
    failed = sum(out["failed_calls"] for _, out, _ in results)
    # 30% garbled, plus the rare real parse failure of the small model: a binomial over ~40+ calls
    assert 0.1 <= failed / calls <= 0.6, (failed, calls)
    assert all(out["text"] == CANDIDATES[out["index"]] for _, out, _ in results)
    assert any(out["degraded"] for _, out, _ in results)  # failed calls are reported, not hidden
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the failures reach the parse-failure counter
        after = metrics_text()
        if _count(after, "ray_genrm_parse_failures_total") >= _count(before, "ray_genrm_parse_failures_total") + failed:
            break
        time.sleep(3)
    else:
        pytest.fail("parse failures were not counted in ray_genrm_parse_failures_total")


def _count(text: str, metric: str) -> float:
    from bench.ray_metrics import counter_total

    return counter_total(text, metric)


def test_a_hung_judge_costs_timeouts_not_hangs(service: httpx.Client) -> None:
    tokenizer = str(smollm2_folder())
    with tarpit() as port:
        endpoint = {"base_url": f"http://127.0.0.1:{port}/v1", "model": "hung", "tokenizer": tokenizer}
        config = {
            "principle": cpu_args()["principle"],
            "pairwise": {"endpoint": endpoint, "call_timeout_s": 2},
            "router": {"selection": {"retries": 1}},
        }
        app = router_app(config, judge_handle(PRINCIPLE_DEPLOYMENT), None, "HungRouter")
        with deployed(app, "hung", service) as prefix:
            started = time.monotonic()
            body = {"conversation": CONVERSATION, "candidates": CANDIDATES[:3], "strategy": "knockout"}
            r = service.post(f"{prefix}/v1/best_of_n", json=body)
            elapsed = time.monotonic() - started
            assert r.status_code == 200, r.text
            out = r.json()
            assert "pairwise judge gave no usable verdict" in out["degraded"]
            assert elapsed < 60, elapsed  # rounds of 2 s timeouts and one retry, not a hang
            started = time.monotonic()
            r = service.post(
                f"{prefix}/v1/compare", json={"conversation": CONVERSATION, "response_1": "a", "response_2": "b"}
            )
            assert r.status_code == 503 and "timed out" in r.text and time.monotonic() - started < 10

        # A whole request is bounded too: calls that may take 60 s each meet a 4 s request deadline.
        config["pairwise"]["call_timeout_s"] = 60
        config["router"]["max_request_s"] = 4
        app = router_app(config, judge_handle(PRINCIPLE_DEPLOYMENT), None, "DeadlineRouter")
        with deployed(app, "deadline", service) as prefix:
            started = time.monotonic()
            r = service.post(f"{prefix}/v1/best_of_n", json=body)
            assert r.status_code == 503 and "max_request_s" in r.text, r.text
            assert r.headers["retry-after"]
            assert time.monotonic() - started < 15


def _replica_actor(deployment: str) -> str:
    from live_service import alive_actors

    names = [
        a.name for a in alive_actors() if a.name and deployment in a.name and "ServeReplica" in (a.class_name or "")
    ]
    assert len(names) == 1, names
    return names[0]


def test_a_judge_replica_killed_under_load(service: httpx.Client) -> None:
    """Every request in flight gets an answer (degraded where a judge was missing) or a clear 503, within its
    timeouts; Serve restarts the replica and the service recovers by itself."""
    import ray

    connect()
    victim = _replica_actor(PAIRWISE_DEPLOYMENT)
    body = {"conversation": CONVERSATION, "candidates": CANDIDATES[:3], "strategy": "knockout"}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        load = pool.submit(_post_all, f"{BASE}/v1/best_of_n", [body] * 4, 4, 900)
        time.sleep(5)  # requests are in flight
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=False)
        killed_at = time.monotonic()
        results = load.result()
    statuses = [s for s, _, _ in results]
    assert set(statuses) <= {200, 503}, results
    assert 200 in statuses
    call_timeout = cpu_args()["pairwise"]["call_timeout_s"]
    # nothing waits longer than the call timeouts of the rounds it needs (a knockout of 3: 2 rounds, 1 retry each)
    assert max(t for _, _, t in results) < 4 * call_timeout + 60
    deadline = killed_at + 600
    while True:  # recovery: a new replica answers without any help
        r = service.post(
            "/v1/compare", json={"conversation": CONVERSATION, "response_1": "Paris", "response_2": "Lyon"}
        )
        if r.status_code == 200 and r.json()["forward"]["verdict"] is not None:
            break
        assert time.monotonic() < deadline, "the pairwise judge did not recover within 10 minutes"
        time.sleep(5)
    assert _replica_actor(PAIRWISE_DEPLOYMENT) != victim
    r = service.post("/v1/best_of_n", json=body)
    assert r.status_code == 200 and r.json()["pairwise_calls"] > 0


def test_logs_hold_no_candidate_text_and_no_token(service: httpx.Client) -> None:
    """By default nothing a client sends — candidate text, conversation, bearer token — is written to any log of
    the cluster (router, judges, engines, Serve's access log)."""
    token = "bearer-canary-0c9a55"
    body = {
        "conversation": [{"role": "user", "content": f"Question {CANARY}-question?"}],
        "candidates": [f"{CANARY}-a", f"{CANARY}-b", "   "],
    }
    r = service.post("/v1/best_of_n", json=body, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 422  # a blank candidate: the error names the index, not the texts
    assert CANARY not in r.text
    body["candidates"] = body["candidates"][:2]
    r = service.post("/v1/best_of_n", json=body, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    time.sleep(3)  # log lines are flushed
    logs = _session_logs()
    assert logs, "no Ray log files found"
    for path in logs:
        data = path.read_bytes()
        assert CANARY.encode() not in data, path
        assert token.encode() not in data, path


def _session_logs() -> list[Path]:
    import ray

    connect()
    session = Path(ray._private.worker.global_worker.node.get_session_dir_path())  # the cluster `serve run` started
    return [p for p in (session / "logs").rglob("*") if p.is_file()]
