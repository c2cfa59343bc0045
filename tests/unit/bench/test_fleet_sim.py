"""The fleet simulation's own parts: the virtual clock, a continuous-batching replica, and a small step through the
router's real code."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from bench import fleet_sim as sim


def test_a_replica_batches_continuously_on_the_virtual_clock() -> None:
    clock = sim.VirtualClock()
    loop = clock.loop()
    replica = sim.Replica("r0")

    async def main() -> list[float]:
        return list(await asyncio.gather(replica.generate(100), replica.generate(300)))

    try:
        short, long = loop.run_until_complete(main())
    finally:
        loop.close()
    prefill = math.ceil(sim.PREFILL_S / sim.STEP_BASE_S)
    two = sim.STEP_BASE_S + 2 * sim.STEP_PER_SEQ_S  # both decode together, then the long one alone
    one = sim.STEP_BASE_S + sim.STEP_PER_SEQ_S
    assert math.isclose(short, (100 + prefill) * two)
    assert math.isclose(long, (100 + prefill) * two + 200 * one)
    assert math.isclose(clock.now, long)  # no real time passed for it, and none of it was lost


def test_a_small_step_runs_through_the_real_router_and_scales_with_replicas() -> None:
    one = sim.run("circular", 1, "default", prompts=8, rollouts=4)
    two = sim.run("circular", 2, "default", prompts=8, rollouts=4)
    assert one.calls >= 8 * 4 and two.calls >= 8 * 4  # circular: one call per rollout, failed ones retried
    assert two.makespan_s < one.makespan_s
    assert 0 < one.router_busy < 1 and one.router_cpu_per_call_ms > 0


def test_affinity_keeps_each_group_on_one_replica_and_spreads_new_groups_evenly() -> None:
    """The model of the fleet configs' prefix-cache affinity router: a group's calls on one replica, new groups on
    the replica given the fewest."""
    import collections
    import contextvars

    from deployments.engine_client import AFFINITY_KEY

    client = sim.FleetClient(4, "affinity", seed=0)

    def picks(key: str) -> set[str]:
        context = contextvars.copy_context()
        context.run(AFFINITY_KEY.set, key)
        return {context.run(client._pick).name for _ in range(3)}

    homes = [picks(f"group {g}") for g in range(8)]
    assert all(len(home) == 1 for home in homes)
    assert collections.Counter(name for home in homes for name in home) == {f"r{k}": 2 for k in range(4)}


def test_the_plot_draws_each_design_and_routing(tmp_path: Path) -> None:
    outcomes = [
        sim.Outcome("circular", n, routing, 100, 600.0 / n, 60.0, n / 6.0, 0.5, 0.01, 0.9, 10.0, 0.2)
        for n in (1, 2)
        for routing in ("affinity", "default")
    ]
    sim.plot(outcomes, tmp_path / "fleet_sim.png")
    assert (tmp_path / "fleet_sim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
