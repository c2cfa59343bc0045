"""Cohorts sharded over several owners (``router.cohorts.owners``): each cohort key hashes to one owner, so the samples
of a cohort meet there from whichever router replica they reach; losing an owner loses only its own cohorts, whose
callers get a 503 with Retry-After at once, while the other owners' cohorts close complete; a replacement owner
takes the retries."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from stand_in_judges import OwnerHandle, QualityClient, stand_in_service

from serve_app.ingress.asgi import build_api

ROUTER = {"cohorts": {"group_size": 3, "group_timeout_s": 30}, "retry_after_s": 4}
PROMPTS = [f"Name prime number {k}." for k in range(8)]


class CountingOwner(OwnerHandle):
    """An owner's handle that notes the prompts forwarded to it."""

    def __init__(self, owner: Any) -> None:
        super().__init__(owner)
        self.prompts: set[str] = set()

    async def remote(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.prompts.add(payload["conversation"][-1]["content"])
        return await super().remote(payload)


class DeadOwner:
    """An owner replica that died: the handle call fails at once, as Ray's does for a dead actor."""

    def __init__(self) -> None:
        self.forwarded_reward = self

    async def remote(self, payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("ActorDiedError: the owner replica died")


def body(prompt: str, quality: int) -> dict[str, Any]:
    return {"conversation": [{"role": "user", "content": prompt}], "response": f"7, quality {quality}"}


async def post_all(owners: list[Any], bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """The bodies sent alternately through two router replicas that forward to ``owners``."""
    forwarders = []
    for _ in range(2):
        svc = stand_in_service(ROUTER, QualityClient())
        svc.cohort_owner, svc.cohorts = owners, None  # as JudgingService(cohort_owner=[...])
        forwarders.append(svc)
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=build_api(f)), base_url="http://r", timeout=60)
        for f in forwarders
    ]
    try:
        return list(await asyncio.gather(*(clients[k % 2].post("/v1/reward", json=b) for k, b in enumerate(bodies))))
    finally:
        for c in clients:
            await c.aclose()


def test_each_cohort_meets_in_the_one_owner_its_key_hashes_to() -> None:
    async def main() -> tuple[list[httpx.Response], list[CountingOwner]]:
        owners = [CountingOwner(stand_in_service(ROUTER, QualityClient())) for _ in range(2)]
        bodies = [body(p, q) for q in (1, 2, 3) for p in PROMPTS]  # every prompt's three samples, interleaved
        return await post_all(list(owners), bodies), owners

    responses, owners = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses]
    out = [r.json() for r in responses]
    by_prompt: dict[int, set[str]] = {}
    for k, o in enumerate(out):
        by_prompt.setdefault(k % len(PROMPTS), set()).add(o["cohort_id"])
    assert all(len(ids) == 1 for ids in by_prompt.values())  # one cohort per prompt
    assert all(o["size_judged"] == 3 and o["closed_by"] == "full" for o in out)
    first, second = (o.prompts for o in owners)  # both shards hold some of the eight cohorts, none of the other's
    assert first and second and not first & second and first | second == set(PROMPTS)


def test_a_lost_owner_loses_only_its_cohorts_and_its_callers_hear_at_once() -> None:
    async def main() -> tuple[list[httpx.Response], list[float], list[Any]]:
        live = stand_in_service(ROUTER, QualityClient())
        owners: list[Any] = [OwnerHandle(live), DeadOwner()]
        bodies = [body(p, q) for q in (1, 2, 3) for p in PROMPTS]
        started = time.monotonic()
        responses = await post_all(owners, bodies)
        took = [time.monotonic() - started] * len(responses)
        # A replacement owner starts: the retries of the lost owner's samples land there and complete.
        owners[1] = OwnerHandle(stand_in_service(ROUTER, QualityClient()))
        lost = [b for b, r in zip(bodies, responses, strict=True) if r.status_code == 503]
        return responses, took, await post_all(owners, lost)

    responses, took, retried = asyncio.run(main())
    refused = [r for r in responses if r.status_code == 503]
    answered = [r.json() for r in responses if r.status_code == 200]
    assert refused and answered and len(refused) + len(answered) == len(responses)
    assert all(r.headers["retry-after"] == "4" and "cohort owner" in r.json()["detail"] for r in refused)
    assert max(took) < 10  # at once, not at group_timeout_s
    assert all(a["closed_by"] == "full" and a["size_judged"] == 3 for a in answered)  # no surviving cohort split
    assert [r.status_code for r in retried] == [200] * len(refused)
    assert all(r.json()["size_judged"] == 3 and r.json()["closed_by"] == "full" for r in retried)


def test_the_builder_makes_one_single_replica_deployment_per_owner_shard() -> None:
    from serve_app.app import bind_router
    from serve_app.config import AppConfig

    endpoint = {"endpoint": {"base_url": "http://x/v1", "model": "m", "tokenizer": "t"}}
    router = {"deployment": {"num_replicas": 2}, "cohorts": {"owners": 3}}
    app = bind_router(AppConfig.model_validate({"pairwise": endpoint, "router": router}), {}, None, None)
    owners = app._bound_deployment.init_args[4]
    names = [o._bound_deployment.name for o in owners]
    assert names == ["CohortOwner0", "CohortOwner1", "CohortOwner2"]
    assert all(o._bound_deployment._deployment_config.num_replicas == 1 for o in owners)
