"""Admission control: at most `running` requests at once, `queued` more waiting, the rest refused at once."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ray.serve", reason="the router module needs ray[serve]")

from serve_app.core.admission import Admission, HeldWhileBusy, Overloaded


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


def test_work_whose_calls_come_and_go_holds_one_slot_only_while_a_call_is_in_flight() -> None:
    admission = Admission(running=1, queued=4)
    held = HeldWhileBusy(lambda: admission.slot(admitted=True))
    seen: list[int] = []

    async def call(delay_s: float) -> None:
        async with held.hold():
            seen.append(admission.inside)
            await asyncio.sleep(delay_s)

    async def main() -> None:
        await asyncio.gather(call(0.02), call(0.01), call(0.03))  # calls sent together share the slot
        assert admission.inside == 0  # none in flight: given back
        async with admission.slot():  # so other work runs between the calls
            other = asyncio.ensure_future(call(0.0))
            await asyncio.sleep(0.02)
            assert not other.done()  # the next call waits for the slot like any request
        await other

    asyncio.run(main())
    assert seen == [1, 1, 1, 1] and held.queued_s >= 0.015
