"""Several jobs sharing the service (``router.tenants``): the token names the tenant; cohorts are kept per tenant
(and per job); a tenant over its own limits gets 429 while the others are let in; contended slots — admission and
the judge lanes — go to the tenant holding the fewest per unit of weight."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stand_in_judges import CONVERSATION, QualityClient, stand_in_service

from serve_app.client.http import _outcome, _Wait
from serve_app.config import AppConfig, RouterConfig
from serve_app.core.admission import Admission, FairSlots, TenantLimits, TenantOverloaded
from serve_app.core.lanes import JudgeLane
from serve_app.core.stats import RequestStats, record
from serve_app.ingress.asgi import build_api

TOKENS = {"GENRM_TOKEN_HEAVY": "heavy-secret", "GENRM_TOKEN_LIGHT": "light-secret"}
TENANTS = [
    {"name": "heavy", "token_env": "GENRM_TOKEN_HEAVY"},
    {"name": "light", "token_env": "GENRM_TOKEN_LIGHT", "weight": 2.0},
]


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    return {"heavy": TOKENS["GENRM_TOKEN_HEAVY"], "light": TOKENS["GENRM_TOKEN_LIGHT"]}


def run(router: dict[str, Any], go: Any, client: QualityClient | None = None) -> Any:
    """``go(post)`` against a fresh replica app, ``post(tenant_token, path, body)``."""

    async def main() -> Any:
        app = build_api(stand_in_service(router, client))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://router", timeout=30) as http:

            async def post(token: str | None, path: str, body: dict[str, Any]) -> httpx.Response:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                return await http.post(path, json=body, headers=headers)

            return await go(post)

    return asyncio.run(main())


# ---- the mixing case: two jobs, one prompt ------------------------------------------------------------------------


def test_two_tenants_sending_the_same_prompt_get_cohorts_of_their_own(tokens: dict[str, str]) -> None:
    """The reported case: two jobs, the same prompt, no group_id, group_size 4, 8 samples at once. Before tenants,
    each of the two cohorts held two samples of each job. Now each job's four rewards come from one cohort of its
    own four samples."""
    router = {"tenants": TENANTS, "cohorts": {"group_size": 4, "group_timeout_s": 30}}

    async def go(post: Any) -> list[tuple[str, httpx.Response]]:
        sends = [(tenant, q) for q in (1, 2, 3, 4) for tenant in ("heavy", "light")]  # interleaved arrivals
        bodies = [{"conversation": CONVERSATION, "response": f"7, quality {q}"} for _, q in sends]
        answers = await asyncio.gather(
            *(post(tokens[t], "/v1/reward", b) for (t, _), b in zip(sends, bodies, strict=True))
        )
        return [(t, a) for (t, _), a in zip(sends, answers, strict=True)]

    answers = run(router, go)
    assert all(a.status_code == 200 for _, a in answers), [a.text for _, a in answers]
    cohorts = {t: {a.json()["cohort_id"] for u, a in answers if u == t} for t in ("heavy", "light")}
    assert all(len(ids) == 1 for ids in cohorts.values()) and cohorts["heavy"] != cohorts["light"]
    for tenant in ("heavy", "light"):
        mine = [a.json() for u, a in answers if u == tenant]
        assert {m["size_judged"] for m in mine} == {4} and sorted(m["rank"] for m in mine) == [1, 2, 3, 4]
        assert all(m["closed_by"] == "full" for m in mine)


def test_jobs_of_one_tenant_are_kept_apart_when_they_say_so(tokens: dict[str, str]) -> None:
    router = {"tenants": TENANTS, "cohorts": {"group_size": 2, "group_timeout_s": 30}}

    async def go(post: Any) -> list[httpx.Response]:
        bodies = [
            {"conversation": CONVERSATION, "response": f"7, quality {q}", "job_id": job}
            for job, q in (("a", 1), ("b", 2), ("a", 3), ("b", 4))
        ]
        return await asyncio.gather(*(post(tokens["heavy"], "/v1/reward", b) for b in bodies))

    out = [r.json() for r in run(router, go)]
    assert out[0]["cohort_id"] == out[2]["cohort_id"] != out[1]["cohort_id"] == out[3]["cohort_id"]
    assert {o["size_judged"] for o in out} == {2}


def test_the_token_names_the_tenant(tokens: dict[str, str]) -> None:
    router = {"tenants": TENANTS}
    body = {"conversation": CONVERSATION, "candidates": ["quality 1", "quality 2"]}

    async def go(post: Any) -> list[int]:
        return [(await post(t, "/v1/rank", body)).status_code for t in (tokens["light"], "wrong", None)]

    assert run(router, go) == [200, 401, 401]


def test_a_tenant_without_its_token_stops_the_router_from_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRM_TOKEN_HEAVY", "x")
    monkeypatch.delenv("GENRM_TOKEN_LIGHT", raising=False)
    with pytest.raises(ValueError, match="GENRM_TOKEN_LIGHT holds no token"):
        build_api(stand_in_service({"tenants": TENANTS}))


@pytest.mark.parametrize(
    ("router", "message"),
    [
        ({"tenants": [TENANTS[0], {**TENANTS[1], "name": "heavy"}]}, "its own name"),
        ({"tenants": [TENANTS[0], {**TENANTS[1], "token_env": "GENRM_TOKEN_HEAVY"}]}, "its own token_env"),
        ({"tenants": TENANTS, "auth_token": "x"}, "exclude each other"),
        ({"tenants": [{"name": "default", "token_env": "X"}]}, "pick another"),
    ],
)
def test_tenant_configurations_that_cannot_work_are_refused(router: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RouterConfig.model_validate(router)


def test_the_single_token_configuration_is_one_tenant() -> None:
    judge = {"endpoint": {"base_url": "http://x/v1", "model": "m", "tokenizer": "t"}}
    config = AppConfig.model_validate({"pairwise": judge, "router": {"auth_token": "t"}})
    assert config.router.tenants == []


# ---- limits and fairness ------------------------------------------------------------------------------------------


def test_a_tenant_over_its_limits_gets_429_while_another_is_let_in(tokens: dict[str, str]) -> None:
    tenants = [{**TENANTS[0], "max_concurrent_requests": 1, "max_queued_requests": 0}, TENANTS[1]]
    router = {"tenants": tenants, "retry_after_s": 3, "selection": {"strategy": "round_robin"}}
    body = {"conversation": CONVERSATION, "candidates": ["quality 1", "quality 2"]}

    async def go(post: Any) -> list[httpx.Response]:
        first = asyncio.ensure_future(post(tokens["heavy"], "/v1/rank", body))
        await asyncio.sleep(0.05)  # the first holds heavy's one slot
        second, light = await asyncio.gather(
            post(tokens["heavy"], "/v1/rank", body), post(tokens["light"], "/v1/rank", body)
        )
        return [await first, second, light]

    first, second, light = run(router, go, QualityClient(delay_s=0.3))
    assert first.status_code == 200 and light.status_code == 200
    assert second.status_code == 429 and second.headers["retry-after"] == "3"
    assert "'heavy'" in second.json()["detail"] and "1 running + 0 queued" in second.json()["detail"]


def test_a_tenant_filling_its_share_of_the_cohort_table_gets_429_while_another_joins(tokens: dict[str, str]) -> None:
    """/v1/reward: the heavy tenant (weight 1 of 3) holds at most 1 of 3 open cohorts; its next group is told 429
    with Retry-After, and the light tenant's groups still open: before shares, both got 503 from a full table."""
    router = {"tenants": TENANTS, "retry_after_s": 3, "cohorts": {"group_size": 2, "max_open_cohorts": 3}}

    async def go(post: Any) -> list[httpx.Response]:
        def body(group: str, q: int) -> dict[str, Any]:
            return {"conversation": CONVERSATION, "response": f"7, quality {q}", "group_id": group}

        waiting = [asyncio.ensure_future(post(tokens["heavy"], "/v1/reward", body("h1", 1)))]
        waiting += [asyncio.ensure_future(post(tokens["light"], "/v1/reward", body(g, 1))) for g in ("l1", "l2")]
        await asyncio.sleep(0.1)
        refused = await post(tokens["heavy"], "/v1/reward", body("h2", 1))
        closing = [post(tokens[t], "/v1/reward", body(g, 2)) for t, g in (("heavy", "h1"), ("light", "l1"))]
        closing.append(post(tokens["light"], "/v1/reward", body("l2", 2)))
        return [refused, *await asyncio.gather(*waiting, *closing)]

    refused, *answered = run(router, go)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "3", refused.text
    assert "'heavy'" in refused.json()["detail"] and "share" in refused.json()["detail"]
    assert all(a.status_code == 200 for a in answered), [a.text for a in answered]


def test_the_client_waits_out_a_429_with_retry_after() -> None:
    response = httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "tenant at its limits"})
    waited = _outcome("POST", "/v1/rank", response)
    assert isinstance(waited, _Wait) and waited.seconds == 2


def test_a_light_tenant_is_not_queued_behind_a_heavy_backlog() -> None:
    async def main() -> list[str]:
        slots = FairSlots(1)
        order: list[str] = []

        async def one(tenant: str) -> None:
            async with slots.slot(tenant):
                order.append(tenant)
                await asyncio.sleep(0.01)

        heavy = [asyncio.ensure_future(one("heavy")) for _ in range(5)]
        await asyncio.sleep(0)  # the heavy backlog is queued first
        light = asyncio.ensure_future(one("light"))
        await asyncio.gather(*heavy, light)
        return order

    order = asyncio.run(main())
    assert order.index("light") == 1  # right after the call that held the slot, not behind four more


def test_weights_share_contended_slots() -> None:
    """Both tenants backlogged on one slot: a (weight 2) is granted twice as often as b (weight 1), whichever
    queued first."""

    async def main() -> list[str]:
        slots = FairSlots(1, {"a": 2.0, "b": 1.0})
        order: list[str] = []

        async def one(tenant: str) -> None:
            async with slots.slot(tenant):
                order.append(tenant)
                await asyncio.sleep(0.001)

        first = asyncio.ensure_future(one("a"))
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(one(t)) for t in ["b"] * 6 + ["a"] * 6]
        await asyncio.gather(first, *rest)
        return order

    order = asyncio.run(main())[:9]
    assert order.count("a") == 6 and order.count("b") == 3, order


def test_a_judge_lane_serves_tenants_by_fair_share() -> None:
    async def main() -> list[str]:
        lane = JudgeLane("pairwise", silence_s=30, max_inflight=1)
        order: list[str] = []

        async def call(tenant: str) -> None:
            async def work() -> None:
                order.append(tenant)
                await asyncio.sleep(0.01)

            await lane.call(work, tenant=tenant)

        heavy = [asyncio.ensure_future(call("heavy")) for _ in range(4)]
        await asyncio.sleep(0)
        await asyncio.gather(*heavy, call("light"))
        return order

    assert asyncio.run(main()).index("light") == 1


def test_admission_checks_the_tenants_limits_before_the_replicas() -> None:
    async def main() -> None:
        admission = Admission(4, 4, {"heavy": TenantLimits(1.0, running=1, queued=1)})
        async with admission.slot(tenant="heavy"):
            hold = asyncio.ensure_future(_hold(admission, "heavy"))
            await asyncio.sleep(0)
            with pytest.raises(TenantOverloaded):
                admission.check("heavy")
            admission.check("light")  # another tenant is still let in
            hold.cancel()

    asyncio.run(main())


async def _hold(admission: Admission, tenant: str) -> None:
    async with admission.slot(tenant=tenant):
        await asyncio.sleep(10)


def test_a_capped_tenant_leaves_the_judge_room_for_the_others() -> None:
    """``max_judge_calls``: heavy holds at most 2 calls of an unbounded lane, however many it has; light's call is
    sent at once."""

    async def main() -> tuple[int, float]:
        lane = JudgeLane("pairwise", silence_s=30, caps={"heavy": 2})
        most = 0
        light_waited = -1.0

        async def call(tenant: str) -> None:
            nonlocal most, light_waited
            queued = asyncio.get_running_loop().time()

            async def work() -> None:
                nonlocal most, light_waited
                if tenant == "light":
                    light_waited = asyncio.get_running_loop().time() - queued
                most = max(most, lane.inflight)
                await asyncio.sleep(0.02)

            await lane.call(work, tenant=tenant)

        heavy = [asyncio.ensure_future(call("heavy")) for _ in range(6)]
        await asyncio.sleep(0)
        await asyncio.gather(*heavy, call("light"))
        return most, light_waited

    most, light_waited = asyncio.run(main())
    assert most == 3  # two of heavy's and light's
    assert 0 <= light_waited < 0.01


def test_a_tenants_judge_call_cap_comes_from_its_config(tokens: dict[str, str]) -> None:
    router = {"tenants": [{**TENANTS[0], "max_judge_calls": 3}, TENANTS[1]]}
    service = stand_in_service(router)
    lanes = service.lanes.values()
    assert lanes and all(lane._slots is not None and lane._slots.caps == {"heavy": 3} for lane in lanes)


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 4),
    plan=st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), min_size=1, max_size=25),
    cap=st.one_of(st.none(), st.integers(1, 3)),
)
def test_fair_slots_never_exceed_capacity_and_serve_every_waiter(
    capacity: int, plan: list[tuple[str, bool]], cap: int | None
) -> None:
    """Whatever arrives, and whichever waiters are cancelled: never more holders than slots nor, for a capped
    tenant (a), than its cap; every waiter that was not cancelled gets a slot, and all slots are free at the end."""

    async def main() -> None:
        slots = FairSlots(capacity, {"a": 1.0, "b": 2.0, "c": 0.5}, {"a": cap} if cap is not None else None)
        holders: dict[str, int] = {t: 0 for t in "abc"}
        served = 0

        async def one(tenant: str) -> None:
            nonlocal served
            async with slots.slot(tenant):
                holders[tenant] += 1
                try:
                    assert sum(holders.values()) <= capacity
                    assert cap is None or holders["a"] <= cap
                    await asyncio.sleep(0.001)
                    served += 1
                finally:
                    holders[tenant] -= 1

        tasks = [(asyncio.ensure_future(one(t)), cancel) for t, cancel in plan]
        await asyncio.sleep(0)
        for task, cancel in tasks:
            if cancel:
                task.cancel()
        await asyncio.gather(*(t for t, _ in tasks), return_exceptions=True)
        assert served >= sum(not c for _, c in plan) - capacity  # the ones cancelled while holding a slot aside
        assert slots.held == {} and slots.waiting == 0 and slots._free == capacity

    asyncio.run(main())


def test_metrics_carry_the_tenant() -> None:
    seen: list[dict[str, str]] = []

    class Recording:
        def inc(self, *args: Any, tags: dict[str, str] | None = None) -> None:
            seen.append(tags or {})

        def observe(self, *args: Any, tags: dict[str, str] | None = None) -> None: ...

    class Metrics:
        def __getattr__(self, name: str) -> Recording:
            return Recording()

    stats = RequestStats("rank", tenant="light")
    stats.calls[("pairwise", "ok")] += 2
    stats.status = "200"
    record(Metrics(), stats)  # type: ignore[arg-type]
    assert {t.get("tenant") for t in seen if "route" in t or "judge" in t} == {"light"}
