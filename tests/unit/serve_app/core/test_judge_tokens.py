"""Judge tokens per tenant: every judge answer's ``usage`` is added to the account of the request it was made for
(``RequestStats.tokens``, by judge and kind) and exported as ``genrm_judge_tokens{judge, kind, tenant}``; two
tenants sharing a replica get their own counts."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from stand_in_judges import CONVERSATION, QualityClient, stand_in_service

from deployments.engine_client import Completion
from deployments.pairwise.judge import PairwiseJudge, PairwiseSettings
from deployments.principle.judge import PrincipleJudge, PrincipleSettings
from deployments.principle.parse import VerdictTokens
from serve_app.config import AppConfig
from serve_app.core.judge_pool import Judges
from serve_app.core.service import JudgingService
from serve_app.core.stats import NullMetrics, RequestStats
from serve_app.ingress.asgi import build_api
from serve_app.protocols.genrm_api import BestOfNRequest

TOKENS = {"GENRM_TOKEN_HEAVY": "heavy-secret", "GENRM_TOKEN_LIGHT": "light-secret"}
TENANTS = [{"name": "heavy", "token_env": "GENRM_TOKEN_HEAVY"}, {"name": "light", "token_env": "GENRM_TOKEN_LIGHT"}]
VERDICT_TOKENS = VerdictTokens(yes_space=1, no_space=2, yes=3, no=4)


class RecordingMetrics:
    """Every metric update the router makes, as (metric, value, tags)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float, dict[str, str]]] = []

    def __getattr__(self, name: str) -> Any:
        log = self.log

        class Instrument:
            def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
                assert value > 0  # Ray's counters refuse anything else
                log.append((name, value, tags or {}))

            def observe(self, value: float, tags: dict[str, str] | None = None) -> None: ...

        return Instrument()

    def tokens(self) -> Counter[tuple[str, str, str]]:
        """genrm_judge_tokens by (tenant, judge, kind)."""
        out: Counter[tuple[str, str, str]] = Counter()
        for name, value, tags in self.log:
            if name == "judge_tokens":
                out[(tags["tenant"], tags["judge"], tags["kind"])] += int(value)
        return out


class PrincipleClient:
    """A principle model that answers Yes with the engine's Yes/No logprobs, and counts words as tokens."""

    model = "stand-in-principle"

    def __init__(self) -> None:
        self.answered: list[tuple[int, int]] = []

    async def chat(self, request: dict[str, Any]) -> Completion:
        top = [{"token": "token_id:1", "logprob": -0.2}, {"token": "token_id:2", "logprob": -1.8}]
        content = [{"token": "Final Judgement:", "logprob": -0.1, "top_logprobs": []}]
        content.append({"token": " Yes", "logprob": -0.2, "top_logprobs": top})
        used = (sum(len(m["content"].split()) for m in request["messages"]), 3)
        self.answered.append(used)
        return Completion(
            text="Final Judgement: Yes",
            finish_reason="stop",
            logprobs=content,
            prompt_tokens=used[0],
            completion_tokens=used[1],
        )


def _spent(client: QualityClient, marker: str) -> dict[str, int]:
    """The prompt and completion tokens the stand-in judge answered for the prompts that show ``marker``."""
    mine = [(p, c) for prompt, p, c in client.answered if marker in prompt]
    return {"prompt": sum(p for p, _ in mine), "completion": sum(c for _, c in mine)}


def test_two_tenants_get_their_own_judge_token_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the replica's app: heavy ranks a group of four and sends a cohort of two rollouts, light ranks a
    group of two, all at once. Each tenant's exported tokens are exactly what the judge answered for its prompts."""
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    client = QualityClient(delay_s=0.01)  # the tenants' calls overlap
    router = {"tenants": TENANTS, "cohorts": {"group_size": 2, "group_timeout_s": 30}}

    async def main() -> RecordingMetrics:
        service = stand_in_service(router, client)
        metrics = RecordingMetrics()
        service.metrics = metrics  # type: ignore[assignment]
        transport = httpx.ASGITransport(app=build_api(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://router", timeout=30) as http:

            def post(tenant: str, path: str, body: dict[str, Any]) -> Any:
                headers = {"Authorization": f"Bearer {TOKENS[f'GENRM_TOKEN_{tenant.upper()}']}"}
                return http.post(path, json=body, headers=headers)

            heavy_rank = {"conversation": CONVERSATION, "candidates": [f"job-heavy {k}, quality {k}" for k in range(4)]}
            light_rank = {"conversation": CONVERSATION, "candidates": [f"job-light {k}, quality {k}" for k in (1, 2)]}
            rollouts = [{"conversation": CONVERSATION, "response": f"job-heavy r{k}, quality {k}"} for k in (1, 2)]
            answers = await asyncio.gather(
                post("heavy", "/v1/rank", heavy_rank),
                post("light", "/v1/rank", light_rank),
                *(post("heavy", "/v1/reward", r) for r in rollouts),
            )
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
        await asyncio.sleep(0.05)  # a cohort's metrics are recorded just after its callers are woken
        return metrics

    exported = asyncio.run(main()).tokens()
    for tenant in ("heavy", "light"):
        spent = _spent(client, f"job-{tenant}")  # not "light": the judge's instructions say "slightly"
        assert spent["prompt"] > 0 and spent["completion"] > 0
        assert {kind: exported[(tenant, "pairwise", kind)] for kind in spent} == spent
    assert exported[("heavy", "pairwise", "prompt")] > exported[("light", "pairwise", "prompt")]
    assert {tenant for tenant, _, _ in exported} == {"heavy", "light"}  # the warm-up call is nobody's


def test_both_judges_tokens_reach_the_request_account() -> None:
    """One best-of-N with both judges: the pairwise and the principle tokens are kept apart, each the sum of what
    that judge's answers said they used (a principle call's answers, one per principle, added up)."""
    pairwise, principle = QualityClient(), PrincipleClient()
    endpoint = {"endpoint": {"base_url": "http://unused/v1", "model": "stand-in", "tokenizer": "unused"}}
    config = AppConfig.model_validate({"pairwise": endpoint, "principle": endpoint})
    judges = Judges(
        pairwise=PairwiseJudge(pairwise, PairwiseSettings(prompt_format="rendered", structured_output="compact")),
        principle=PrincipleJudge(principle, PrincipleSettings(prompt_format="rendered"), VERDICT_TOKENS),
    )
    service = JudgingService(config, judges, metrics=NullMetrics())  # outside an event loop: no warm-up calls
    stats = RequestStats("best_of_n", tenant="job-a")
    body = BestOfNRequest.model_validate(
        {
            "conversation": CONVERSATION,
            "candidates": ["7, quality 3", "9, quality 1", "13, quality 2"],
            "principles": ["correctness", "brevity"],
            "strategy": "round_robin",
        }
    )
    asyncio.run(service.best_of_n(body, stats))

    assert len(principle.answered) == 3 * 2  # three candidates, two principles each
    expected = {
        ("pairwise", "prompt"): sum(p for _, p, _ in pairwise.answered),
        ("pairwise", "completion"): sum(c for _, _, c in pairwise.answered),
        ("principle", "prompt"): sum(p for p, _ in principle.answered),
        ("principle", "completion"): 3 * 2 * 3,
    }
    assert dict(stats.tokens) == expected and all(v > 0 for v in expected.values())


def test_a_raw_chat_call_counts_its_tokens_too() -> None:
    """The OpenAI front's unit, one chat call sent as it is (``JudgingService.chat``), is accounted as the judges'
    own calls are."""
    client = QualityClient()
    service = stand_in_service(client=client)  # outside an event loop: no warm-up calls
    assert service.pairwise is not None
    stats = RequestStats("chat_completions", tenant="job-b")
    request = {"messages": [{"role": "user", "content": "Response 1: quality 2. Response 2: quality 1."}]}
    asyncio.run(service.chat("pairwise", service.pairwise, request, stats))
    ((_, prompt, completion),) = client.answered
    assert dict(stats.tokens) == {("pairwise", "prompt"): prompt, ("pairwise", "completion"): completion}
