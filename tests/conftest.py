"""Test layers: ``unit/`` mirrors the packages (no Ray, no engine: seconds to minutes), ``e2e/`` runs the CPU default
for real. Every test that uses the running service, or sits in ``e2e/`` (those start Ray), is marked ``e2e`` here,
so ``pytest -m "not e2e"`` runs the fast layer alone; the plain ``pytest`` runs everything.

The multi-node fleet (``fleet`` fixture, tests/fleet_cluster.py) needs the machine's two cores to itself and must
not share a session with another cluster: its tests run last, after the shared service has stopped."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        in_e2e = Path(str(item.path)).resolve().is_relative_to(E2E)
        if in_e2e or "service" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
    # stable sort: the fleet's tests last, in their own order
    items.sort(key=lambda item: "fleet" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def left_running() -> Iterator[object]:
    """What a user may have left running on 127.0.0.1:8000 (the configs' default port): a small HTTP service that
    counts what reaches it, started before the end-to-end service when the port is free. When the port is taken,
    that is the user's own service; the test then only probes it."""
    from live_service import LeftRunning

    with LeftRunning.on(8000) as left:
        yield left


@pytest.fixture(scope="session")
def service(left_running: object) -> Iterator[object]:
    """An HTTP client for `serve run config.yaml` on the CPU default, shared by every end-to-end test."""
    pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
    from live_service import PORT, ROOT, own_ray_cluster, serve_run

    logs = ROOT / ".pytest_cache"
    logs.mkdir(exist_ok=True)
    SERVICE_LOG["path"] = logs / "serve-run.log"
    try:
        with SHARED:
            address = SHARED.enter_context(own_ray_cluster(log_path=logs / "ray-head.log"))
            yield SHARED.enter_context(serve_run(SERVICE_LOG["path"], port=PORT, address=address))
    except RuntimeError as exc:
        pytest.fail(f"{exc}\n--- the end of `serve run`'s log ---\n{_log_tail()}")


#: the shared service's cluster and `serve run`, closed at the end of the session or when the fleet starts
SHARED = contextlib.ExitStack()


@pytest.fixture(scope="session")
def fleet() -> Iterator[object]:
    """The multi-node judge fleet (tests/fleet_cluster.py), started once the shared service has stopped."""
    pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
    from fleet_cluster import multi_node_fleet
    from live_service import ROOT

    SHARED.close()
    logs = ROOT / ".pytest_cache"
    logs.mkdir(exist_ok=True)
    SERVICE_LOG["path"] = logs / "serve-run-fleet.log"
    try:
        with multi_node_fleet(logs) as running:
            yield running
    except RuntimeError as exc:
        pytest.fail(f"{exc}\n--- the end of `serve run`'s log ---\n{_log_tail()}")


#: where `serve run`'s output goes (the replicas' logs, their access lines included): kept out of the test output,
#: shown under a failed end-to-end test
SERVICE_LOG: dict[str, Path] = {}


def _log_tail(lines: int = 150) -> str:
    path = SERVICE_LOG.get("path")
    if path is None or not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if report.failed and item.get_closest_marker("e2e") is not None and SERVICE_LOG:
        report.sections.append(("the service's log (the end of `serve run`'s output)", _log_tail()))
    return report
