"""Anchored rewards: with a reference answer, each rollout is judged against it (both orders) and its reward is its
mean margin over it — the same rollout gets the same reward whatever group it is in; the mask and the retry rule
hold as for any cohort."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from stand_in_judges import CONVERSATION, QualityClient, run_app

REFERENCE = "7, quality 4"


def rewards(groups: list[list[str]], client: QualityClient | None = None) -> list[list[dict[str, Any]]]:
    async def go(http: httpx.AsyncClient) -> list[list[dict[str, Any]]]:
        async def group(g: int, texts: list[str]) -> list[dict[str, Any]]:
            bodies = [
                {
                    "conversation": CONVERSATION,
                    "response": t,
                    "reference": REFERENCE,
                    "group_id": f"g{g}",
                    "group_size": len(texts),
                }
                for t in texts
            ]
            answers = await asyncio.gather(*(http.post("/v1/reward", json=b) for b in bodies))
            assert [r.status_code for r in answers] == [200] * len(texts), [r.text for r in answers]
            return [r.json() for r in answers]

        return list(await asyncio.gather(*(group(g, texts) for g, texts in enumerate(groups))))

    return run_app(go, client=client)


def test_a_rollouts_reward_is_its_margin_over_the_reference_whatever_its_group() -> None:
    weak, strong = rewards([["7, quality 1", "7, quality 6"], ["7, quality 6", "7, quality 9", "7, quality 8"]])
    assert [a["reward"] for a in weak] == [pytest.approx(-1.5), pytest.approx(1.5)]
    assert [a["reward"] for a in strong] == [pytest.approx(1.5)] * 3  # all beat the reference: no group scale
    assert weak[1]["reward"] == strong[0]["reward"]  # the same rollout, the same reward in another group
    assert all(a["valid"] and a["strategy"] == "anchored" for g in (weak, strong) for a in g)
    assert weak[0]["pairwise_calls"] == 4  # one pair per rollout, both orders


def test_an_unjudged_rollout_is_masked_against_the_reference_too() -> None:
    broken = QualityClient(breaks_on=lambda prompt: "quality 9" in prompt)
    (group,) = rewards([["7, quality 1", "7, quality 9", "7, quality 6"]], client=broken)
    assert [a["valid"] for a in group] == [True, False, True]
    assert group[1]["reward"] == pytest.approx((group[0]["reward"] + group[2]["reward"]) / 2)


def test_an_empty_reference_is_refused_with_the_reason() -> None:
    async def go(http: httpx.AsyncClient) -> httpx.Response:
        body = {"conversation": CONVERSATION, "response": "7", "reference": " ", "group_size": 1}
        return await http.post("/v1/reward", json=body)

    r = run_app(go)
    assert r.status_code == 422 and "reference is empty" in r.text
