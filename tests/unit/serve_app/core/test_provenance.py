"""Every group answer says where it came from: the judges (model, source, sampling), the design it ran and a hash of
the whole configuration, which any change of the configuration changes."""

from __future__ import annotations

import asyncio

import httpx
from stand_in_judges import CONVERSATION, run_app

from serve_app.config import AppConfig
from serve_app.core.answers import judges_provenance

TEXTS = ["7, quality 1", "7, quality 4", "7, quality 6"]


def test_rank_reward_and_best_of_n_name_their_judges_design_and_config() -> None:
    async def go(http: httpx.AsyncClient) -> list[httpx.Response]:
        rank = await http.post("/v1/rank", json={"conversation": CONVERSATION, "candidates": TEXTS})
        best = await http.post(
            "/v1/best_of_n", json={"conversation": CONVERSATION, "candidates": TEXTS, "strategy": "knockout"}
        )
        bodies = [{"conversation": CONVERSATION, "response": t, "group_id": "p", "group_size": 3} for t in TEXTS]
        rewards = await asyncio.gather(*(http.post("/v1/reward", json=b) for b in bodies))
        return [rank, best, *rewards]

    full = [r.json() for r in run_app(go)]
    answers = [a["provenance"] for a in full]
    rank, best, *rewards = answers
    # the whole verdict's own terms come with every answer it fitted: the stand-in judge has no position bias
    for answer in (full[0], full[2]):
        terms = answer["judge_terms"]
        assert abs(terms["position_advantage"]) < 3 * terms["position_advantage_stderr"] + 0.05, terms
        assert 1 <= terms["mean_score"] <= 5 and answer["position_bias"] is None
    assert rank["judges"]["pairwise"]["model"] == "stand-in"
    assert rank["judges"]["pairwise"]["sampling"]["temperature"] >= 0
    assert (rank["design"]["strategy"], best["design"]["strategy"]) == ("round_robin", "knockout")
    assert len(rank["config_hash"]) == 16 and {a["config_hash"] for a in answers} == {rank["config_hash"]}
    assert all(r == rewards[0] for r in rewards)  # one cohort, one provenance
    # Both fit the whole verdict by default (router.cohorts.strengths; router.selection.strengths unset).
    assert (rewards[0]["design"]["strengths"], rank["design"]["strengths"]) == ("whole_verdict", "whole_verdict")


def test_any_configuration_change_changes_the_hash() -> None:
    endpoint = {"endpoint": {"base_url": "http://x/v1", "model": "m", "tokenizer": "t"}}
    one = AppConfig.model_validate({"pairwise": endpoint})
    two = AppConfig.model_validate({"pairwise": endpoint, "router": {"selection": {"swap": False}}})
    assert judges_provenance(one).config_hash != judges_provenance(two).config_hash
    assert judges_provenance(one) == judges_provenance(AppConfig.model_validate({"pairwise": endpoint}))


def test_a_group_that_met_two_judge_versions_is_judged_again_on_one() -> None:
    """A rolling update of the judge while a group is judged: its first calls answer as v1, the rest as v2. The
    whole group is judged again, all on v2, and its answer says so; a judge that keeps changing is a 503."""
    from stand_in_judges import QualityClient

    def rank(client: QualityClient) -> httpx.Response:
        async def go(http: httpx.AsyncClient) -> httpx.Response:
            return await http.post("/v1/rank", json={"conversation": CONVERSATION, "candidates": TEXTS})

        return run_app(go, client=client)

    updated = QualityClient(version=lambda k: "v1" if k <= 4 else "v2")  # call 1 is the warm-up
    r = rank(updated)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["provenance"]["judge_versions"] == {"stand-in": "v2"}
    assert updated.calls > 1 + out["pairwise_calls"]  # the mixed first judging was thrown away
    flapping = rank(QualityClient(version=lambda k: f"v{k % 2}"))
    assert flapping.status_code == 503 and "updated" in flapping.text


def test_a_design_chosen_by_budget_is_named_with_its_settings() -> None:
    texts = [f"answer {k}, quality {k}" for k in range(6)]

    async def go(http: httpx.AsyncClient) -> httpx.Response:
        body = {"conversation": CONVERSATION, "candidates": texts, "strategy": "by_budget", "max_pairwise_calls": 12}
        return await http.post("/v1/rank", json=body)

    out = run_app(go).json()
    assert out["design"] == "swiss, one order, whole verdict, up to 12 calls" and out["pairwise_calls"] <= 12
    design = out["provenance"]["design"]
    assert (design["strategy"], design["swap"], design["strengths"]) == ("swiss", False, "whole_verdict")
    assert out["ranks"] == [6, 5, 4, 3, 2, 1]
