"""``fit_position_bias`` through a replica's real app: each answer reports the first-position advantage it was
debiased with, and the replica pools it over its groups so that the next group starts from what the judge did."""

from __future__ import annotations

import httpx
import pytest
from stand_in_judges import CONVERSATION, run_app

# The stand-in judge calls two equal responses "first slightly better" (ranking 3): a first-position bias.
EQUAL = ["7, quality 2", "8, quality 2", "9, quality 2", "10, quality 2"]


def test_answers_report_the_advantage_and_the_next_group_starts_from_the_pool() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        body = {"conversation": CONVERSATION, "candidates": EQUAL, "fit_position_bias": True}
        first = await http.post("/v1/rank", json=body)
        second = await http.post("/v1/rank", json={**body, "strategy": "circular", "swap": False})
        plain = await http.post("/v1/rank", json={"conversation": CONVERSATION, "candidates": EQUAL})
        return [first, second, plain]

    first, second, plain = run_app(go)
    assert first.status_code == second.status_code == plain.status_code == 200, first.text
    one, two = first.json()["position_bias"], second.json()["position_bias"]
    assert one["prior_mean"] == 0.0 and one["group_estimate"] > 0.5 and one["calls"] == 12
    # the second group (one order: it cannot tell the bias from the strengths) starts from the first one's evidence
    assert two["prior_mean"] == one["group_estimate"] and two["prior_sd"] <= one["prior_sd"]
    assert plain.json()["position_bias"] is None
    # judge health reads the same estimate
    assert second.json()["diagnostics"]["position_advantage"] == two["estimate"]
    assert plain.json()["diagnostics"]["position_advantage"] is None


def test_a_cohort_answer_reports_the_advantage_too() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        import asyncio

        bodies = [{"conversation": CONVERSATION, "response": t, "group_size": 4} for t in EQUAL]
        return await asyncio.gather(*(http.post("/v1/reward", json=b) for b in bodies))

    router = {"selection": {"strategy": "round_robin", "fit_position_bias": True}, "cohorts": {"strengths": None}}
    responses = run_app(go, router=router)
    assert {r.status_code for r in responses} == {200}, responses[0].text
    assert all(r.json()["position_bias"]["group_estimate"] > 0.5 for r in responses)


def test_cohorts_with_the_whole_verdict_refuse_a_position_fit_in_the_configuration() -> None:
    from serve_app.config import RouterConfig

    with pytest.raises(ValueError, match=r"router\.cohorts\.strengths 'whole_verdict'.*bradley_terry"):
        RouterConfig.model_validate({"selection": {"fit_position_bias": True}})
    RouterConfig.model_validate({"selection": {"fit_position_bias": True}, "cohorts": {"strengths": "bradley_terry"}})
