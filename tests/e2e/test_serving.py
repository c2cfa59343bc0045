"""End to end on the CPU default: `serve run config.yaml` started by the test, queried over HTTP.

Both judges are real vLLM engines (the CPU build) serving SmolLM2-135M-Instruct behind ray.serve.llm, so these tests
run the production code path: handles, request shapes, parsers, the selection policies and the metrics. The model
is far too small to judge well, so the tests check structure and bookkeeping, never which candidate wins.
"""

from __future__ import annotations

import concurrent.futures
import json
import time

import pytest

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
httpx = pytest.importorskip("httpx")

from live_service import (  # noqa: E402
    BASE,
    CANDIDATES,
    CONVERSATION,
    PAIRWISE_DEPLOYMENT,
    PRINCIPLE_DEPLOYMENT,
    ROOT,
    cpu_args,
    deployed,
    judge_handle,
    metrics_text,
    router_app,
    smollm2_folder,
)


def test_the_engines_run_below_the_router_and_the_proxy(service: httpx.Client) -> None:
    """config.yaml's GENRM_ENGINE_NICE: every engine process a judge replica started is nicer than the router and
    the proxy, so on two shared cores they answer first."""
    psutil = pytest.importorskip("psutil")
    from live_service import alive_actors

    actors = {a.class_name: a.pid for a in alive_actors()}
    judges = [pid for name, pid in actors.items() if name and "-genrm:" in name]
    (router,) = [pid for name, pid in actors.items() if name and name.endswith(":Router")]
    (proxy,) = [pid for name, pid in actors.items() if name == "ProxyActor"]
    engines = [c for pid in judges for c in psutil.Process(pid).children(recursive=True)]
    assert len(judges) == 2 and engines, (actors, engines)
    light = max(psutil.Process(router).nice(), psutil.Process(proxy).nice())
    assert all(e.nice() > light for e in engines), [(e.name(), e.nice()) for e in engines]


def test_openapi_documents_every_route(service: httpx.Client) -> None:
    paths = service.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/best_of_n",
        "/v1/rank",
        "/v1/principle_score",
        "/v1/compare",
        "/healthz",
        "/readyz",
        "/v1/models",
    ):
        assert path in paths, path
    body = json.dumps(paths["/v1/best_of_n"])
    assert "BestOfNRequest" in body and "BestOfNResponse" in body


def test_health_and_models(service: httpx.Client) -> None:
    assert service.get("/healthz").json() == {"status": "ok", "judges": ["principle", "pairwise"], "ready": True}
    judges = service.get("/v1/models").json()["judges"]
    assert [(j["role"], j["hosted"], j["prompt_format"]) for j in judges] == [
        ("principle", True, "rendered"),
        ("pairwise", True, "rendered"),
    ]


def test_ready_means_every_judge_answered_and_the_readme_request_then_fails_no_call(service: httpx.Client) -> None:
    """The fixture waited for /readyz, which is 200 only after both judges answered a warm-up call; the README's
    curl request sent then gets every judge call answered and parsed."""
    import re

    r = service.get("/readyz")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["status"] == "ready" and report["capacity"] == cpu_args()["router"]["max_concurrent_requests"]
    for role in ("principle", "pairwise"):
        judge = report["judges"][role]
        assert judge["ready"] and judge["warmup_s"] > 0 and judge["attempts"] >= 1, judge
    readme = (ROOT / "README.md").read_text()
    curl = re.search(r"curl -s localhost:8000/v1/best_of_n .*?-d '(.*?)'\n", readme, re.S)
    assert curl is not None
    r = service.post("/v1/best_of_n", json=json.loads(curl.group(1)))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["failed_calls"] == 0 and out["degraded"] == [], out
    assert out["pairwise_calls"] > 0 and out["principle_calls"] > 0


def test_a_warming_router_says_so(service: httpx.Client) -> None:
    """A router whose pairwise judge never answers stays live (/healthz 200) but not ready (/readyz 503 with
    Retry-After), naming the judge it waits for."""
    config = {
        "principle": cpu_principle(),
        "pairwise": {
            "endpoint": {"base_url": "http://127.0.0.1:9/v1", "model": "down", "tokenizer": str(smollm2_folder())},
            "call_timeout_s": 2,
        },
    }
    app = router_app(config, judge_handle(PRINCIPLE_DEPLOYMENT), None, "WarmingRouter")
    with deployed(app, "warming", service) as prefix:
        deadline = time.monotonic() + 60
        while not service.get(f"{prefix}/readyz").json()["judges"]["principle"]["ready"]:
            assert time.monotonic() < deadline, "the principle judge never answered its warm-up call"
            time.sleep(1)
        r = service.get(f"{prefix}/readyz")
        assert r.status_code == 503 and r.headers["retry-after"], r.text
        report = r.json()
        assert report["status"] == "warming_up" and not report["judges"]["pairwise"]["ready"]
        assert report["judges"]["pairwise"]["last_error"]
        health = service.get(f"{prefix}/healthz").json()
        assert health["status"] == "ok" and health["ready"] is False


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
        # The engine returned exactly the digit tokens' logprobs (logprob_token_ids): a belief at each digit.
        for key, levels in (("ranking_probs", 6), ("score_1_probs", 5), ("score_2_probs", 5)):
            belief = verdict[key]
            assert belief is not None and len(belief) == levels and abs(sum(belief) - 1) < 1e-6, (key, verdict)


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
        ({"conversation": CONVERSATION, "candidates": "a"}, 422, "candidates"),
        ({"conversation": {"role": "user"}, "candidates": ["a", "b"]}, 422, "conversation"),
        ({"conversation": CONVERSATION, "candidates": ["a", "b"], "swap": [1]}, 422, "swap"),
        ({"conversation": CONVERSATION, "candidates": ["a", "b"], "max_pairwise_calls": 10**6}, 422, "max_pairwise"),
        ({"conversation": CONVERSATION, "candidates": ["a", "b"], "principles": ["p"] * 9}, 422, "at most 8"),
        ({"conversation": CONVERSATION, "candidates": ["a", "b"], "principle_for_pairwise": " "}, 422, "omit it"),
        # config.yaml: 8192-token context, overlong policy "reject"
        ({"conversation": CONVERSATION, "candidates": ["a", "word " * 9000]}, 422, "candidate 1 is"),
        (
            {"conversation": [{"role": "user", "content": "word " * 9000}], "candidates": ["a", "b"]},
            422,
            "leave no room for a candidate",
        ),
    ],
)
def test_bad_requests_get_4xx_that_say_why(service: httpx.Client, body: dict, status: int, fragment: str) -> None:
    r = service.post("/v1/best_of_n", json=body)
    assert r.status_code == status, r.text
    assert fragment in r.text


def test_malformed_and_oversize_bodies(service: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    r = service.post("/v1/best_of_n", content=b"{not json", headers=headers)
    assert r.status_code == 422 and "json" in r.text.lower()
    big = json.dumps({"conversation": CONVERSATION, "candidates": ["x" * 5_000_000]}).encode()
    r = service.post("/v1/best_of_n", content=big, headers=headers)
    assert r.status_code == 413 and "bytes" in r.text
    # Without Content-Length (chunked), the body is counted as it arrives.
    r = service.post("/v1/best_of_n", content=(big[i : i + 65536] for i in range(0, len(big), 65536)), headers=headers)
    assert r.status_code == 413 and "bytes" in r.text


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"conversation": [{"role": "user", "content": "hi"}], "candidates": ["a\\ud800", "b"]}', "surrogate"),
        (b'{"conversation": [{"role": "user", "content": "hi \\udfff"}], "candidates": ["a", "b"]}', "surrogate"),
        (b'{"conversation": [{"role": "user", "content": "hi \xff\xfe"}], "candidates": ["a", "b"]}', ""),
    ],
    ids=["lone-high-surrogate", "lone-low-surrogate", "invalid-utf8-bytes"],
)
def test_invalid_unicode_is_a_4xx(service: httpx.Client, raw: bytes, fragment: str) -> None:
    r = service.post("/v1/best_of_n", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert fragment in r.text


def test_duplicate_candidates_are_judged_once(service: httpx.Client) -> None:
    candidates = ["Paris.", "Lyon.", "Paris.", "  Paris.\n"]
    body = {"conversation": CONVERSATION, "candidates": candidates, "strategy": "round_robin", "seed": 1}
    r = service.post("/v1/best_of_n", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["duplicates"] == [[0, 2, 3]]
    assert out["pairwise_calls"] - out["failed_calls"] <= 2  # one distinct pair, both orders (+ retries)
    assert out["principle_calls"] == 2  # two distinct texts
    assert sorted(out["ranking"]) == [0, 1, 2, 3]
    assert out["index"] in (0, 1)  # a copy is never chosen over its first occurrence
    scores = {c["index"]: c["score"] for c in out["candidates"]}
    assert scores[0] == scores[2] == scores[3]
    assert {(c["i"], c["j"]) for c in out["comparisons"]} <= {(0, 1), (1, 0)}


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
        text = metrics_text()
        if all(w in text for w in wanted):
            break
        time.sleep(3)
    for w in wanted:
        assert w in text, w
    assert 'judge="pairwise"' in text and 'judge="principle"' in text
    # vLLM's own engine metrics arrive through the same endpoint
    assert "ray_vllm_prefix_cache_queries_total" in text or "ray_vllm:prefix_cache_queries" in text


def test_the_judge_health_dashboard_queries_only_exported_metrics(service: httpx.Client) -> None:
    """k8s/grafana/judge-health.json: every metric its queries name is on the live service's /metrics."""
    import json
    import re

    dashboard = json.loads((ROOT / "k8s" / "grafana" / "judge-health.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = {re.sub(r"_(bucket|sum|count)$", "", n) for e in exprs for n in re.findall(r"\bray_[a-z0-9_]+", e)}
    candidates = ["Paris.", "I think it is Lyon.", "The capital of France is Paris, a city on the Seine."]
    body = {"conversation": CONVERSATION, "candidates": candidates, "strategy": "round_robin"}
    assert service.post("/v1/rank", json=body).status_code == 200  # health events of at least one judged group
    deadline = time.monotonic() + 60
    missing = names
    while missing and time.monotonic() < deadline:
        text = metrics_text()
        missing = {n for n in names if not re.search(rf"^{n}(_bucket|_total)?{{", text, re.M)}
        time.sleep(3)
    assert not missing, f"the dashboard queries metrics the service does not export: {sorted(missing)}"


def test_degraded_when_a_judge_is_down(service: httpx.Client) -> None:
    """A second router in the same cluster: the principle judge is the running engine, the pairwise judge an
    endpoint where nothing listens. The answer comes from the principle judge and says what was missing."""
    config = {
        "principle": cpu_principle(),
        "pairwise": {
            "endpoint": {"base_url": "http://127.0.0.1:9/v1", "model": "down", "tokenizer": str(smollm2_folder())},
            "call_timeout_s": 5,
        },
        "router": {"selection": {"retries": 1}},
    }
    app = router_app(config, judge_handle(PRINCIPLE_DEPLOYMENT), None, "DegradedRouter")
    with deployed(app, "degraded", service) as prefix:
        body = {"conversation": CONVERSATION, "candidates": CANDIDATES[:3], "strategy": "knockout"}
        r = service.post(f"{prefix}/v1/best_of_n", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert any("pairwise judge gave no usable verdict" in d for d in out["degraded"]), out["degraded"]
        assert out["failed_calls"] >= out["pairwise_calls"] > 0
        rewards = [c["principle_reward"] for c in out["candidates"]]
        scored = [k for k, x in enumerate(rewards) if x is not None]
        assert scored, "the principle judge should still have answered"
        assert rewards[out["index"]] == max(rewards[k] for k in scored)
        pair = {"conversation": CONVERSATION, "response_1": "a", "response_2": "b"}
        r = service.post(f"{prefix}/v1/compare", json=pair)
        assert r.status_code == 503 and "unavailable" in r.text


def test_bearer_token_and_truncation_policy(service: httpx.Client) -> None:
    """A router configured with a bearer token and the 'truncate' overlong policy, on the real judges."""
    token = "test-token-4f1c"
    args = cpu_args()
    # The router sizes its budgets from the judges' max_model_len. Telling it 1024 (the engines keep 8192) makes
    # truncation happen at ~350 tokens per response, so the judges prefill short prompts (fast on CPU).
    small = {"hosted": {"llm_config": {"engine_kwargs": {"max_model_len": 1024}}}}
    config = {
        "principle": _merged(args["principle"], small),
        "pairwise": _merged(args["pairwise"], small),
        "router": {"auth_token": token, "overlong": "truncate"},
    }
    app = router_app(config, judge_handle(PRINCIPLE_DEPLOYMENT), judge_handle(PAIRWISE_DEPLOYMENT), "GuardedRouter")
    with deployed(app, "guarded", service) as prefix:
        good = {"authorization": f"Bearer {token}"}
        for path in ("/v1/models", "/openapi.json", "/docs"):
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": token}):
                r = service.get(f"{prefix}{path}", headers=headers)
                assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (path, headers)
            assert service.get(f"{prefix}{path}", headers=good).status_code == 200, path
        assert service.get(f"{prefix}/healthz").status_code == 200  # probes need no token
        r = service.post(f"{prefix}/v1/best_of_n", json={"conversation": CONVERSATION, "candidates": ["a", "b"]})
        assert r.status_code == 401

        long = "Paris is the capital of France. " * 120  # ~840 tokens: more than a response may have here
        body = {"conversation": CONVERSATION, "candidates": ["Lyon.", long], "strategy": "knockout"}
        r = service.post(f"{prefix}/v1/best_of_n", json=body, headers=good)
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["truncated"], out["overlong_policy"]) == ([1], "truncate")
        assert out["text"] == body["candidates"][out["index"]]  # the original text, not the cut one
        r = service.post(
            f"{prefix}/v1/compare",
            json={"conversation": CONVERSATION, "response_1": long, "response_2": "Lyon."},
            headers=good,
        )
        assert r.status_code == 200 and r.json()["truncated"] == ["response_1"], r.text


def _merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def cpu_principle() -> dict:
    return cpu_args()["principle"]


def test_overload_gets_503_with_retry_after(service: httpx.Client) -> None:
    """A router admitting 1 running + 2 queued requests, in front of a pairwise judge that takes 3 s per call: of a
    burst of 8, 3 are answered and 5 are refused at once with Retry-After."""
    from bench.instant_judges import InstantPairwise

    config = {
        "pairwise": {"hosted": {"llm_config": {"model_loading_config": {"model_id": "slow"}}}},
        "router": {"max_concurrent_requests": 1, "max_queued_requests": 2, "retry_after_s": 7},
    }
    slow = InstantPairwise.options(name="SlowPairwise").bind(3.0)
    body = {"conversation": CONVERSATION, "candidates": ["Paris.", "Lyon."], "strategy": "knockout", "swap": False}

    with deployed(router_app(config, None, slow, "AdmissionRouter"), "admission", service) as prefix:

        def post(_: int) -> tuple[int, str | None, float]:
            started = time.monotonic()
            r = httpx.post(f"{BASE}{prefix}/v1/best_of_n", json=body, timeout=120)
            return r.status_code, r.headers.get("retry-after"), time.monotonic() - started

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(post, range(8)))
    statuses = sorted(s for s, _, _ in results)
    assert statuses == [200] * 3 + [503] * 5, results
    refused = [(ra, t) for s, ra, t in results if s == 503]
    assert all(ra == "7" for ra, _ in refused)
    assert max(t for _, t in refused) < 2.5  # refused at once, before the first judge call (3 s) is done
    assert max(t for s, _, t in results if s == 200) >= 9  # the accepted ones ran one at a time
