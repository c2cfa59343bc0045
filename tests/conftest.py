from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def service() -> Iterator[object]:
    """An HTTP client for `serve run config.yaml` on the CPU default, shared by every end-to-end test."""
    pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
    from live_service import ROOT, serve_run

    log = ROOT / ".pytest_cache" / "serve-run.log" if (ROOT / ".pytest_cache").is_dir() else None
    try:
        with serve_run(log) as client:
            yield client
    except RuntimeError as exc:
        pytest.fail(str(exc))
