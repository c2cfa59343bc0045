"""Cohorts with several router replicas: the samples of one group meet in the one owner replica whichever replica
receives them; the configuration says when an owner is needed; and a Serve config that would split cohorts unseen
is refused. In process, with two JudgingServices standing for two replicas (no Ray)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")

from stand_in_judges import CONVERSATION, OwnerHandle, QualityClient
from stand_in_judges import stand_in_service as service

from serve_app.config import RouterConfig
from serve_app.config_check import validate_serve_config
from serve_app.ingress.asgi import build_api

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())


def test_samples_reaching_different_replicas_meet_in_the_owner() -> None:
    router = {"cohorts": {"group_size": 4, "group_timeout_s": 30}}

    async def main() -> list[httpx.Response]:
        owner = service(router, QualityClient())
        forwarder = service(router, QualityClient())
        forwarder.cohort_owner, forwarder.cohorts = OwnerHandle(owner), None  # as JudgingService(cohort_owner=...)
        clients = []
        for svc in (owner, forwarder):
            transport = httpx.ASGITransport(app=build_api(svc))
            clients.append(httpx.AsyncClient(transport=transport, base_url="http://router", timeout=30))
        try:
            bodies = [{"conversation": CONVERSATION, "response": f"7, quality {q}"} for q in (1, 4, 2, 3)]
            # alternate replicas, as Serve's proxy might
            return await asyncio.gather(*(clients[k % 2].post("/v1/reward", json=b) for k, b in enumerate(bodies)))
        finally:
            for c in clients:
                await c.aclose()

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    out = [r.json() for r in responses]
    assert len({o["cohort_id"] for o in out}) == 1 and all(o["complete"] for o in out)
    assert [o["rank"] for o in out] == [4, 1, 3, 2]


def test_a_refusal_by_the_owner_reaches_the_caller_unchanged() -> None:
    async def main() -> httpx.Response:
        owner = service({"cohorts": {"max_open_cohorts": 1, "group_timeout_s": 30}, "retry_after_s": 7})
        forwarder = service()
        forwarder.cohort_owner, forwarder.cohorts = OwnerHandle(owner), None
        waiting = asyncio.ensure_future(
            owner.forwarded_reward({"conversation": CONVERSATION, "response": "a", "group_id": "g1"})
        )
        await asyncio.sleep(0.01)
        transport = httpx.ASGITransport(app=build_api(forwarder))
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as http:
            refused = await http.post(
                "/v1/reward", json={"conversation": CONVERSATION, "response": "b", "group_id": "g2"}
            )
        waiting.cancel()
        return refused

    r = asyncio.run(main())
    assert r.status_code == 503 and r.headers["retry-after"] == "7" and "max_open_cohorts" in r.text


@pytest.mark.parametrize(
    ("deployment", "replicated"),
    [
        ({}, False),
        ({"num_replicas": 1}, False),
        ({"num_replicas": 2}, True),
        ({"num_replicas": "auto"}, True),
        ({"autoscaling_config": {"min_replicas": 1, "max_replicas": 4}}, True),
        ({"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}}, False),
    ],
)
def test_when_the_router_needs_a_cohort_owner(deployment: dict[str, Any], replicated: bool) -> None:
    assert RouterConfig(deployment=deployment).replicated is replicated


def test_replicas_raised_where_the_builder_cannot_see_them_are_refused() -> None:
    document = yaml.safe_load((ROOT / "config.yaml").read_text())
    document["applications"][0]["deployments"] = [{"name": "Router", "num_replicas": 3}]
    with pytest.raises(ValueError, match=r"args\.router\.deployment"):
        validate_serve_config(document)
    document["applications"][0]["args"]["router"]["cohorts"] = {"enabled": False}
    validate_serve_config(document)  # no cohorts: nothing to split


def test_a_group_larger_than_max_candidates_is_refused_in_the_config() -> None:
    with pytest.raises(ValueError, match="above max_candidates"):
        RouterConfig(max_candidates=8, cohorts={"group_size": 16})
