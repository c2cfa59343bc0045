"""A retry is the same sample, on the CPU default's real judge behind Serve: slime's remote reward loop (its
``remote_rm``: an aiohttp session with a total timeout, then up to ten tries with exponential back-off; THUDM/slime
``slime/rollout/rm_hub/__init__.py`` at commit 701749b) gives up on a sample whose cohort is still waiting and sends
it again. Serve cancels the abandoned request, the router keeps its place, and the resent sample takes it: the
cohort is judged with two samples, not three."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import httpx
from live_service import BASE, CONVERSATION, PAIRWISE_DEPLOYMENT, cpu_args, deployed, judge_handle, smollm2_folder

from serve_app.app import bind_router
from serve_app.config import AppConfig


async def slime_remote_rm(url: str, payload: dict[str, Any], timeout_s: float, attempts: list[float]) -> Any:
    """slime's retry loop as its remote_rm runs it (the timeout shortened for the test)."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(force_close=True, enable_cleanup_closed=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for attempt in range(10):
            attempts.append(asyncio.get_running_loop().time())
            try:
                async with session.post(url, json=payload) as resp:
                    resp.raise_for_status()
                    return await resp.json()
            except Exception:
                if attempt == 9:
                    raise
                await asyncio.sleep(min(2**attempt, 30) + random.random())
    return None


def test_slimes_retry_after_a_timeout_is_the_same_sample(service: httpx.Client) -> None:
    config = AppConfig.model_validate(
        {
            "pairwise": cpu_args()["pairwise"],
            "router": {
                "cohorts": {"group_size": 2, "group_timeout_s": 300, "strategy": "knockout"},
                "trainers": {"slime": {"reply": "dict", "group_size": 2}},
            },
        }
    )
    app = bind_router(config, {"pairwise": str(smollm2_folder())}, None, judge_handle(PAIRWISE_DEPLOYMENT), name="Rt")
    with deployed(app, "retries", service) as prefix:
        url = f"{BASE}{prefix}/slime/reward"
        attempts: list[float] = []

        async def step() -> tuple[Any, Any]:
            retried = asyncio.ensure_future(
                slime_remote_rm(url, {"prompt": CONVERSATION, "response": "Paris.", "label": None}, 3, attempts)
            )
            await asyncio.sleep(6)  # the first try has timed out and been sent again
            async with httpx.AsyncClient(timeout=300) as client:
                other = await client.post(url, json={"prompt": CONVERSATION, "response": "Lyon.", "label": None})
            return await retried, other.json()

        first, second = asyncio.run(step())
    assert len(attempts) >= 2  # the loop did time out and retry
    assert first["cohort_id"] == second["cohort_id"]
    assert first["size_judged"] == second["size_judged"] == 2  # the retries took the first place back
    assert sorted([first["rank"], second["rank"]]) == [1, 2]
