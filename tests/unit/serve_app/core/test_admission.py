"""Admission control: at most `running` requests at once, `queued` more waiting, the rest refused at once."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ray.serve", reason="the router module needs ray[serve]")

from serve_app.core.admission import Admission, Overloaded


def test_admission_bounds_running_and_waiting() -> None:
    admission = Admission(running=2, queued=1)
    running = 0
    peak = 0
    release = asyncio.Event()

    async def request() -> str:
        nonlocal running, peak
        try:
            async with admission.slot():
                running += 1
                peak = max(peak, running)
                await release.wait()
                running -= 1
                return "done"
        except Overloaded:
            return "503"

    async def main() -> list[str]:
        tasks = [asyncio.ensure_future(request()) for _ in range(5)]
        for _ in range(5):
            await asyncio.sleep(0)
        refused = [t.result() for t in tasks if t.done()]
        assert refused == ["503", "503"], refused  # refused without waiting for anything
        assert admission.inside == 3
        release.set()
        return list(await asyncio.gather(*tasks))

    results = asyncio.run(main())
    assert sorted(results) == ["503", "503", "done", "done", "done"]
    assert peak == 2 and admission.inside == 0
