"""Best-of-N selection: run the judges through a pair design and turn their verdicts into one choice.

The judges are plain async callables over candidate indices, so the router (real judges behind Ray Serve
handles) and the benchmark (simulated judges) run exactly this code:

    pairwise(first, second) -> PairwiseResult      # one call, ``first`` shown as response 1
    principle(index)        -> Sequence[PrincipleResult]   # every principle for one candidate, one request

The candidate texts are only needed for style control (``style_control``: strengths fitted with the candidates'
style features as covariates, :mod:`policies.style`).

Every call of a round is awaited concurrently. A call that raises, times out or returns a failure counts as a
failed call and is retried (within the budget) up to ``retries`` times; comparisons with no verdict in either
order are simply missing for Bradley–Terry. Randomness (tie-breaks, random orders, posterior draws) comes from
one generator seeded by ``seed``, so the same seed and the same judge outputs give the same choice.

With ``deadline_s`` the selection is an anytime one: when the deadline passes, the calls still running are
cancelled (their coroutines receive ``CancelledError``, which the router carries to the engine) and the answer is
scored from the verdicts back by then, its ``p_best`` saying how sure it is; ``deadline_reached`` and
``cancelled_calls`` say so. A design's champion is only named from a finished design: a cut one ranks by score.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies import bradley_terry as bt
from policies.debias import Comparison, combine_results, mean_helpfulness, swap_inconsistency
from policies.ensemble import EnsembleWeights, combine, standardize
from policies.pairings import DESIGNS, Adaptive, DesignState, PairDesign, Swiss
from policies.position_bias import PositionBias, PositionBiasPool, fit_with_position, group_estimate
from policies.style import StyleEffect, fit_with_style
from policies.validity import verdict_support
from policies.verdicts import PairwiseResult, PrincipleResult, VerdictMode, mean_reward
from policies.whole_verdict import JudgeTerms, WholeVerdictForm, fit_whole_verdict, judge_terms

PairwiseCall = Callable[[int, int], Awaitable[PairwiseResult]]
PrincipleCall = Callable[[int], Awaitable[Sequence[PrincipleResult]]]
Strategy = Literal["principle", "circular", "knockout", "swiss", "round_robin", "adaptive", "anchored", "by_budget"]
Strengths = Literal["bradley_terry", "whole_verdict"]


class SelectionConfig(BaseModel):
    """How to choose. Every field has a default; the defaults are what the benchmark calls "adaptive"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Strategy = "adaptive"
    swap: bool = Field(default=True, description="judge every pair in both orders and average (removes bias)")
    max_pairwise_calls: int | None = Field(
        default=None, ge=0, description="budget of pairwise calls, retries included; None = the design's own"
    )
    use_principle: bool = Field(default=True, description="call the principle judge when one is given")
    weights: EnsembleWeights = EnsembleWeights()
    outcome_mode: bt.OutcomeMode = "scaled"
    verdicts: VerdictMode = Field(
        default="soft",
        description="'soft': each call counts with the expected margin of the judge's ranking belief (its logprobs "
        "at the ranking digit), falling back per call to the sampled ranking when the engine returned none; "
        "'sampled': the sampled ranking only",
    )
    style_control: bool = Field(
        default=False,
        description="fit Bradley–Terry strengths jointly with the candidates' style features (length, markdown) and "
        "rank by the style-adjusted strength; the response reports the fitted style effect",
    )
    style_alpha: float = Field(
        default=0.5,
        gt=0.0,
        description="ridge on the style effects β (prior sd 1/sqrt(2·style_alpha) log-odds per feature sd): larger "
        "costs less when the judge has no style bias, smaller corrects a strong bias more (bench/style_control.py)",
    )
    bt_alpha: float = Field(default=0.1, gt=0.0, description="Bradley–Terry L2 penalty (prior precision / 2)")
    strengths: Strengths | None = Field(
        default=None,
        description="'bradley_terry': strengths from the ranking margins (helpfulness enters the ensemble beside "
        "them); 'whole_verdict': one Gaussian model of each call's ranking margin and both helpfulness scores, "
        "with the judge's mean score and first-position advantage fitted alongside (policies.whole_verdict); "
        "None: the measured choice, the whole verdict, or Bradley–Terry when style_control or fit_position_bias "
        "asks for its own fits",
    )
    whole_verdict_margin_weight: float = Field(
        default=0.25,
        ge=0.0,
        description="whole_verdict: the weight w_r of each ranking margin (0.25 with scores at 1: chosen on real "
        "verdicts, then the simulated judges, bench/results/whole_verdict.md)",
    )
    whole_verdict_score_weight: float = Field(
        default=1.0, ge=0.0, description="whole_verdict: the weight w_s of each helpfulness score"
    )
    fit_position_bias: bool = Field(
        default=False,
        description="fit the judge's first-position advantage h with the strengths, one observation per call "
        "(policies.position_bias), so that designs in one order are debiased too; the response reports h",
    )
    position_bias_prior: float = Field(
        default=0.0,
        description="h's prior mean (log-odds for the response shown first); the router replaces it with the "
        "judge's pooled estimate once it has one",
    )
    position_bias_alpha: float = Field(
        default=0.5,
        gt=0.0,
        description="h's prior precision / 2 before the judge's pool has any (prior sd 1/sqrt(2·alpha) log-odds)",
    )
    principle_prior: float = Field(
        default=0.0,
        ge=0.0,
        description="scale of the standardised principle reward used as the BT prior mean",
    )
    retries: int = Field(default=1, ge=0, le=5, description="extra attempts for a failed call")
    min_verdict_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="a candidate is valid when at least this share of the verdicts its design planned for it came "
        "back usable (policies.validity)",
    )
    call_timeout_s: float | None = Field(default=None, gt=0.0)
    deadline_s: float | None = Field(
        default=None,
        gt=0.0,
        description="answer by then (seconds from the selection's start) with the best so far: calls still running "
        "are cancelled and the answer says deadline_reached",
    )
    seed: int = Field(default=0, ge=0, description="seeds the one random generator of a selection")
    swiss_rounds: int | None = Field(default=None, ge=1)
    adaptive_pairs_per_round: int | None = Field(default=None, ge=1)
    adaptive_stop_confidence: float = Field(default=0.97, gt=0.5, le=1.0)
    adaptive_helpfulness_prior: float = Field(
        default=1.0, ge=0.0, description="scale of the standardised mean helpfulness used as the adaptive BT prior"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SelectionConfig:
        if self.strategy == "principle" and not self.use_principle:
            raise ValueError("strategy 'principle' needs use_principle=true")
        if self.fit_position_bias and self.style_control:
            raise ValueError("fit_position_bias and style_control cannot be combined yet: choose one")
        if self.strengths == "whole_verdict" or self.strategy == "by_budget":
            if self.style_control or self.fit_position_bias:
                raise ValueError(
                    "strengths 'whole_verdict' fits its own first-position advantage and has no style covariates: "
                    "it cannot be combined with style_control or fit_position_bias"
                )
            if self.whole_verdict_margin_weight + self.whole_verdict_score_weight <= 0:
                raise ValueError("whole_verdict needs whole_verdict_margin_weight or whole_verdict_score_weight > 0")
        return self

    def with_position_pool(self, pool: PositionBiasPool) -> SelectionConfig:
        """This config with the judge's pooled h₀ and γ as its position prior, when it fits the advantage and the
        pool has seen a group; unchanged otherwise (its configured prior holds)."""
        if not self.fit_position_bias or not pool.groups:
            return self
        alpha = pool.prior_alpha(self.position_bias_alpha)
        return self.model_copy(update={"position_bias_prior": pool.mean, "position_bias_alpha": alpha})

    def for_group(self, n: int) -> SelectionConfig:
        """With strategy ``by_budget``: the design that ranked best at this group's budget of pairwise calls
        (``max_pairwise_calls``, default 2N) on every simulated judge (bench/results/whole_verdict.md), all with
        whole-verdict strengths — below 2N per group, a circle in one order; from 2N, Swiss in one order with rounds
        until the budget is spent; from 3N, Swiss in both orders, likewise. Any other strategy: unchanged."""
        if self.strategy != "by_budget":
            return self
        budget = self.max_pairwise_calls if self.max_pairwise_calls is not None else 2 * n
        pairs_per_round = max(1, n // 2)
        chosen: dict[str, object] = {"strengths": "whole_verdict", "max_pairwise_calls": budget}
        if budget < 2 * n:
            chosen |= {"strategy": "circular", "swap": False}
        elif budget < 3 * n:
            chosen |= {"strategy": "swiss", "swap": False, "swiss_rounds": -(-budget // pairs_per_round)}
        else:
            chosen |= {"strategy": "swiss", "swap": True, "swiss_rounds": -(-budget // (2 * pairs_per_round))}
        return self.model_copy(update=chosen)

    @property
    def fitted_strengths(self) -> Strengths:
        """The strengths this selection fits: ``strengths``, or when unset the whole verdict — which ranked every
        simulated judge better and finds the best more often in half the rounds (bench/results/whole_verdict.md,
        selection_rounds.md) — unless style control or the position fit asks for Bradley–Terry."""
        if self.strengths is not None:
            return self.strengths
        return "bradley_terry" if self.style_control or self.fit_position_bias else "whole_verdict"

    def whole_verdict_form(self) -> WholeVerdictForm:
        """The whole-verdict fit's form these settings give (weights and verdict mode)."""
        return WholeVerdictForm(self.whole_verdict_margin_weight, self.whole_verdict_score_weight, self.verdicts)

    def default_budget(self, n: int) -> int | None:
        """The adaptive design needs a budget: 4 calls per candidate unless told otherwise."""
        if self.max_pairwise_calls is not None:
            return self.max_pairwise_calls
        return 4 * n if self.strategy == "adaptive" else None

    def make_design(self) -> PairDesign | None:
        if self.strategy == "by_budget":
            raise ValueError("strategy 'by_budget' names no design until for_group(n) has chosen one")
        if self.strategy == "principle":
            return None
        if self.strategy == "swiss":
            return Swiss(rounds=self.swiss_rounds)
        if self.strategy == "adaptive":
            return Adaptive(
                pairs_per_round=self.adaptive_pairs_per_round,
                stop_confidence=self.adaptive_stop_confidence,
                helpfulness_prior=self.adaptive_helpfulness_prior,
                whole_verdict=self.whole_verdict_form() if self.fitted_strengths == "whole_verdict" else None,
            )
        return DESIGNS[self.strategy]()


class CandidateScore(BaseModel):
    index: int
    rank: int = Field(description="1 = chosen")
    score: float = Field(description="ensemble score used for the ranking")
    strength: float | None = Field(default=None, description="Bradley–Terry strength (log-odds units)")
    strength_stderr: float | None = None
    p_best: float | None = Field(default=None, description="posterior probability of being the strongest")
    principle_reward: float | None = Field(default=None, description="mean reward over the valid principles")
    helpfulness: float | None = Field(default=None, description="mean 1–5 helpfulness from pairwise calls")
    wins: float = 0.0
    losses: float = 0.0
    verdicts: int = Field(default=0, description="usable judge verdicts this candidate's score rests on")
    planned_verdicts: int = Field(default=0, description="verdicts the design asked for about this candidate")
    unanswered_calls: int = Field(
        default=0,
        description="judge calls about this candidate that got no answer at all (an error or a timeout), as opposed "
        "to an answer that could not be read",
    )
    valid: bool = Field(
        default=True,
        description="enough of the planned verdicts came back (min_verdict_share) for the score to be a reward",
    )


class SelectionResult(BaseModel):
    best: int
    ranking: list[int]
    candidates: list[CandidateScore]
    comparisons: list[Comparison]
    principle_results: list[list[PrincipleResult]]
    pairwise_calls: int
    principle_calls: int
    failed_calls: int
    rounds: int
    swap_inconsistency: float | None
    style_effect: StyleEffect | None = Field(default=None, description="with style_control: the fitted style effect")
    position_bias: PositionBias | None = Field(
        default=None, description="with fit_position_bias: the judge's first-position advantage it was debiased with"
    )
    judge_terms: JudgeTerms | None = Field(
        default=None, description="with the whole verdict: the judge's mean score and first-position advantage"
    )
    degraded: list[str] = Field(default_factory=list, description="why the answer rests on less than asked")
    deadline_reached: bool = Field(
        default=False, description="deadline_s passed before the design finished: the answer is the best so far"
    )
    cancelled_calls: int = Field(default=0, description="judge calls still running at the deadline, cancelled")
    design: str | None = Field(
        default=None, description="with strategy by_budget: the design it chose for this group's budget"
    )
    elapsed_s: float


class _Budget:
    """Pairwise calls left, and taken. asyncio runs one coroutine at a time, so plain counters are race-free."""

    def __init__(self, calls: int | None) -> None:
        self.left = calls
        self.taken = 0

    def take(self) -> bool:
        if self.left is not None:
            if self.left <= 0:
                return False
            self.left -= 1
        self.taken += 1
        return True


async def _until(deadline: float | None, work: Awaitable[object]) -> bool:
    """Await ``work`` to its end, or cancel it when ``deadline`` (a ``time.perf_counter`` reading) passes; whether
    it finished. A cancelled ``work`` has been unwound (its ``finally`` blocks run) when this returns."""
    if deadline is None:
        await work
        return True
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.perf_counter()))
    except BaseException:  # the selection itself was cancelled: take the work down with it
        task.cancel()
        raise
    if done:
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


async def _call_with_retries(
    make_call: Callable[[], Awaitable[PairwiseResult]],
    budget: _Budget,
    config: SelectionConfig,
    results: list[PairwiseResult] | None = None,
) -> list[PairwiseResult]:
    """Attempts at one call until one is usable, appended to ``results`` (a new list when None) as they answer."""
    results = [] if results is None else results
    for _ in range(1 + config.retries):
        if not budget.take():
            break
        try:
            result = await asyncio.wait_for(make_call(), config.call_timeout_s)
        except TimeoutError:
            result = PairwiseResult(failure=f"judge call timed out after {config.call_timeout_s} s", unanswered=True)
        except Exception as exc:  # a judge that is down is a failed call, not a failed selection
            result = PairwiseResult(failure=f"judge error: {type(exc).__name__}: {exc}", unanswered=True)
        results.append(result)
        if result.ok:
            break
    return results


async def _principle_call(
    judge: PrincipleCall, index: int, config: SelectionConfig
) -> tuple[list[PrincipleResult], bool]:
    """All principles for one candidate; a raised error becomes (no results, failed)."""
    try:
        return list(await asyncio.wait_for(judge(index), config.call_timeout_s)), True
    except Exception:  # includes TimeoutError: the pairwise judge can still decide
        return [], False


def _orient(
    pairs: Sequence[tuple[int, int]], earlier: Sequence[Comparison], rng: np.random.Generator
) -> list[tuple[int, int]]:
    """One order per pair for a design without swapping: the candidate shown first less often so far (``earlier``
    calls, then this round's) goes first, a coin decides ties. Each candidate's position bias then cancels as far as
    the design allows (exactly on a circle) instead of falling on whoever a coin showed first twice."""
    shown_first: dict[int, int] = {}  # times first minus times second
    for c in earlier:
        for first, second, verdict in ((c.i, c.j, c.forward), (c.j, c.i, c.backward)):
            if verdict is not None:
                shown_first[first] = shown_first.get(first, 0) + 1
                shown_first[second] = shown_first.get(second, 0) - 1
    oriented = []
    for i, j in pairs:
        lead_i, lead_j = shown_first.get(i, 0), shown_first.get(j, 0)
        if lead_j < lead_i or (lead_i == lead_j and rng.random() < 0.5):
            i, j = j, i
        shown_first[i] = shown_first.get(i, 0) + 1
        shown_first[j] = shown_first.get(j, 0) - 1
        oriented.append((i, j))
    return oriented


async def _run_round(
    pairs: Sequence[tuple[int, int]],
    judge: PairwiseCall,
    budget: _Budget,
    config: SelectionConfig,
    rng: np.random.Generator,
    round_index: int,
    deadline: float | None = None,
    earlier: Sequence[Comparison] = (),
) -> tuple[list[Comparison], bool]:
    """One round's comparisons, in pair order, and whether it finished before ``deadline``. A cut round keeps
    every call that answered; a pair none of whose calls answered stays in as planned and unanswered."""
    oriented = _orient(pairs, earlier, rng) if not config.swap else list(pairs)
    answers: list[tuple[list[PairwiseResult], list[PairwiseResult]]] = [([], []) for _ in oriented]

    async def one_pair(k: int, i: int, j: int) -> None:
        forward, backward = answers[k]
        calls = [_call_with_retries(lambda: judge(i, j), budget, config, forward)]
        if config.swap:
            calls.append(_call_with_retries(lambda: judge(j, i), budget, config, backward))
        await asyncio.gather(*calls)

    finished = await _until(deadline, asyncio.gather(*(one_pair(k, i, j) for k, (i, j) in enumerate(oriented))))
    comparisons = [
        combine_results(i, j, forward, backward, round=round_index, verdicts=config.verdicts)
        for (i, j), (forward, backward) in zip(oriented, answers, strict=True)
    ]
    return comparisons, finished


def _principle_means(results: Sequence[Sequence[PrincipleResult]], n: int) -> np.ndarray:
    means = np.full(n, np.nan)
    for k, per_candidate in enumerate(results):
        if (mean := mean_reward(per_candidate)) is not None:
            means[k] = mean
    return means


async def select_best(
    n: int,
    pairwise: PairwiseCall | None,
    principle: PrincipleCall | None = None,
    config: SelectionConfig | None = None,
    texts: Sequence[str] | None = None,
) -> SelectionResult:
    """Choose the best of ``n`` candidates (indices 0..n−1) with the given judges; see the module docstring.

    ``texts`` are the candidates as judged, needed (one per candidate) when ``config.style_control`` is on.
    """
    config = config or SelectionConfig()
    chosen = None
    if config.strategy == "by_budget":
        config = config.for_group(n)
        orders = "both orders" if config.swap else "one order"
        chosen = f"{config.strategy}, {orders}, whole verdict, up to {config.max_pairwise_calls} calls"
    started = time.perf_counter()
    if n < 1:
        raise ValueError("n must be at least 1")
    if config.style_control and (texts is None or len(texts) != n):
        raise ValueError("style_control needs the candidate texts, one per candidate")
    rng = np.random.default_rng(config.seed)
    tiebreak = np.argsort(rng.permutation(n))
    degraded: list[str] = []
    design = config.make_design() if n > 1 else None
    if design is not None and pairwise is None:
        degraded.append(f"no pairwise judge: strategy {config.strategy!r} fell back to principle rewards")
        design = None
    want_principle = n > 1 and config.use_principle and principle is not None
    if n > 1 and design is None and not want_principle:
        raise ValueError("no usable judge: give a pairwise judge, or a principle judge with use_principle")

    budget = _Budget(config.default_budget(n))
    deadline = None if config.deadline_s is None else started + config.deadline_s
    calls_per_pair = 2 if config.swap else 1
    comparisons: list[Comparison] = []
    principle_results: list[list[PrincipleResult]] = [[] for _ in range(n)]
    principle_ok = np.zeros(n, dtype=bool)
    principle_done = np.zeros(n, dtype=bool)  # answered (or failed) before any deadline
    rounds = 0  # every batch of concurrent calls, principle rounds included
    pair_rounds = 0
    prior = None
    finished = True

    async def principle_round() -> None:
        assert principle is not None

        async def one(k: int) -> None:
            principle_results[k], principle_ok[k] = await _principle_call(principle, k, config)
            principle_done[k] = True

        await asyncio.gather(*(one(k) for k in range(n)))

    principle_task: asyncio.Future[None] | None = None
    if want_principle:
        # Waiting for the rewards only pays when the design plans with them (a principle prior).
        if design is None or (design.wants_prior_first and config.principle_prior > 0):
            finished = await _until(deadline, principle_round())
            rounds += 1
        else:
            # The design does not need the rewards to plan: overlap them with the first pairwise round.
            principle_task = asyncio.ensure_future(principle_round())
    principle_means = _principle_means(principle_results, n)
    if config.principle_prior > 0 and principle_task is None and np.isfinite(principle_means).any():
        prior = config.principle_prior * standardize(principle_means)

    while design is not None and finished:
        pairs_left = None if budget.left is None else budget.left // calls_per_pair
        state = DesignState(
            n=n,
            comparisons=comparisons,
            rng=rng,
            tiebreak=tiebreak,
            pairs_left=pairs_left,
            prior=prior,
            outcome_mode=config.outcome_mode,
            alpha=config.bt_alpha,
            round=pair_rounds,
        )
        pairs = design.next_pairs(state)
        if pairs_left is not None:
            pairs = pairs[:pairs_left]
        if not pairs:
            break
        judged, finished = await _run_round(
            pairs,
            pairwise,  # type: ignore[arg-type]
            budget,
            config,
            rng,
            rounds,
            deadline,
            comparisons,
        )
        comparisons.extend(judged)
        rounds += 1
        pair_rounds += 1
        if principle_task is not None:
            finished = await _until(deadline, principle_task) and finished
            principle_task = None
    if principle_task is not None:  # a design that planned no pairs at all
        finished = await _until(deadline, principle_task)
        rounds += 1
    cancelled = budget.taken - sum(c.calls for c in comparisons)
    if want_principle:
        cancelled += int((~principle_done).sum())
    if not finished:
        answered = sum(c.calls for c in comparisons) + int(principle_done.sum())
        degraded.append(
            f"deadline_s {config.deadline_s:g} s passed: the answer is the best so far, from the {answered} calls "
            f"back by then; {cancelled} still running were cancelled"
        )
    result = _result(
        n,
        config,
        design,
        comparisons,
        principle_results,
        principle_done if want_principle else None,
        principle_ok,
        prior=prior,
        rng=rng,
        tiebreak=tiebreak,
        texts=texts,
        degraded=degraded,
        rounds=rounds,
        started=started,
        cancelled=cancelled if not finished else 0,
    )
    return result.model_copy(update={"design": chosen}) if chosen else result


def _result(
    n: int,
    config: SelectionConfig,
    design: PairDesign | None,
    comparisons: list[Comparison],
    principle_results: list[list[PrincipleResult]],
    principle_done: np.ndarray | None,
    principle_ok: np.ndarray,
    *,
    prior: np.ndarray | None,
    rng: np.random.Generator,
    tiebreak: np.ndarray,
    texts: Sequence[str] | None,
    degraded: list[str],
    rounds: int,
    started: float,
    cancelled: int = 0,
) -> SelectionResult:
    """The verdicts of a selection scored, checked for support and reported (``principle_done``: per candidate,
    whether its principle request came back, None when the principle judge was not asked; ``principle_ok``: and
    answered). ``cancelled``: calls the deadline cut, 0 when the design finished."""
    want_principle = principle_done is not None
    principle_means = _principle_means(principle_results, n)
    calls_per_pair = 2 if config.swap else 1
    best, ranking, candidates, style_effect, position_bias, terms = _score(
        n, config, design, comparisons, principle_means, prior, rng, tiebreak, texts, cut=cancelled > 0
    )
    if style_effect is not None and style_effect.reason is not None:
        degraded.append(f"style control: {style_effect.reason}; ranked by plain Bradley–Terry")
    support = verdict_support(
        n, comparisons, calls_per_pair, want_principle, np.isfinite(principle_means), config.min_verdict_share
    )
    unanswered = [0] * n if principle_done is None else list((principle_done & ~principle_ok).astype(int))
    for c in comparisons:
        for k in (c.i, c.j):
            unanswered[k] += c.unanswered
    candidates = [
        c.model_copy(update={"verdicts": v, "planned_verdicts": p, "valid": ok, "unanswered_calls": int(u)})
        for c, v, p, ok, u in zip(candidates, *support, unanswered, strict=True)
    ]
    if not all(support[2]):
        degraded.append(f"{support[2].count(False)} of {n} candidates rest on too few verdicts to be rewards")
    pairwise_calls = sum(c.calls for c in comparisons)
    pairwise_failed = sum(c.failures for c in comparisons)
    # A principle request fails as a whole (raised, timed out) or per principle (no readable judgement).
    principle_failed = 0
    if principle_done is not None:
        principle_failed = int((principle_done & ~principle_ok).sum()) + sum(
            not r.ok for rs in principle_results for r in rs
        )
    if pairwise_failed:
        degraded.append(f"{pairwise_failed} of {pairwise_calls} pairwise calls failed")
        if all(c.margin is None for c in comparisons):
            degraded.append("pairwise judge gave no usable verdict")
    if want_principle:
        missing = int((~np.isfinite(principle_means)).sum())
        if missing == n:
            degraded.append("principle judge gave no usable reward")
        elif missing:
            degraded.append(f"{missing} of {n} candidates have no principle reward")
    return SelectionResult(
        best=best,
        ranking=ranking,
        candidates=candidates,
        comparisons=comparisons,
        principle_results=principle_results,
        pairwise_calls=pairwise_calls,
        principle_calls=int(principle_done.sum()) if principle_done is not None else 0,
        failed_calls=pairwise_failed + principle_failed,
        rounds=rounds,
        swap_inconsistency=swap_inconsistency(comparisons),
        style_effect=style_effect,
        position_bias=position_bias,
        judge_terms=terms,
        degraded=degraded,
        deadline_reached=cancelled > 0,
        cancelled_calls=cancelled,
        elapsed_s=time.perf_counter() - started,
    )


def _score(
    n: int,
    config: SelectionConfig,
    design: PairDesign | None,
    comparisons: list[Comparison],
    principle_means: np.ndarray,
    prior: np.ndarray | None,
    rng: np.random.Generator,
    tiebreak: np.ndarray,
    texts: Sequence[str] | None = None,
    *,
    cut: bool = False,
) -> tuple[int, list[int], list[CandidateScore], StyleEffect | None, PositionBias | None, JudgeTerms | None]:
    judged = [c for c in comparisons if c.margin is not None]
    strength = stderr = p_best = None
    style_effect = None
    position_bias = None
    terms = None
    if config.style_control and not judged:
        style_effect = StyleEffect(reason="no pairwise verdict to fit")
    if judged:
        obs = bt.outcomes_from_comparisons(judged, config.outcome_mode)
        if config.style_control:
            assert texts is not None  # checked by select_best
            fitted, style_effect = fit_with_style(
                n, obs, texts, alpha=config.bt_alpha, covariate_alpha=config.style_alpha
            )
        elif config.fit_position_bias:
            fitted, position_bias = fit_with_position(
                n,
                judged,
                alpha=config.bt_alpha,
                prior_mean=config.position_bias_prior,
                prior_alpha=config.position_bias_alpha,
                mode=config.outcome_mode,
                verdicts=config.verdicts,
            )
            own = group_estimate(n, judged, alpha=config.bt_alpha, mode=config.outcome_mode, verdicts=config.verdicts)
            if own is not None:
                position_bias = position_bias.model_copy(
                    update={"group_estimate": own[0], "group_stderr": float(np.sqrt(own[1]))}
                )
        elif config.fitted_strengths == "whole_verdict":
            fitted = fit_whole_verdict(n, judged, **config.whole_verdict_form()._asdict(), alpha=config.bt_alpha)
            terms = judge_terms(fitted)
        else:
            fitted = bt.fit(n, obs, alpha=config.bt_alpha)
        strength, stderr = fitted.theta, fitted.stderr
        p_best = fitted.p_best(rng)
    wins = np.zeros(n)
    losses = np.zeros(n)
    for c in judged:
        assert c.margin is not None
        if c.margin > 0:
            wins[c.i] += 1
            losses[c.j] += 1
        elif c.margin < 0:
            wins[c.j] += 1
            losses[c.i] += 1
        else:
            wins[[c.i, c.j]] += 0.5
            losses[[c.i, c.j]] += 0.5

    helpfulness = mean_helpfulness(judged, n)
    principle_signal = principle_means if np.isfinite(principle_means).any() else None
    # Style-adjusted strengths replace the raw pairwise signals: the helpfulness means carry the same style
    # preference and cannot be adjusted, and a design's champion stands on the unadjusted verdicts.
    adjusted = style_effect is not None and style_effect.fitted
    # Whole-verdict strengths hold the helpfulness scores already.
    helpfulness_signal = None if adjusted or config.fitted_strengths == "whole_verdict" else helpfulness
    if strength is None and principle_signal is not None:
        score = standardize(principle_signal)  # principle-only: the weights have nothing to balance
    else:
        score = combine(n, config.weights, strength, principle_signal, helpfulness_signal)
    state = DesignState(n=n, comparisons=comparisons, rng=rng, tiebreak=tiebreak, prior=prior)
    ranking = sorted(range(n), key=lambda k: (-score[k], tiebreak[k]))
    # A design's champion stands on verdicts; with none at all (pairwise judge down), or a design the deadline
    # cut before it could name one, rank by what there is.
    named = design is not None and judged and not adjusted and not cut
    champion = design.champion(state) if named else None
    if champion is not None and champion != ranking[0]:
        ranking.remove(champion)
        ranking.insert(0, champion)

    rank_of = {k: r + 1 for r, k in enumerate(ranking)}
    candidates = [
        CandidateScore(
            index=k,
            rank=rank_of[k],
            score=float(score[k]),
            strength=None if strength is None else float(strength[k]),
            strength_stderr=None if stderr is None else float(stderr[k]),
            p_best=None if p_best is None else float(p_best[k]),
            principle_reward=float(principle_means[k]) if np.isfinite(principle_means[k]) else None,
            helpfulness=float(helpfulness[k]) if np.isfinite(helpfulness[k]) else None,
            wins=float(wins[k]),
            losses=float(losses[k]),
        )
        for k in range(n)
    ]
    return ranking[0], ranking, candidates, style_effect, position_bias, terms
