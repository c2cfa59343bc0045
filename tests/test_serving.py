"""End to end on the CPU default: `serve run config.yaml` started by the test, queried over HTTP.

Both judges are real vLLM engines (the CPU build) serving SmolLM2-135M-Instruct behind ray.serve.llm, so these tests
run the production code path: handles, request shapes, parsers, the selection policies and the metrics. The model
is far too small to judge well, so the tests check structure and bookkeeping, never which candidate wins.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
httpx = pytest.importorskip("httpx")

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:8000"
START_TIMEOUT_S = 900
CONVERSATION = [{"role": "user", "content": "What is the capital of France?"}]
CANDIDATES = ["The capital of France is Paris.", "I think it is Lyon.", "Paris.", "France has no capital."]


def _ready(client: httpx.Client) -> bool:
    """The router answers and both engines have produced a verdict once (first calls warm the engines up)."""
    try:
        compare = client.post(
            "/v1/compare", json={"conversation": CONVERSATION, "response_1": "Paris", "response_2": "Lyon"}
        )
        score = client.post(
            "/v1/principle_score",
            json={"conversation": CONVERSATION, "response": "Paris", "principles": ["correctness"]},
        )
    except httpx.HTTPError:
        return False
    return compare.status_code == 200 and score.status_code == 200


@pytest.fixture(scope="module")
def service() -> Iterator[httpx.Client]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    serve_cli = Path(sys.executable).parent / "serve"
    log = (ROOT / ".pytest_cache" / "serve-run.log").open("w") if (ROOT / ".pytest_cache").is_dir() else None
    proc = subprocess.Popen(
        [str(serve_cli), "run", "config.yaml"],
        cwd=ROOT,
        env=env,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = httpx.Client(base_url=BASE, timeout=300)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(client):
            if proc.poll() is not None:
                pytest.fail(f"`serve run config.yaml` exited with {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                pytest.fail(f"`serve run config.yaml` not ready after {START_TIMEOUT_S} s")
            time.sleep(5)
        yield client
    finally:
        client.close()
        # SIGTERM stops `serve run` and the cluster it started; nothing else on the machine is touched.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if log is not None:
            log.close()


def test_openapi_documents_every_route(service: httpx.Client) -> None:
    paths = service.get("/openapi.json").json()["paths"]
    for path in ("/v1/best_of_n", "/v1/rank", "/v1/principle_score", "/v1/compare", "/healthz", "/v1/models"):
        assert path in paths, path
    body = json.dumps(paths["/v1/best_of_n"])
    assert "BestOfNRequest" in body and "BestOfNResponse" in body


def test_health_and_models(service: httpx.Client) -> None:
    assert service.get("/healthz").json() == {"status": "ok", "judges": ["principle", "pairwise"]}
    judges = service.get("/v1/models").json()["judges"]
    assert [(j["role"], j["hosted"], j["prompt_format"]) for j in judges] == [
        ("principle", True, "rendered"),
        ("pairwise", True, "rendered"),
    ]


def test_best_of_n_fans_out_to_both_judges(service: httpx.Client) -> None:
    body = {
        "conversation": CONVERSATION,
        "candidates": CANDIDATES,
        "principles": ["correctness"],
        "strategy": "knockout",
    }
    r = service.post("/v1/best_of_n", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["text"] == CANDIDATES[out["index"]]
    assert sorted(out["ranking"]) == [0, 1, 2, 3] and out["ranking"][0] == out["index"]
    assert out["strategy"] == "knockout"
    # Knockout of 4 with swap: 2 semi-finals + 1 final, both orders each, retries only on failure.
    assert out["pairwise_calls"] >= 6
    assert out["principle_calls"] == 4
    assert out["principles"] == ["correctness"]
    rewards = [c["principle_reward"] for c in out["candidates"]]
    assert sum(r is not None for r in rewards) >= 3, out["candidates"]  # real Yes/No logprobs came back
    assert sum(c["margin"] is not None for c in out["comparisons"]) >= 2
    assert out["timings"]["total_s"] >= out["timings"]["selection_s"] > 0
    if out["failed_calls"] == 0:
        assert out["degraded"] == []


def test_rank_scores_every_candidate(service: httpx.Client) -> None:
    body = {"conversation": CONVERSATION, "candidates": CANDIDATES[:3], "strategy": "round_robin", "seed": 3}
    r = service.post("/v1/rank", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["scores"]) == 3 and sorted(out["ranks"]) == [1, 2, 3]
    best = max(range(3), key=lambda k: (out["scores"][k], -out["ranks"][k]))
    assert out["ranks"][best] == 1
    assert out["pairwise_calls"] >= 6  # 3 pairs × 2 orders


def test_one_candidate_needs_no_judge(service: httpx.Client) -> None:
    r = service.post("/v1/best_of_n", json={"conversation": CONVERSATION, "candidates": ["Paris."]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["index"], out["pairwise_calls"], out["principle_calls"]) == (0, 0, 0)


def test_compare_judges_both_orders(service: httpx.Client) -> None:
    r = service.post("/v1/compare", json={"conversation": CONVERSATION, "response_1": "Paris.", "response_2": "Lyon."})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["comparison"]["calls"] == 2
    for side in ("forward", "backward"):
        verdict = out[side]["verdict"]
        assert verdict is not None, out[side]  # structured output makes even SmolLM2 answer in the schema
        assert 1 <= verdict["ranking"] <= 6 and 1 <= verdict["score_1"] <= 5


def test_principle_score_reads_yes_no_logprobs(service: httpx.Client) -> None:
    r = service.post(
        "/v1/principle_score",
        json={"conversation": CONVERSATION, "response": "Paris.", "principles": ["correctness", "brevity"]},
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["principle"] for x in results] == ["correctness", "brevity"]
    for x in results:
        assert x["failure"] is None, x
        assert x["reward"] == pytest.approx(x["yes_logprob"] - x["no_logprob"])
        assert x["raw_text"].rstrip().endswith(("Final Judgement: Yes", "Final Judgement: No"))


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"conversation": CONVERSATION, "candidates": []}, 422, "candidates"),
        ({"conversation": CONVERSATION, "candidates": ["x"] * 33}, 422, "1 to 32"),
        ({"conversation": CONVERSATION, "candidates": ["a", "  "]}, 422, "candidate 1 is empty"),
        ({"conversation": [{"role": "assistant", "content": "hi"}], "candidates": ["a", "b"]}, 422, "must end"),
        ({"conversation": [{"role": "robot", "content": "hi"}], "candidates": ["a", "b"]}, 422, "role"),
        ({"conversation": CONVERSATION, "candidates": ["a", "b"], "strategy": "elo"}, 422, "strategy"),
        ({"conversation": CONVERSATION, "candidates": ["a", "b"], "max_pairwise_calls": -1}, 422, "max_pairwise"),
        ({"conversation": CONVERSATION, "candidates": ["a", "b"], "principles": [""]}, 422, "principle 0"),
        ({"conversation": CONVERSATION, "candidates": ["a", "b"], "temperature": 1}, 422, "temperature"),
    ],
)
def test_bad_requests_get_4xx_that_say_why(service: httpx.Client, body: dict, status: int, fragment: str) -> None:
    r = service.post("/v1/best_of_n", json=body)
    assert r.status_code == status, r.text
    assert fragment in r.text


def test_malformed_and_oversize_bodies(service: httpx.Client) -> None:
    r = service.post("/v1/best_of_n", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    big = json.dumps({"conversation": CONVERSATION, "candidates": ["x" * 5_000_000]})
    r = service.post("/v1/best_of_n", content=big.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "bytes" in r.text


def _metrics_text() -> str:
    import ray

    from bench.ray_metrics import metrics_text

    if not ray.is_initialized():
        ray.init(address="auto", logging_level="ERROR")  # joins the cluster `serve run` started; starts nothing
    return metrics_text()


def test_metrics_on_rays_prometheus_endpoint(service: httpx.Client) -> None:
    wanted = [
        "ray_genrm_judge_calls_total{",
        "ray_genrm_judge_latency_seconds_bucket{",
        "ray_genrm_swap_inconsistency_bucket{",
        "ray_genrm_request_latency_seconds_bucket{",
    ]
    deadline = time.monotonic() + 60  # Ray exports metrics every few seconds
    text = ""
    while time.monotonic() < deadline:
        text = _metrics_text()
        if all(w in text for w in wanted):
            break
        time.sleep(3)
    for w in wanted:
        assert w in text, w
    assert 'judge="pairwise"' in text and 'judge="principle"' in text
    # vLLM's own engine metrics arrive through the same endpoint
    assert "ray_vllm_prefix_cache_queries_total" in text or "ray_vllm:prefix_cache_queries" in text


def test_degraded_when_a_judge_is_down(service: httpx.Client) -> None:
    """A second router in the same cluster: the principle judge is the running engine, the pairwise judge an
    endpoint where nothing listens. The answer comes from the principle judge and says what was missing."""
    import ray
    from ray import serve

    from serve_app.config import AppConfig
    from serve_app.router import Router

    _metrics_text()  # connects this process to the cluster
    principle_cfg = _cpu_args()["principle"]
    tokenizer = str(_smollm2_folder())
    config = AppConfig.model_validate(
        {
            "principle": principle_cfg,
            "pairwise": {
                "endpoint": {"base_url": "http://127.0.0.1:9/v1", "model": "down", "tokenizer": tokenizer},
                "call_timeout_s": 5,
            },
            "router": {"selection": {"retries": 1}},
        }
    )
    handle = serve.get_deployment_handle("principle-genrm:smollm2-135m-principle", app_name="genrm")
    app = Router.options(name="DegradedRouter", ray_actor_options={"num_cpus": 0}).bind(
        config.model_dump(mode="json"), {"principle": tokenizer, "pairwise": tokenizer}, handle, None
    )
    serve.run(app, name="degraded", route_prefix="/degraded", blocking=False)
    try:
        deadline = time.monotonic() + 120
        while service.get("/degraded/healthz").status_code != 200:
            assert time.monotonic() < deadline, "degraded router did not start"
            time.sleep(2)
        body = {"conversation": CONVERSATION, "candidates": CANDIDATES[:3], "strategy": "knockout"}
        r = service.post("/degraded/v1/best_of_n", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert any("pairwise judge gave no usable verdict" in d for d in out["degraded"]), out["degraded"]
        assert out["failed_calls"] >= out["pairwise_calls"] > 0
        rewards = [c["principle_reward"] for c in out["candidates"]]
        scored = [k for k, x in enumerate(rewards) if x is not None]
        assert scored, "the principle judge should still have answered"
        assert rewards[out["index"]] == max(rewards[k] for k in scored)
        r = service.post(
            "/degraded/v1/compare", json={"conversation": CONVERSATION, "response_1": "a", "response_2": "b"}
        )
        assert r.status_code == 503 and "unavailable" in r.text
    finally:
        serve.delete("degraded")
        ray.shutdown()  # disconnects this driver only


def _cpu_args() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "config.yaml").read_text())["applications"][0]["args"]


def test_overload_gets_503_with_retry_after(service: httpx.Client) -> None:
    """A router admitting 1 running + 2 queued requests, in front of a pairwise judge that takes 3 s per call: of a
    burst of 8, 3 are answered and 5 are refused at once with Retry-After."""
    import concurrent.futures

    from ray import serve

    from bench.instant_judges import InstantPairwise
    from serve_app.router import Router

    _metrics_text()  # connects this process to the cluster
    tokenizer = str(_smollm2_folder())
    config = {
        "pairwise": {"hosted": {"llm_config": {"model_loading_config": {"model_id": "slow"}}}},
        "router": {"max_concurrent_requests": 1, "max_queued_requests": 2, "retry_after_s": 7},
    }
    app = Router.options(name="AdmissionRouter", ray_actor_options={"num_cpus": 0}).bind(
        config, {"pairwise": tokenizer}, None, InstantPairwise.options(name="SlowPairwise").bind(3.0)
    )
    serve.run(app, name="admission", route_prefix="/admission", blocking=False)
    body = {"conversation": CONVERSATION, "candidates": ["Paris.", "Lyon."], "strategy": "knockout", "swap": False}

    def post(_: int) -> tuple[int, str | None, float]:
        started = time.monotonic()
        r = httpx.post(f"{BASE}/admission/v1/best_of_n", json=body, timeout=120)
        return r.status_code, r.headers.get("retry-after"), time.monotonic() - started

    try:
        deadline = time.monotonic() + 120
        while service.get("/admission/healthz").status_code != 200:
            assert time.monotonic() < deadline, "admission router did not start"
            time.sleep(2)
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(post, range(8)))
    finally:
        serve.delete("admission")
    statuses = sorted(s for s, _, _ in results)
    assert statuses == [200] * 3 + [503] * 5, results
    refused = [(ra, t) for s, ra, t in results if s == 503]
    assert all(ra == "7" for ra, _ in refused)
    assert max(t for _, t in refused) < 2.5  # refused at once, before the first judge call (3 s) is done
    assert max(t for s, _, t in results if s == 200) >= 9  # the accepted ones ran one at a time


def _smollm2_folder() -> Path:
    from serve_app.model_cache import converted_folder

    source = _cpu_args()["principle"]["hosted"]["llm_config"]["model_loading_config"]["model_source"]
    return converted_folder(source)
