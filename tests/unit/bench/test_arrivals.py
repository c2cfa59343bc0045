"""The arrivals benchmark's own parts: arrival shapes, rounds read from call times, the paired interval, the
processor-sharing engine, the report's sections, and a few groups through both designs."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from bench import arrivals as ar
from bench.fleet_sim import on_virtual_clock
from policies.pairings import Swiss


def test_the_shapes_lay_arrivals_out_in_judge_rounds() -> None:
    assert ar.arrival_times("spread", 5, 2.0) == [0.0, 2.0, 4.0, 6.0, 8.0]  # four rounds of 2 s
    assert ar.arrival_times("straggler", 4, 2.0) == [0.0, 0.0, 0.0, 8.0]
    assert ar.arrival_times("burst", 3, 2.0) == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="unknown arrival shape"):
        ar.arrival_times("trickle", 3, 1.0)


def test_calls_sent_together_form_a_round_until_the_last_answer() -> None:
    calls = [(0.0, 1.0), (0.0, 1.5), (2.0, 2.5), (2.0, 3.25)]
    assert ar.rounds_of(calls) == [1.5, 1.25]


def test_the_paired_interval_is_the_mean_and_t_standard_errors() -> None:
    mean, half = ar.paired_ci([0.1, -0.1, 0.3, 0.1])
    assert mean == pytest.approx(0.1)
    assert half == pytest.approx(3.182446305284263 * 0.16329931618554522 / 2)  # t(0.975, 3 degrees of freedom)
    assert ar.paired_ci([0.0, 1.0] * 5000)[1] == pytest.approx(1.96 * 0.5 / 100, rel=1e-3)  # normal for many
    assert math.isnan(ar.paired_ci([0.2])[1])


def test_the_shared_engine_divides_its_speed_between_the_calls_in_flight() -> None:
    engine = ar.SharedEngine()

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        done: list[float] = []

        async def call(work_s: float, after_s: float) -> None:
            await asyncio.sleep(after_s)
            await engine.run(work_s)
            done.append(loop.time())

        await asyncio.gather(call(1.0, 0.0), call(3.0, 0.0), call(1.0, 4.0))
        return done

    # Two together: each at half speed, the short one done at 2 s; the long one then alone, done at 2 + 2 = 4 s;
    # the third arrives at 4 s to an idle engine and takes its 1 s.
    assert on_virtual_clock(main) == pytest.approx([2.0, 4.0, 5.0])


def test_each_run_writes_its_own_section_and_keeps_the_others(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    ar.write_section(out, "Simulation", "first", "Title")
    ar.write_section(out, "On the CPU default", "cpu numbers", "Title")
    ar.write_section(out, "Simulation", "second", "Title")
    assert out.read_text() == "# Title\n\n## Simulation\n\nsecond\n\n## On the CPU default\n\ncpu numbers\n"


def test_a_few_groups_through_both_designs() -> None:
    setup = ar.Setup(n=8, shape="straggler", latency="independent", unit_s=1.5)
    cell = ar.measure(setup, trials=4, seed=3)
    calls = 2 * Swiss().pairs_for(8)
    assert [o.calls for o in cell.full] == [o.calls for o in cell.incremental] == [calls] * 4
    # Full Swiss starts with the straggler: three rounds after it; incremental: about one.
    assert cell.latency("full", 0.5) == pytest.approx(3.0, abs=0.5)
    assert cell.latency("incremental", 0.5) < 1.5
    assert all(-1.0 <= o.rho <= 1.0 for o in cell.full + cell.incremental)


def test_the_cpu_run_sends_each_shape_through_a_real_app(tmp_path: Path) -> None:
    """bench/arrivals_cpu.py's client side against a replica's real app served in process, with stand-in judges
    (no engine): a judge round measured, each group's rollouts sent in both shapes, answered and reported."""
    pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")
    from stand_in_judges import QualityClient, served, stand_in_service

    from bench import arrivals_cpu as cpu
    from serve_app.ingress.asgi import build_api

    app = build_api(stand_in_service({"cohorts": {"group_size": 4}}, QualityClient(delay_s=0.02)))
    data = [("Name a prime number.", [f"7, quality {q}" for q in (2, 4, 1, 3)])]
    with served(app) as base:
        round_s, out = asyncio.run(cpu.one_mode(base, data, "incremental", seed=0))
    assert round_s >= 0.02
    assert set(out) == set(cpu.SHAPES)
    for shape in cpu.SHAPES:
        (group,) = out[shape]
        assert group["calls"] == 2 * Swiss().pairs_for(4) and group["closed_by"] == {"full"}
        assert group["latency_s"] > 0
        assert cpu.rho(group["rewards"], [2, 4, 1, 3]) > 0.5  # the stand-in prefers the higher quality
    twice = {shape: groups * 2 for shape, groups in out.items()}  # two groups, so the paired interval exists
    text = cpu.report({"incremental": (round_s, twice), "full Swiss": (round_s, twice)}, 2, 4, 0.1)
    assert "| spread | incremental |" in text
    assert "- straggler: Δρ vs labels (incremental − full Swiss, paired per group) +0.00 ± 0.00" in text
    assert "ρ between the modes' rewards +1.00" in text


def test_the_cpu_run_only_switches_incremental_judging(tmp_path: Path) -> None:
    from bench import arrivals_cpu as cpu

    base = tmp_path / "config.yaml"
    router = "{max_candidates: 16, cohorts: {strategy: swiss, max_open_cohorts: 9}}"
    base.write_text(f"applications:\n  - args:\n      router: {router}\n")
    router = cpu.bench_config(base, False, 8)["applications"][0]["args"]["router"]
    assert router["max_candidates"] == 16
    assert router["cohorts"] == {
        "strategy": "swiss",
        "max_open_cohorts": 9,
        "incremental": False,
        "group_size": 8,
        "group_timeout_s": 1800,
    }
