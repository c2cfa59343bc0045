"""Selection while the candidates arrive: judging starts with the second one, not when the group is complete.

RL trainers ask for one rollout's reward per request, so a group's rollouts reach the router over seconds or
minutes. :func:`select_arriving` takes them from an async source as they come (candidate k is the k-th item, its
text) and has :class:`~policies.pairings.ArrivingSwiss` pair them at every event — an arrival, a batch of verdicts
back, the source ending (the group closed) — so that what is left to judge after the last arrival is one short
round. The budget is a full Swiss's over the group (``max_pairwise_calls`` when given); the result is a
:class:`~policies.selection.SelectionResult` like :func:`~policies.selection.select_best`'s, over the candidates that
arrived, scored the same way.

Each arrival's principle call (when the principle judge is used) is sent when it arrives. A design other than Swiss
cannot plan this way: the candidates are then collected and judged by :func:`~policies.selection.select_best` once
the source ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable

import numpy as np

from policies.debias import Comparison
from policies.pairings import ArrivingSwiss, DesignState, Pair
from policies.selection import (
    PairwiseCall,
    PrincipleCall,
    SelectionConfig,
    SelectionResult,
    _Budget,
    _principle_call,
    _result,
    _run_round,
    select_best,
)
from policies.verdicts import PrincipleResult


async def select_arriving(
    arrivals: AsyncIterable[str],
    size: int,
    pairwise: PairwiseCall | None,
    principle: PrincipleCall | None = None,
    config: SelectionConfig | None = None,
    design: ArrivingSwiss | None = None,
) -> SelectionResult:
    """Choose among candidates that arrive from ``arrivals`` (candidate k = the k-th text; at most ``size`` of
    them) with the given judges, judging while they arrive; returns once the source has ended and the last
    verdicts are in. See the module docstring. ``design``: a fresh :class:`ArrivingSwiss` with other settings
    than ``config.swiss_rounds`` and the default matches per round (the benchmark's variants)."""
    config = config or SelectionConfig()
    started = time.perf_counter()
    texts: list[str] = []
    if config.strategy != "swiss" or pairwise is None:
        async for text in arrivals:
            texts.append(text)
        return await select_best(len(texts), pairwise, principle, config, texts)

    rng = np.random.default_rng(config.seed)
    tiebreak = np.argsort(rng.permutation(size))
    design = design or ArrivingSwiss(config.swiss_rounds)
    calls_per_pair = 2 if config.swap else 1
    calls = config.default_budget(size)
    budget = _Budget(calls)
    want_principle = config.use_principle and principle is not None
    principle_tasks: list[asyncio.Task[tuple[list[PrincipleResult], bool]]] = []
    comparisons: list[Comparison] = []
    busy: dict[asyncio.Task[list[Comparison]], list[Pair]] = {}
    wake = asyncio.Event()
    closed = False
    rounds = 0

    def ask_principle(k: int) -> None:
        assert principle is not None
        principle_tasks.append(asyncio.ensure_future(_principle_call(principle, k, config)))

    async def collect() -> None:
        nonlocal closed
        try:
            async for text in arrivals:
                if len(texts) == size:
                    raise ValueError(f"more than size={size} candidates arrived")
                texts.append(text)
                if want_principle and len(texts) >= 2:  # a lone candidate is never judged (select_best's rule)
                    if len(texts) == 2:
                        ask_principle(0)
                    ask_principle(len(texts) - 1)
                wake.set()
        finally:
            closed = True
            wake.set()

    def pairs_left() -> int:
        """The group's budget in pairs less those sent: the configured call budget, else a full Swiss's over the
        group expected (over the candidates that arrived, once it closed)."""
        total = design.pairs_for(len(texts) if closed else size) if calls is None else calls // calls_per_pair
        return max(0, total - len(comparisons) - sum(map(len, busy.values())))

    collector = asyncio.ensure_future(collect())
    try:
        while True:
            await wake.wait()
            wake.clear()
            for task in [t for t in busy if t.done()]:
                comparisons.extend(task.result()[0])  # no deadline: every round finishes
                del busy[task]
            if collector.done():
                collector.result()  # the source's own error, if any
            n, left = len(texts), pairs_left()
            if n >= 2 and left > 0:
                state = DesignState(
                    n=n,
                    comparisons=comparisons,
                    rng=rng,
                    tiebreak=tiebreak[:n],
                    pairs_left=left,
                    outcome_mode=config.outcome_mode,
                    alpha=config.bt_alpha,
                    round=rounds,
                    arriving=0 if closed else size - n,
                    busy=[p for pairs in busy.values() for p in pairs],
                )
                if pairs := design.next_pairs(state)[:left]:
                    task = asyncio.ensure_future(
                        _run_round(pairs, pairwise, budget, config, rng, rounds, earlier=list(comparisons))
                    )
                    task.add_done_callback(lambda _: wake.set())
                    busy[task] = pairs
                    rounds += 1
            if closed and not busy:
                break
    except BaseException:  # an error of the source, or the caller cancelled: nothing keeps running
        pending = [collector, *busy, *principle_tasks]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        raise

    n = len(texts)
    if n < 2:  # nothing to compare: select_best's answer for a lone candidate (or its error for none)
        return await select_best(n, pairwise, principle, config, texts)
    principle_results: list[list[PrincipleResult]] = [[] for _ in range(n)]
    principle_ok = np.zeros(n, dtype=bool)
    if want_principle:
        for k, (results, ok) in enumerate(await asyncio.gather(*principle_tasks)):
            principle_results[k], principle_ok[k] = results, ok
        rounds += rounds == 0  # no pair was judged: the principle calls were a round of their own
    return _result(
        n,
        config,
        design,
        comparisons,
        principle_results,
        np.ones(n, dtype=bool) if want_principle else None,  # every principle request came back
        principle_ok,
        prior=None,
        rng=rng,
        tiebreak=tiebreak[:n],
        texts=texts,
        degraded=[],
        rounds=rounds,
        started=started,
    )
