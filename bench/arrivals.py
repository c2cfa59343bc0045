"""Judging while rollouts arrive, in simulation: incremental Swiss against today's full-cohort Swiss.

This is a simulation, and says so. An RL trainer sends one rollout per /v1/reward request, so a group's candidates
reach the router over time. Today a cohort is judged by Swiss (both orders) once it is full; incremental judging
(:func:`policies.incremental.select_arriving`) starts with the second arrival. Both run the real selection code
against the standard simulated judge (:mod:`bench.simulated_judges`, base model: one call picks the better
response ~73% of the time, first-position bias 0.5) on the same groups — paired: the same latent qualities, the
same arrival times, the judge's noise from the same seed — with:

* **a virtual clock** (:func:`bench.fleet_sim.on_virtual_clock`): time jumps to the next timer, so thousands of
  groups run in minutes and every time below is virtual;
* **judge latency**, two models: ``independent`` — every call takes its own lognormal time (median
  ``CALL_MEDIAN_S``, log-sd ``CALL_SIGMA``), however many are in flight (a GPU engine with batch room to spare);
  ``shared`` — each call needs such a time of the engine alone and the calls in flight share it equally
  (processor sharing: a throughput-bound engine, as a CPU one);
* **a judge round** = the p50 of the full-cohort Swiss's rounds (its calls sent together, until the last answer),
  measured in the same run, cell by cell; latencies are given in those rounds;
* **arrival shapes**, laid out in rounds measured by a first calibration pass: ``spread`` — the N arrivals evenly
  over four rounds (the first at 0, the last at 4); ``straggler`` — N − 1 at once, the last four rounds later;
  ``burst`` — all at once (a trainer that sends a group together: nothing to overlap).

Per cell: latency from the last arrival to the answer (p50, p90, in judge rounds), pairwise calls, Spearman ρ of
the rewards (ensemble scores) against the latent quality, and how often the chosen one is the best; the
difference in ρ is paired per group, with a 95% interval. The variants table runs incremental judging with other
numbers of matches per candidate in each round after the group closed
(:class:`policies.pairings.ArrivingSwiss`'s ``matches_per_round``).

    python -m bench.arrivals [--trials 1200] [--sizes 8 16] [--shapes spread straggler burst]

Writes the simulation's sections of bench/results/arrivals.md (the CPU default's section is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import math
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from scipy.stats import t as student_t

from bench.fleet_sim import on_virtual_clock
from bench.simulated_judges import VARIANTS, SimulatedJudges
from bench.tenant_fairness import percentile
from deployments.hosting import cpu_model
from policies.incremental import select_arriving
from policies.pairings import ArrivingSwiss
from policies.selection import SelectionConfig, SelectionResult, select_best
from policies.verdicts import PairwiseResult

RESULTS = Path(__file__).parent / "results"
CALL_MEDIAN_S, CALL_SIGMA = 1.0, 0.3  # assumed, see the module docstring
WINDOW_ROUNDS = 4.0  # the arrival window: four judge rounds
SHAPES = ("spread", "straggler", "burst")
LATENCIES = ("independent", "shared")
TARGET_ROUNDS, TARGET_RHO = 1.5, 0.02  # issue 20: p50 latency after the last arrival; |Δρ| against full Swiss
TARGET_SHAPES = ("spread", "straggler")  # the two shapes


def arrival_times(shape: str, n: int, round_s: float) -> list[float]:
    """When each of ``n`` candidates arrives (seconds after the first), for a judge round of ``round_s``."""
    window = WINDOW_ROUNDS * round_s
    if shape == "spread":
        return [window * k / max(1, n - 1) for k in range(n)]
    if shape == "straggler":
        return [0.0] * (n - 1) + [window]
    if shape == "burst":
        return [0.0] * n
    raise ValueError(f"unknown arrival shape {shape!r}")


def rounds_of(calls: Sequence[tuple[float, float]]) -> list[float]:
    """Round durations from calls (sent, answered): the calls sent at one moment form a round, which lasts until
    its last answer."""
    ends: dict[float, float] = {}
    for sent, answered in calls:
        ends[sent] = max(ends.get(sent, sent), answered)
    return [end - sent for sent, end in sorted(ends.items())]


def paired_ci(diffs: Sequence[float]) -> tuple[float, float]:
    """The mean of n paired differences and the half-width of its 95% interval: Student's t quantile with n − 1
    degrees of freedom times the standard error (1.96 standard errors for the simulation's thousands of groups,
    3.18 for four real groups)."""
    d = np.asarray(diffs, dtype=np.float64)
    if len(d) < 2:
        return (float(d.mean()) if len(d) else math.nan), math.nan
    return float(d.mean()), float(student_t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))


class SharedEngine:
    """Processor sharing on the loop's clock: the k calls in flight each progress at 1/k of the speed of a call
    alone, so the engine finishes the same work per second however many calls share it."""

    def __init__(self) -> None:
        self.left: dict[asyncio.Future[None], float] = {}  # call -> seconds of the engine alone it still needs
        self.updated = 0.0
        self.timer: asyncio.TimerHandle | None = None

    async def run(self, work_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._advance(loop.time())
        done = loop.create_future()
        self.left[done] = work_s
        self._schedule(loop)
        await done

    def _advance(self, now: float) -> None:
        if self.left:
            share = (now - self.updated) / len(self.left)
            for call in self.left:
                self.left[call] -= share
        self.updated = now

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = None
        if self.left:  # the next call to finish, at the current share
            self.timer = loop.call_later(max(0.0, min(self.left.values()) * len(self.left)), self._finish, loop)

    def _finish(self, loop: asyncio.AbstractEventLoop) -> None:
        self._advance(loop.time())
        for call in [c for c, left in self.left.items() if left <= 1e-9]:
            del self.left[call]
            call.set_result(None)
        self._schedule(loop)


class TimedJudge:
    """The simulated pairwise judge behind a latency model (see the module docstring); keeps each call's
    (sent, answered) times."""

    def __init__(self, judges: SimulatedJudges, rng: np.random.Generator, latency: str) -> None:
        self.judges = judges
        self.rng = rng
        self.engine = SharedEngine() if latency == "shared" else None
        self.calls: list[tuple[float, float]] = []

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        work_s = CALL_MEDIAN_S * math.exp(CALL_SIGMA * self.rng.standard_normal())
        await (asyncio.sleep(work_s) if self.engine is None else self.engine.run(work_s))
        self.calls.append((sent, loop.time()))
        return await self.judges.pairwise(first, second)


@dataclasses.dataclass
class Outcome:
    latency_s: float  # the last arrival to the answer
    calls: int
    rho: float
    found_best: bool  # the chosen candidate is the best by latent quality
    rounds_s: list[float]  # the judge's rounds (meaningful for full Swiss, whose calls go out round by round)


def _rho(result: SelectionResult, quality: np.ndarray) -> float:
    scores = [c.score for c in sorted(result.candidates, key=lambda c: c.index)]
    rho = spearmanr(scores, quality).statistic
    return 0.0 if np.isnan(rho) else float(rho)  # all scores equal: no order at all


@dataclasses.dataclass(frozen=True)
class Setup:
    """One cell's conditions: group size, arrival shape, latency model, and the round the shape is laid out in."""

    n: int
    shape: str
    latency: str
    unit_s: float


async def one_group(setup: Setup, trial: int, seed: int, incremental: bool, matches_per_round: float | None) -> Outcome:
    """Group ``trial`` on the running (virtual) clock, judged by full Swiss once complete or ``incremental``ly
    while it arrives, with ``matches_per_round`` after the close (None: all at once)."""
    loop = asyncio.get_running_loop()
    n = setup.n
    quality = np.random.default_rng([seed, n, trial]).normal(size=n)
    judges = SimulatedJudges(quality, VARIANTS["base"], np.random.default_rng([seed, n, trial, 1]))
    judge = TimedJudge(judges, np.random.default_rng([seed, n, trial, 2]), setup.latency)
    config = SelectionConfig(strategy="swiss", use_principle=False, seed=trial, strengths="bradley_terry")
    times = arrival_times(setup.shape, n, setup.unit_s)
    start = loop.time()
    if not incremental:
        await asyncio.sleep(times[-1])
        result = await select_best(n, judge.pairwise, None, config)
    else:
        # Candidate k (by arrival) has the k-th latent quality, drawn independently: arrival order says nothing.
        async def arrivals() -> AsyncIterator[str]:
            for k, t in enumerate(times):
                await asyncio.sleep(max(0.0, start + t - loop.time()))
                yield f"candidate {k}"

        design = ArrivingSwiss(config.swiss_rounds, matches_per_round)
        result = await select_arriving(arrivals(), n, judge.pairwise, None, config, design)
    return Outcome(
        latency_s=loop.time() - (start + times[-1]),
        calls=result.pairwise_calls,
        rho=_rho(result, quality),
        found_best=result.best == int(np.argmax(quality)),
        rounds_s=rounds_of(judge.calls),
    )


@functools.cache  # full Swiss's groups of a cell are the same whatever incremental variant they are paired with
def run_groups(
    setup: Setup, trials: int, seed: int, incremental: bool = False, matches_per_round: float | None = 2.0
) -> list[Outcome]:
    """``trials`` groups one after another on a fresh virtual clock."""

    async def main() -> list[Outcome]:
        return [await one_group(setup, t, seed, incremental, matches_per_round) for t in range(trials)]

    return on_virtual_clock(main)


def round_p50(outcomes: Sequence[Outcome]) -> float:
    return percentile([r for o in outcomes for r in o.rounds_s], 0.5)


def calibrate(n: int, latency: str, trials: int, seed: int) -> float:
    """The p50 round of full Swiss over groups of ``n`` sent at once (other groups than the measured ones): the
    unit the arrival shapes are laid out in."""
    return round_p50(run_groups(Setup(n, "burst", latency, 0.0), trials, seed + 1))


@dataclasses.dataclass
class Cell:
    setup: Setup
    round_s: float  # the p50 full-Swiss round measured in this cell
    full: list[Outcome]
    incremental: list[Outcome]

    def latency(self, design: str, q: float) -> float:
        return percentile([o.latency_s for o in getattr(self, design)], q) / self.round_s

    def mean(self, design: str, field: str) -> float:
        return float(np.mean([getattr(o, field) for o in getattr(self, design)]))

    def delta_rho(self) -> tuple[float, float]:
        return paired_ci([i.rho - f.rho for i, f in zip(self.incremental, self.full, strict=True)])

    def targets(self) -> str:
        if self.setup.shape not in TARGET_SHAPES:
            return "—"
        met = self.latency("incremental", 0.5) <= TARGET_ROUNDS and abs(self.delta_rho()[0]) <= TARGET_RHO
        return "met" if met else "missed"


def measure(setup: Setup, trials: int, seed: int, matches_per_round: float | None = 2.0) -> Cell:
    full = run_groups(setup, trials, seed)
    incremental = run_groups(setup, trials, seed, True, matches_per_round)
    return Cell(setup, round_p50(full), full, incremental)


def main_table(cells: Sequence[Cell]) -> list[str]:
    lines = [
        "| judge latency | N | arrivals | round (s) | full Swiss: latency p50 / p90 | incremental: latency p50 / p90 "
        "| calls full / incr. | ρ full | ρ incr. | Δρ (95% CI) | P(best) full / incr. | targets |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cells:
        d, h = c.delta_rho()
        lines.append(
            f"| {c.setup.latency} | {c.setup.n} | {c.setup.shape} | {c.round_s:.2f} "
            f"| {c.latency('full', 0.5):.2f} / {c.latency('full', 0.9):.2f} "
            f"| {c.latency('incremental', 0.5):.2f} / {c.latency('incremental', 0.9):.2f} "
            f"| {c.mean('full', 'calls'):.1f} / {c.mean('incremental', 'calls'):.1f} "
            f"| {c.mean('full', 'rho'):.3f} | {c.mean('incremental', 'rho'):.3f} | {d:+.3f} ± {h:.3f} "
            f"| {c.mean('full', 'found_best'):.2f} / {c.mean('incremental', 'found_best'):.2f} "
            f"| {c.targets()} |"
        )
    return lines


def variants_table(rows: Sequence[tuple[float | None, Cell]]) -> list[str]:
    lines = [
        "| matches per round after the close | judge latency | N | arrivals | latency p50 / p90 (rounds) "
        "| Δρ (95% CI) |",
        "|---|---|---:|---|---:|---:|",
    ]
    for m, c in rows:
        d, h = c.delta_rho()
        lines.append(
            f"| {'all at once' if m is None else f'{m:g}'} | {c.setup.latency} | {c.setup.n} | {c.setup.shape} "
            f"| {c.latency('incremental', 0.5):.2f} / {c.latency('incremental', 0.9):.2f} | {d:+.3f} ± {h:.3f} |"
        )
    return lines


def write_section(path: Path, heading: str, body: str, title: str) -> None:
    """Replace the ``## heading`` section of ``path`` (up to the next ``## ``) with ``body``, or append it; a new
    file starts with ``title``. The simulation and the CPU run each write their own sections of one report."""
    text = path.read_text() if path.is_file() else f"# {title}\n"
    section = f"## {heading}\n\n{body.strip()}\n"
    start = text.find(f"\n## {heading}\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + section + ("" if end < 0 else text[end:])
    path.write_text(text)


TITLE = "Judging while rollouts arrive"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--latency", nargs="+", choices=LATENCIES, default=list(LATENCIES))
    parser.add_argument("--variant-trials", type=int, default=400, help="groups per cell of the variants table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "arrivals.md")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    cells: list[Cell] = []
    variants: list[tuple[float | None, Cell]] = []
    for latency in args.latency:
        for n in args.sizes:
            unit_s = calibrate(n, latency, min(args.trials, 200), args.seed)
            for shape in args.shapes:
                cells.append(measure(Setup(n, shape, latency, unit_s), args.trials, args.seed))
                print(main_table(cells[-1:])[-1], flush=True)
            for m in (1.0, 2.0, None):
                for shape in ("spread", "burst"):
                    variants.append((m, measure(Setup(n, shape, latency, unit_s), args.variant_trials, args.seed, m)))
                    print(variants_table(variants[-1:])[-1], flush=True)
    minutes = (time.perf_counter() - began) / 60
    body = "\n".join(
        [
            f"`python -m bench.arrivals --trials {args.trials}`: {args.trials} groups per cell, simulated on "
            f"{cpu_model()} in {minutes:.1f} min of wall-clock time. **A simulation** (bench/arrivals.py): the real "
            "selection code — `select_best` with Swiss once the cohort is complete (today), `select_arriving` "
            "from the second arrival (incremental) — against the standard simulated judge (base: single-call "
            "accuracy ~0.73, first-position bias 0.5), on a virtual clock. Each call needs a lognormal time "
            f"(median {CALL_MEDIAN_S:g} s, log-sd {CALL_SIGMA:g}): `independent` — that long whatever else is in "
            "flight (a GPU engine with batch room to spare); `shared` — the calls in flight share one engine "
            "equally (throughput-bound, as on a CPU). A judge round is the p50 of the full-cohort Swiss's rounds in "
            "the same cell (column *round*); latencies, from the last arrival to the answer, are in those rounds. "
            f"Arrivals: `spread` — evenly over {WINDOW_ROUNDS:g} rounds; `straggler` — N − 1 at once, the last "
            f"{WINDOW_ROUNDS:g} rounds later; `burst` — all at once. Both designs judge the same groups (latent "
            "qualities, arrival times, judge seed); Δρ = incremental − full Swiss, paired per group, with its 95% "
            "interval; P(best): how often the chosen one is the best.",
            "",
            f"Targets (issue 20): p50 latency after the last arrival ≤ {TARGET_ROUNDS:g} judge rounds; Spearman "
            f"within {TARGET_RHO:g} of full-cohort Swiss at equal calls, for the spread and straggler shapes "
            "(*met*: both, on the measured means).",
            "",
            *main_table(cells),
        ]
    )
    write_section(args.out, "Simulation", body, TITLE)
    variant_body = "\n".join(
        [
            f"{args.variant_trials} groups per cell, the same groups as above: what is left once the group has closed "
            "is sent in rounds of about *m* matches per candidate (`ArrivingSwiss(matches_per_round=m)`); m = 1 is "
            "Swiss's width (its R rounds when the group arrives at once), *all at once* one round whatever is left. "
            "The default is m = 2.",
            "",
            *variants_table(variants),
        ]
    )
    write_section(args.out, "Variants: rounds after the close", variant_body, TITLE)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
