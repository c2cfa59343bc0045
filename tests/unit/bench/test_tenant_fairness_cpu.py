"""The CPU tenant benchmark's configuration: the CPU default with two tenants, each its own token, the heavy one
limited, the circular design in one order and no principle judge — checked by the application's own schema."""

from __future__ import annotations

import pytest

from bench import tenant_fairness_cpu as tfc
from serve_app.config import AppConfig
from serve_app.local_service import ROOT


def test_the_bench_config_is_the_cpu_default_with_two_tenants(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in tfc.TOKENS.values():
        monkeypatch.setenv(env, f"token-of-{env}")
    document = tfc.bench_config(ROOT / "config.yaml")
    config = AppConfig.model_validate(document["applications"][0]["args"])
    tenants = {t.name: t for t in config.router.tenants}
    assert set(tenants) == {"heavy", "light"} and tenants["light"].max_concurrent_requests is None
    assert tenants["heavy"].max_concurrent_requests == tfc.HEAVY_LIMITS["max_concurrent_requests"]
    selection = config.router.selection
    assert selection.strategy == "circular" and not selection.swap and not selection.use_principle
    assert tenants["heavy"].max_judge_calls is None
    capped = AppConfig.model_validate(tfc.bench_config(ROOT / "config.yaml", 4)["applications"][0]["args"])
    assert {t.name: t.max_judge_calls for t in capped.router.tenants} == {"heavy": 4, "light": None}


def test_groups_differ_and_have_the_rollouts_asked_for() -> None:
    groups = [tfc.group(k, 4) for k in range(3)]
    assert all(len(g["candidates"]) == 4 for g in groups)
    assert len({g["conversation"][0]["content"] for g in groups}) == 3
