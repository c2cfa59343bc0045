"""The router's judge lanes: a busy judge's calls survive, a hung judge's calls time out, queueing costs no timeout;
and readiness after warm-up calls."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from serve_app.core import readiness as readiness_module
from serve_app.core.lanes import CallTiming, JudgeDown, JudgeLane, JudgeSilent
from serve_app.core.readiness import Readiness


class SerialJudge:
    """Answers one call at a time, each taking ``seconds``: a saturated engine."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = asyncio.Lock()

    async def answer(self, value: int) -> int:
        async with self._lock:
            await asyncio.sleep(self.seconds)
            return value


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_a_busy_judge_keeps_its_calls() -> None:
    """Ten calls in flight on a judge that answers one per 0.1 s: the last waits ~1 s, twice the silence limit,
    yet none times out, because the judge keeps answering. A fixed 0.5 s timeout would fail half of them."""

    async def main() -> list[int]:
        judge, lane = SerialJudge(0.1), JudgeLane("pairwise", silence_s=0.5)
        return await asyncio.gather(*(lane.call(lambda k=k: judge.answer(k)) for k in range(10)))

    started = time.monotonic()
    assert run(main()) == list(range(10))
    assert time.monotonic() - started >= 0.9


def test_a_hung_judge_times_out_after_its_silence() -> None:
    async def main() -> None:
        lane = JudgeLane("pairwise", silence_s=0.2)
        await lane.call(lambda: asyncio.sleep(60))

    started = time.monotonic()
    with pytest.raises(JudgeSilent, match=r"timed out: the judge answered no call for 0\.2 s"):
        run(main())
    assert 0.15 < time.monotonic() - started < 2


def test_failed_calls_are_no_sign_of_life() -> None:
    """Quick errors on other calls do not keep a hung call alive."""

    async def fail() -> None:
        await asyncio.sleep(0.02)
        raise ConnectionError("refused")

    async def main() -> None:
        lane = JudgeLane("principle", silence_s=0.3)
        hung = asyncio.ensure_future(lane.call(lambda: asyncio.sleep(60)))
        for _ in range(20):
            with pytest.raises(ConnectionError):
                await lane.call(fail)
        await hung

    with pytest.raises(JudgeSilent):
        run(main())


def test_one_call_is_bounded_by_max_call_s() -> None:
    """A call that never finishes while other calls keep being answered stops at max_call_s."""

    async def main() -> None:
        judge = SerialJudge(0.05)
        lane = JudgeLane("pairwise", silence_s=0.2, max_call_s=0.6)

        async def chatter() -> None:
            for k in range(40):
                await lane.call(lambda k=k: judge.answer(k))

        background = asyncio.ensure_future(chatter())
        try:
            await lane.call(lambda: asyncio.sleep(60))
        finally:
            background.cancel()

    started = time.monotonic()
    with pytest.raises(JudgeSilent, match="max_call_s"):
        run(main())
    assert 0.5 < time.monotonic() - started < 2


def test_queueing_in_the_router_costs_no_timeout() -> None:
    """One call at a time, each 0.15 s, silence 0.25 s: the fifth waits 0.6 s for its slot and still succeeds;
    its wait is reported as queued, not as call time."""

    async def main() -> tuple[list[int], list[CallTiming], int]:
        judge, lane = SerialJudge(0.15), JudgeLane("pairwise", silence_s=0.25, max_inflight=1)
        timings = [CallTiming() for _ in range(5)]
        peak = 0

        async def one(k: int) -> int:
            nonlocal peak
            peak = max(peak, lane.inflight)
            return await judge.answer(k)

        out = await asyncio.gather(*(lane.call(lambda k=k: one(k), timings[k]) for k in range(5)))
        return out, timings, peak

    out, timings, peak = run(main())
    assert out == list(range(5)) and peak == 1
    assert max(t.queued_s for t in timings) >= 0.5
    assert all(t.sent_s < 0.25 for t in timings)


class FlakyJudge:
    """Refuses its first ``failures`` calls (an engine still loading), then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def compare(self, *args: object) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("deployment not ready")
        return "verdict"

    async def score(self, *args: object) -> list[str]:
        return [await self.compare()]


def test_ready_only_after_every_judge_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness_module, "RETRY_S", 0.01)

    async def main() -> tuple[bool, Readiness]:
        judges = {"principle": FlakyJudge(0), "pairwise": FlakyJudge(3)}
        lanes = {role: JudgeLane(role, silence_s=5) for role in judges}
        ready = Readiness(judges, lanes)
        before = ready.ready
        ready.start()
        for _ in range(200):
            if ready.ready:
                break
            await asyncio.sleep(0.01)
        return before, ready

    before, ready = run(main())
    assert before is False
    assert ready.ready
    assert ready.state["pairwise"].attempts == 4 and ready.state["principle"].attempts == 1
    assert ready.state["pairwise"].last_error is None and ready.state["pairwise"].warmup_s is not None


def test_not_ready_while_a_judge_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness_module, "RETRY_S", 0.01)

    async def main() -> Readiness:
        judges = {"principle": FlakyJudge(0), "pairwise": FlakyJudge(10**6)}
        ready = Readiness(judges, {role: JudgeLane(role, silence_s=5) for role in judges})
        ready.start()
        await asyncio.sleep(0.3)
        return ready

    ready = run(main())
    assert not ready.ready
    assert ready.state["principle"].ready and not ready.state["pairwise"].ready
    assert "deployment not ready" in (ready.state["pairwise"].last_error or "")


def test_a_judge_that_loses_its_replicas_after_warm_up_is_named_down_then_ready_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Liveness after warm-up: the probe says the pairwise judge has no running replica, so readiness drops and
    names it; once the probe sees a replica again, the judge is ready without a new warm-up. A probe that fails
    changes nothing."""
    monkeypatch.setattr(readiness_module, "RETRY_S", 0.01)
    monkeypatch.setattr(readiness_module, "LIVENESS_TTL_S", 0.0)
    reasons: dict[str, str | None] = {"principle": None, "pairwise": None}
    broken = {"probe": False}

    async def probe() -> dict[str, str | None]:
        if broken["probe"]:
            raise ConnectionError("controller unreachable")
        return dict(reasons)

    async def main() -> list[tuple[bool, list[str]]]:
        judges = {"principle": FlakyJudge(0), "pairwise": FlakyJudge(0)}
        ready = Readiness(judges, {role: JudgeLane(role, silence_s=5) for role in judges}, probe)
        ready.start()
        while not ready.ready:
            await asyncio.sleep(0.01)
        seen = []
        for step in ("up", "down", "probe fails", "back"):
            reasons["pairwise"] = "no running replica of pairwise" if step in ("down", "probe fails") else None
            broken["probe"] = step == "probe fails"
            await ready.check()
            seen.append((ready.ready, ready.down, ready.lanes["pairwise"].down is not None))
        assert ready.state["pairwise"].attempts == 1  # no second warm-up
        return seen

    assert run(main()) == [
        (True, [], False),
        (False, ["pairwise"], True),  # its lane fails calls at once
        (False, ["pairwise"], True),
        (True, [], False),
    ]


def test_a_judge_still_warming_up_is_not_called_down() -> None:
    async def probe() -> dict[str, str | None]:
        return {"pairwise": "no running replica", "principle": None}

    async def main() -> Readiness:
        judges = {"principle": FlakyJudge(0), "pairwise": FlakyJudge(10**6)}
        ready = Readiness(judges, {role: JudgeLane(role, silence_s=5) for role in judges}, probe)
        await ready.check()
        return ready

    ready = run(main())
    assert ready.down == [] and not ready.ready


def test_calls_of_a_judge_gone_down_fail_at_once_and_work_again_when_it_is_back() -> None:
    """A lost node: the calls in flight would wait for a replacement replica (Serve holds them), so going down fails
    them now, long before the silence limit; calls while down never reach the judge; back up, calls work."""

    async def main() -> tuple[float, bool, int]:
        lane = JudgeLane("pairwise", silence_s=30)
        never = asyncio.Event()
        reached = []

        async def hangs() -> int:
            reached.append(1)
            await never.wait()
            return 0

        started = time.monotonic()
        in_flight = [asyncio.ensure_future(lane.call(hangs)) for _ in range(3)]
        await asyncio.sleep(0.05)
        lane.set_down("no running replica of pairwise")
        results = await asyncio.gather(*in_flight, return_exceptions=True)
        assert all(isinstance(r, JudgeDown) for r in results), results
        waited = time.monotonic() - started
        with pytest.raises(JudgeDown, match="no running replica"):
            await lane.call(hangs)
        refused_before_reaching = len(reached) == 3
        lane.set_down(None)
        judge = SerialJudge(0.01)
        return waited, refused_before_reaching, await lane.call(lambda: judge.answer(7))

    waited, refused_before_reaching, answer = run(main())
    assert waited < 1 and refused_before_reaching and answer == 7


def test_a_lane_marked_down_looks_again_before_refusing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two router replicas see a judge come back at different moments: a replica whose last look said "down" asks
    again before refusing a call, so a judge that is back is called, not refused until its next periodic look."""
    monkeypatch.setattr(readiness_module, "RETRY_S", 0.01)
    monkeypatch.setattr(readiness_module, "LIVENESS_TTL_S", 0.0)
    reasons: dict[str, str | None] = {"principle": None, "pairwise": "no running replica"}

    async def probe() -> dict[str, str | None]:
        return dict(reasons)

    async def main() -> int:
        judges = {"principle": FlakyJudge(0), "pairwise": FlakyJudge(0)}
        ready = Readiness(judges, {role: JudgeLane(role, silence_s=5) for role in judges}, probe)
        ready.start()
        while not ready._warmed >= {"principle", "pairwise"}:
            await asyncio.sleep(0.01)
        await ready.check()
        lane = ready.lanes["pairwise"]
        assert lane.down is not None
        with pytest.raises(JudgeDown):
            await lane.call(lambda: SerialJudge(0.0).answer(1))
        reasons["pairwise"] = None  # back, and this replica has not looked yet
        return await lane.call(lambda: SerialJudge(0.0).answer(7))

    assert run(main()) == 7


def test_calls_right_after_a_judge_came_back_are_not_refused_on_an_older_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """The race the multi-node test met: this replica looked a moment ago (judge down); the judge came back, another
    replica said so, and a request's calls arrive together. Each call is decided on a look newer than itself, the
    calls arriving together share it, and none is refused."""
    monkeypatch.setattr(readiness_module, "RETRY_S", 0.01)
    reasons: dict[str, str | None] = {"principle": None, "pairwise": "no running replica"}
    looks = []

    async def probe() -> dict[str, str | None]:
        looks.append(time.monotonic())
        await asyncio.sleep(0.02)  # a controller round trip
        return dict(reasons)

    async def main() -> list[int]:
        judges = {"principle": FlakyJudge(0), "pairwise": FlakyJudge(0)}
        ready = Readiness(judges, {role: JudgeLane(role, silence_s=5) for role in judges}, probe)
        ready.start()
        while not ready._warmed >= {"principle", "pairwise"}:
            await asyncio.sleep(0.01)
        await ready.check()
        lane = ready.lanes["pairwise"]
        assert lane.down is not None
        reasons["pairwise"] = None  # back, well within LIVENESS_TTL_S of this replica's last look
        looks.clear()
        return list(await asyncio.gather(*(lane.call(lambda k=k: SerialJudge(0.0).answer(k)) for k in range(5))))

    assert run(main()) == [0, 1, 2, 3, 4]
    assert len(looks) == 1  # one look for the five calls


def test_calls_of_a_judge_that_stays_down_share_looks_spaced_apart() -> None:
    """While a judge is down, every call waits for a look newer than itself, but looks are spaced
    (MIN_LOOK_GAP_S): a stream of refused calls is not a stream of controller round trips."""
    looks = []

    async def probe() -> dict[str, str | None]:
        looks.append(time.monotonic())
        return {"principle": None, "pairwise": "no running replica"}

    async def main() -> int:
        judges = {"principle": FlakyJudge(0), "pairwise": FlakyJudge(0)}
        ready = Readiness(judges, {role: JudgeLane(role, silence_s=5) for role in judges}, probe)
        ready._warmed.update(judges)
        lane = ready.lanes["pairwise"]
        lane.set_down("no running replica")
        looks.clear()
        refused = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.5:
            calls = [lane.call(lambda: SerialJudge(0.0).answer(1)) for _ in range(10)]
            refused += sum(isinstance(r, JudgeDown) for r in await asyncio.gather(*calls, return_exceptions=True))
        return refused

    refused = run(main())
    assert refused >= 10 and refused % 10 == 0
    gaps = [b - a for a, b in itertools.pairwise(looks)]
    assert len(looks) <= 7 and all(gap >= readiness_module.MIN_LOOK_GAP_S * 0.9 for gap in gaps), gaps
