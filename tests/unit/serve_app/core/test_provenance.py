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

    answers = [r.json()["provenance"] for r in run_app(go)]
    rank, best, *rewards = answers
    assert rank["judges"]["pairwise"]["model"] == "stand-in"
    assert rank["judges"]["pairwise"]["sampling"]["temperature"] >= 0
    assert (rank["design"]["strategy"], best["design"]["strategy"]) == ("round_robin", "knockout")
    assert len(rank["config_hash"]) == 16 and {a["config_hash"] for a in answers} == {rank["config_hash"]}
    assert all(r == rewards[0] for r in rewards)  # one cohort, one provenance


def test_any_configuration_change_changes_the_hash() -> None:
    endpoint = {"endpoint": {"base_url": "http://x/v1", "model": "m", "tokenizer": "t"}}
    one = AppConfig.model_validate({"pairwise": endpoint})
    two = AppConfig.model_validate({"pairwise": endpoint, "router": {"selection": {"swap": False}}})
    assert judges_provenance(one).config_hash != judges_provenance(two).config_hash
    assert judges_provenance(one) == judges_provenance(AppConfig.model_validate({"pairwise": endpoint}))
