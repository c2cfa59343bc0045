"""The router fuzzed against its own OpenAPI schema with schemathesis (valid and invalid requests): never a 5xx.

The fuzzed router is the real one on the running cluster; its judges are instant stand-ins (bench/instant_judges)
so that thousands of generated requests take seconds instead of hours of CPU inference. The same application
checks reproducibility end to end: with the same seed and the same judge answers, the same choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
schemathesis = pytest.importorskip("schemathesis")
httpx = pytest.importorskip("httpx")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from live_service import BASE, CONVERSATION, deployed, router_app, smollm2_folder  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402


@pytest.fixture(scope="module")
def fuzz_prefix(service: httpx.Client) -> Iterator[str]:
    from transformers import AutoTokenizer

    from bench.instant_judges import InstantPairwise, InstantPrinciple
    from deployments.principle.parse import VerdictTokens

    tokens = VerdictTokens.from_tokenizer(AutoTokenizer.from_pretrained(str(smollm2_folder())))
    config = {
        "principle": {"hosted": {"llm_config": {"model_loading_config": {"model_id": "instant-principle"}}}},
        "pairwise": {"hosted": {"llm_config": {"model_loading_config": {"model_id": "instant-pairwise"}}}},
        # admission must not be what answers: a 503 would count as a server error here
        "router": {
            "max_concurrent_requests": 64,
            "max_queued_requests": 256,
            # generated /v1/reward samples rarely complete a group: do not let each wait the default timeout
            "cohorts": {"group_timeout_s": 0.2},
        },
    }
    app = router_app(
        config,
        InstantPrinciple.options(name="FuzzPrinciple").bind(tokens.yes_space, tokens.no_space),
        InstantPairwise.options(name="FuzzPairwise").bind(),
        "FuzzRouter",
    )
    with deployed(app, "fuzz", service) as prefix:
        yield prefix


@pytest.fixture(scope="module")
def router_schema(fuzz_prefix: str, service: httpx.Client) -> Any:
    return schemathesis.openapi.from_dict(service.get(f"{fuzz_prefix}/openapi.json").json())


def test_no_request_gets_a_server_error(router_schema: Any, fuzz_prefix: str) -> None:
    """Valid and invalid requests for every operation of the schema; any 5xx fails with the request to replay."""
    cases = st.one_of([router_schema.as_strategy(mode) for mode in GenerationMode])
    seen: list[str] = []

    @settings(max_examples=800, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def check(case: Any) -> None:
        response = case.call(base_url=f"{BASE}{fuzz_prefix}", timeout=60)
        seen.append(f"{case.method} {case.path}")
        assert response.status_code < 500, (
            f"{response.status_code} for {case.method} {case.path}: {response.text[:500]}\n{case.as_curl_command()}"
        )

    check()
    assert len(set(seen)) >= 6, sorted(set(seen))  # every route was exercised


def test_same_seed_same_answers_same_response(fuzz_prefix: str, service: httpx.Client) -> None:
    body = {
        "conversation": CONVERSATION,
        "candidates": [f"Answer number {k}: Paris." for k in range(12)],
        "principles": ["correctness", "brevity"],
        "seed": 11,
    }
    answers = []
    for _ in range(3):
        r = service.post(f"{fuzz_prefix}/v1/best_of_n", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        out.pop("timings")
        answers.append(out)
    assert answers[0]["pairwise_calls"] > 0 and answers[0]["principle_calls"] == 12
    assert answers[1] == answers[0] and answers[2] == answers[0]
