"""Test layers: ``unit/`` mirrors the packages (no Ray, no engine: seconds to minutes), ``e2e/`` runs the CPU default
for real. Every test that uses the running service, or sits in ``e2e/`` (those start Ray), is marked ``e2e`` here,
so ``pytest -m "not e2e"`` runs the fast layer alone; the plain ``pytest`` runs everything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        in_e2e = Path(str(item.path)).resolve().is_relative_to(E2E)
        if in_e2e or "service" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


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
        with (
            own_ray_cluster(log_path=logs / "ray-head.log") as address,
            serve_run(SERVICE_LOG["path"], port=PORT, address=address) as client,
        ):
            yield client
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
