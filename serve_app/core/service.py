"""The core of a router replica: what every API surface asks of the judges, as plain async methods.

:class:`JudgingService` holds the replica's judges, their call lanes and context budgets, admission, readiness,
metrics and the one cohort table, and offers :meth:`~JudgingService.select` (one group judged by the configured
design) with the answers built on it — :meth:`~JudgingService.best_of_n`, :meth:`~JudgingService.rank`,
:meth:`~JudgingService.rank_batch`, :meth:`~JudgingService.reward` (per sample, through cohorts, by a reward rule)
— the two single-call answers, :meth:`~JudgingService.principle_score` and :meth:`~JudgingService.compare`, and
:meth:`~JudgingService.chat`, one raw judge call for the OpenAI front.

No HTTP here: requests are checked in :mod:`serve_app.core.checks`, answers assembled in
:mod:`serve_app.core.answers`, and a refusal is a :class:`~serve_app.core.refusal.Refusal`, which the ingress shapes
for each surface. Every judge call goes through :meth:`JudgingService._timed` (lane, timeout, metrics); every group
through one admission slot; overlong text through :mod:`serve_app.core.fitting`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from deployments.chat import ChatMessage
from deployments.engine_client import AFFINITY_KEY, CALL_SCOPE, JUDGE_TOKENS, JUDGE_VERSIONS, Completion, JudgeCallError
from deployments.judge import Judge
from policies.debias import combine_results
from policies.duplicates import duplicate_key, expand_result, group_duplicates
from policies.health import judge_health
from policies.incremental import select_arriving
from policies.nemo_gym import RolloutTexts
from policies.position_bias import PositionBiasPool
from policies.selection import PairwiseCall, PrincipleCall, SelectionConfig, SelectionResult, select_best
from policies.verdicts import PairwiseResult, PrincipleResult, mean_reward
from serve_app.config import DEFAULT_TENANT, JUDGE_ROLES, AppConfig, RouterConfig
from serve_app.core.admission import Admission, HeldWhileBusy, Overloaded, TenantLimits, TenantOverloaded
from serve_app.core.answers import (
    Selected,
    anchored_rewards,
    best_of_n_answer,
    group_rewards,
    judges_provenance,
    provenance,
    rank_answer,
    reward_answer,
)
from serve_app.core.checks import RequestChecks
from serve_app.core.cohorts import Cohort, CohortRefused, Cohorts, Sample, prompt_fingerprint, shard_of
from serve_app.core.fitting import fit_texts
from serve_app.core.judge_pool import Judges, build_judges
from serve_app.core.lanes import CallTiming, JudgeLane, JudgeSilent
from serve_app.core.readiness import Liveness, Readiness
from serve_app.core.refusal import Refusal, reject, validation_errors
from serve_app.core.reward_rules import RewardRule, reward_rules
from serve_app.core.stats import NullMetrics, RequestStats, RouterMetrics, record
from serve_app.protocols.genrm_api import (
    BestOfNRequest,
    BestOfNResponse,
    CohortTimings,
    CompareRequest,
    CompareResponse,
    PrincipleScoreRequest,
    PrincipleScoreResponse,
    RankBatchEntry,
    RankBatchRequest,
    RankBatchResponse,
    RankBatchTimings,
    RankRequest,
    RankResponse,
    RewardRequest,
    RewardResponse,
    SelectionOptions,
    Timings,
)

logger = logging.getLogger("genrm_ensemble.router")

T = TypeVar("T")

#: the keys of a forwarded /v1/reward payload that name its reward rule and its tenant, and hold the rollout's
#: texts for a rule that reads them (not request fields: only a trainer surface brings them)
_FORWARDED_RULE, _FORWARDED_TENANT, _FORWARDED_ROLLOUT = "_reward_rule", "_tenant", "_rollout"
#: engine refusals that mean the request itself was wrong (too long, a bad parameter): the caller's to fix
_REQUEST_REFUSED = frozenset({400, 413, 422})


def _failures(result: Any) -> int:
    if isinstance(result, PairwiseResult):
        return int(not result.ok)
    if isinstance(result, list):
        return sum(not r.ok for r in result if isinstance(r, PrincipleResult))
    return 0


def _failure_reasons(result: Any) -> str:
    results = result if isinstance(result, list) else [result]
    return "; ".join(str(r.failure) for r in results if isinstance(r, PairwiseResult | PrincipleResult) and not r.ok)


@dataclasses.dataclass(frozen=True)
class CohortPrompt:
    """What a cohort's judging needs besides the responses: taken from its first sample, with its reward rule."""

    conversation: list[ChatMessage]
    principles: list[str]
    principle_for_pairwise: str | None
    rule: RewardRule
    tenant: str
    reference: str | None = None  # the anchored rule's reference answer, judged as candidate 0


class Forwarded(BaseModel):
    """A /v1/reward answer from the cohort owner to the replica that received the request (see serve_app.app)."""

    status: int
    body: str | None = None  # the RewardResponse JSON, when status is 200
    detail: str | None = None
    retry_after_s: int | None = None


def _prompt_parts(
    conversation: Sequence[ChatMessage], principles: Sequence[str], principle_for_pairwise: str | None
) -> list[Any]:
    """What makes two groups one prompt, JSON-able: the key of a group's judge calls (affinity) and of its cohort."""
    return [[[m.role, m.content] for m in conversation], list(principles), principle_for_pairwise]


def _printable(value: Any) -> Any:
    """A validation error's location part made safe to serialise (a field name may hold a lone surrogate)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value


class JudgingService:
    """The judges of one router replica and everything that bounds their use; see the module docstring."""

    def __init__(
        self,
        config: AppConfig,
        judges: Judges,
        *,
        metrics: RouterMetrics | NullMetrics | None = None,
        cohort_owner: Any = None,
        liveness: Liveness | None = None,
    ) -> None:
        self.config = config
        self.limits: RouterConfig = config.router
        self.checks = RequestChecks(self.limits)
        self.rules = reward_rules(self.limits)
        self.provenance = judges_provenance(config)
        self.metrics = metrics if metrics is not None else RouterMetrics()
        tenants = {
            t.name: TenantLimits(t.weight, t.max_concurrent_requests, t.max_queued_requests)
            for t in self.limits.tenants
        }
        self.admission = Admission(self.limits.max_concurrent_requests, self.limits.max_queued_requests, tenants)
        weights = {name: t.weight for name, t in tenants.items()}
        call_caps = {t.name: t.max_judge_calls for t in self.limits.tenants if t.max_judge_calls is not None}
        self.principle = judges.principle
        self.pairwise = judges.pairwise
        self.budgets = judges.budgets
        # Token counting is CPU work: one thread keeps it off the event loop and never shares a tokenizer.
        self._tokenizing = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")
        #: the pairwise judge's first-position advantage, pooled over this replica's groups (fit_position_bias)
        self.position_pool = PositionBiasPool()
        self.lanes = {
            role: JudgeLane(role, cfg.call_timeout_s, cfg.max_inflight_calls, cfg.max_call_s, weights, call_caps)
            for role in JUDGE_ROLES
            if (cfg := getattr(self.config, role)) is not None
        }
        self.readiness = Readiness(self.judges(), self.lanes, liveness)
        with contextlib.suppress(RuntimeError):  # no running loop: constructed outside Serve (unit tests)
            self.readiness.start()
        #: a handle to the replica that owns the cohorts when the router has several replicas (None: this one)
        self.cohort_owner = cohort_owner
        self.cohorts: Cohorts[Selected] | None = None
        if self.limits.cohorts.enabled and cohort_owner is None:
            self.cohorts = Cohorts(self.limits.cohorts, self._judge_cohort, weights=weights)

    @classmethod
    def from_deployment(
        cls,
        config: AppConfig,
        tokenizers: dict[str, str],
        principle_server: Any = None,
        pairwise_server: Any = None,
        cohort_owner: Any = None,
        liveness: Liveness | None = None,
    ) -> JudgingService:
        """The service of a router replica: judges reached through the hosted deployments' handles (or endpoints)."""
        judges = build_judges(config, tokenizers, principle_server, pairwise_server)
        return cls(config, judges, cohort_owner=cohort_owner, liveness=liveness)

    def judges(self) -> dict[str, Any]:
        """The configured judges by role."""
        return {role: judge for role in JUDGE_ROLES if (judge := getattr(self, role)) is not None}

    # ---- helpers -------------------------------------------------------------------------------------------

    async def _timed(self, stats: RequestStats, judge: str, call: Callable[[], Awaitable[T]]) -> T:
        timing = CallTiming()
        # The judge notes its answers' tokens here (deployments.judge.Judge.ask): a fresh tally per call, so that
        # this call's role is known, and every answer that came back is counted, even of a call that failed later.
        tokens: Tally[str] = Tally()
        tally = JUDGE_TOKENS.set(tokens)
        try:
            result = await self.lanes[judge].call(call, timing, stats.tenant)
        except JudgeSilent as exc:
            stats.calls[(judge, "timeout")] += 1
            logger.warning("a %s judge call timed out: %s", judge, exc)
            raise
        except Exception as exc:
            stats.calls[(judge, "error")] += 1
            logger.warning("a %s judge call failed: %s: %s", judge, type(exc).__name__, exc)
            raise
        finally:
            JUDGE_TOKENS.reset(tally)
            stats.latencies.append((judge, timing.sent_s))
            stats.call_queued_s += timing.queued_s
            for kind, count in tokens.items():
                stats.tokens[(judge, kind)] += count
        failures = _failures(result)
        if failures:
            stats.parse_failures[judge] += failures
            logger.info("a %s judge answer was unreadable: %s", judge, _failure_reasons(result))
        stats.calls[(judge, "parse_failure" if failures else "ok")] += 1
        return result

    def _refuse(self, stats: RequestStats, refusal: Refusal) -> Refusal:
        """``refusal``, with the request's metrics recorded under its status."""
        stats.status = str(refusal.status)
        record(self.metrics, stats)
        return refusal

    def _come_back(self, stats: RequestStats, status: int, message: str) -> Refusal:
        """A refusal that waiting cures (503 with the configured Retry-After)."""
        return self._refuse(stats, Refusal(status, message, retry_after_s=self.limits.retry_after_s))

    def _overloaded(self, stats: RequestStats) -> Refusal:
        return self._come_back(
            stats,
            503,
            f"too many requests in flight (limit {self.limits.max_concurrent_requests} running + "
            f"{self.limits.max_queued_requests} queued); retry later",
        )

    def _tenant_overloaded(self, stats: RequestStats, exc: TenantOverloaded) -> Refusal:
        return self._come_back(
            stats,
            429,
            f"tenant {exc.tenant!r} has as many requests in flight as its limits allow ({exc.running} running + "
            f"{exc.queued} queued per router replica); retry later",
        )

    @contextlib.contextmanager
    def _admission_refusals(self, stats: RequestStats) -> Iterator[None]:
        """Admission's refusals as the caller's: 429 with Retry-After when the tenant is at its own limits, 503
        when the router already holds as many requests as it may."""
        try:
            yield
        except TenantOverloaded as exc:
            raise self._tenant_overloaded(stats, exc) from None
        except Overloaded:
            raise self._overloaded(stats) from None

    def _admit(self, stats: RequestStats) -> None:
        """Refuse at once what admission would refuse (a batch asks once, for all its groups)."""
        with self._admission_refusals(stats):
            self.admission.check(stats.tenant)

    @contextlib.asynccontextmanager
    async def _admitted(self, stats: RequestStats, *, admitted: bool = False) -> AsyncIterator[float]:
        """One admission slot for the block (yields the seconds waited for it), refused as
        :meth:`_admission_refusals` says. ``admitted``: let in already, so wait, never refuse."""
        with self._admission_refusals(stats):
            async with self.admission.slot(admitted=admitted, tenant=stats.tenant) as queued_s:
                yield queued_s

    async def _fit(
        self, conversation: Sequence[ChatMessage], texts: Sequence[str], principles: Sequence[str], what: str
    ) -> tuple[list[str], list[int]]:
        if not self.budgets:
            return list(texts), []
        return await asyncio.get_running_loop().run_in_executor(
            self._tokenizing,
            fit_texts,
            self.budgets,
            conversation,
            texts,
            principles,
            self.limits.overlong,
            what,
        )

    # ---- one group -----------------------------------------------------------------------------------------

    def _group_judges(
        self,
        stats: RequestStats,
        conversation: Sequence[ChatMessage],
        candidates: list[str],
        principles: Sequence[str],
        principle_for_pairwise: str | None,
        hold: Callable[[], contextlib.AbstractAsyncContextManager[object]] = contextlib.nullcontext,
    ) -> tuple[PairwiseCall | None, PrincipleCall | None]:
        """The group's judges as the selection calls them, by candidate index into ``candidates`` as that list reads
        when the call is made (it is filled as the texts are fitted, or as they arrive); each call within
        ``hold()``."""
        attempts: Tally[tuple[int, int]] = Tally()
        pairwise_judge = principle_judge = None
        if self.pairwise is not None:
            judge = self.pairwise

            async def pairwise_judge(i: int, j: int) -> PairwiseResult:
                attempts[(i, j)] += 1
                if attempts[(i, j)] > 1:
                    stats.retries["pairwise"] += 1
                async with hold():
                    return await self._timed(
                        stats,
                        "pairwise",
                        lambda: judge.compare(conversation, candidates[i], candidates[j], principle_for_pairwise),
                    )

        if self.principle is not None:
            pjudge = self.principle

            async def principle_judge(k: int) -> list[PrincipleResult]:
                async with hold():
                    return await self._timed(
                        stats, "principle", lambda: pjudge.score(conversation, candidates[k], principles)
                    )

        return pairwise_judge, principle_judge

    @contextlib.contextmanager
    def _affinity(
        self, conversation: Sequence[ChatMessage], principles: Sequence[str], principle_for_pairwise: str | None
    ) -> Iterator[None]:
        """Every call of a group carries its prompt's key as the affinity key: with Serve's prefix-cache affinity
        router (or ConsistentHashRouter) on a judge deployment, they reach the one replica that holds the prompt in
        its prefix cache. The group's calls are batched apart from other groups' (a scope of their own), so that a
        deadline or a caller that goes away cancels exactly its calls, on the engine too."""
        key = AFFINITY_KEY.set(prompt_fingerprint(_prompt_parts(conversation, principles, principle_for_pairwise)))
        scope = CALL_SCOPE.set(object())
        try:
            yield
        finally:
            CALL_SCOPE.reset(scope)
            AFFINITY_KEY.reset(key)

    async def _one_version(
        self, stats: RequestStats, judge: Callable[[int], Awaitable[SelectionResult]]
    ) -> tuple[SelectionResult, set[tuple[str, str]]]:
        """``judge(attempt)``'s result and the judge versions it met. A group is judged by one version of each
        judge: calls that met two (a rolling update of a judge deployment) are all made again, once; still mixed,
        the caller retries later."""
        for attempt in range(2):
            versions = JUDGE_VERSIONS.set(set())
            try:
                result = await judge(attempt)
                seen = JUDGE_VERSIONS.get() or set()
            finally:
                JUDGE_VERSIONS.reset(versions)
            if len({model for model, _ in seen}) == len(seen):  # one version per judge model
                self.position_pool.learn(result.position_bias)
                return result, seen
            logger.warning("judge versions changed while a group was judged (%s); judging it again", seen)
        raise self._come_back(stats, 503, "the judges were being updated while this group was judged; retry shortly")

    def _too_long(self, stats: RequestStats) -> Refusal:
        return self._come_back(
            stats,
            503,
            f"the judges did not finish within {self.limits.max_request_s:g} s (router.max_request_s); retry later "
            f"or with fewer candidates or a smaller budget",
        )

    def _selected(
        self,
        stats: RequestStats,
        config: SelectionConfig,
        principles: list[str],
        judged: tuple[SelectionResult, set[tuple[str, str]]],
        candidates: Sequence[str],
        groups: Sequence[Sequence[int]],
        cut: Sequence[int],
        started: float,
        queued_s: float,
    ) -> Selected:
        """A selection over the distinct ``candidates`` as judged (``judged``: its result and the judge versions it
        met), mapped to the group's indices (``groups[u]``: those of distinct candidate u), with its health,
        timings and provenance; the request's stats filled in."""
        result, seen = judged
        scores = [c.score for c in sorted(result.candidates, key=lambda c: c.index)]
        lengths = [len(t) for t in candidates]
        health = judge_health(result.comparisons, result.principle_results, scores, lengths, result.position_bias)
        stats.health = health
        result = expand_result(result, groups)
        total = time.perf_counter() - started
        stats.status, stats.latency_s, stats.strategy = "200", total, config.strategy
        stats.swap_inconsistency = result.swap_inconsistency
        stats.degraded = bool(result.degraded)
        if result.degraded:
            logger.warning("degraded answer on %s: %s", stats.route, "; ".join(result.degraded))
        return Selected(
            result=result,
            config=config,
            principles=principles,
            timings=Timings(
                total_s=total,
                selection_s=result.elapsed_s,
                queued_s=queued_s,
                judge_queue_s=stats.call_queued_s,
            ),
            duplicates=[list(g) for g in groups if len(g) > 1],
            truncated=sorted(i for u in cut for i in groups[u]),
            judges=provenance(
                self.provenance, config.for_group(len(candidates)), result.principle_calls > 0, dict(sorted(seen))
            ),
            health=health,
        )

    async def select(self, body: BestOfNRequest, stats: RequestStats, *, admitted: bool = False) -> Selected:
        """Judge one group of candidates by the request's (or configured) design. ``admitted``: the group is part
        of work let in already (a batch's group, a complete cohort), so it waits for a slot instead of a 503."""
        started = time.perf_counter()
        principles = self.checks.group(body)
        config = self.checks.selection(body).with_position_pool(self.position_pool)
        self.checks.judges_for(config, self.principle is not None, self.pairwise is not None)
        conversation = body.conversation
        # Copies are judged once: the selection runs over the distinct texts and is mapped back afterwards.
        groups = group_duplicates(body.candidates)
        distinct = [body.candidates[g[0]] for g in groups]
        candidates: list[str] = []
        pairwise_judge, principle_judge = self._group_judges(
            stats, conversation, candidates, principles, body.principle_for_pairwise
        )
        try:
            with self._affinity(conversation, principles, body.principle_for_pairwise):
                async with self._admitted(stats, admitted=admitted) as queued_s:
                    prompt_principles = [*principles, *filter(None, [body.principle_for_pairwise])]
                    fitted, cut = await self._fit(conversation, distinct, prompt_principles, "candidate")
                    candidates.extend(fitted)
                    judging_started = time.perf_counter()

                    def judge_once(_: int) -> Awaitable[SelectionResult]:
                        # A group judged again (a judge update met mid-group) keeps the request's one deadline.
                        own = config
                        if config.deadline_s is not None:
                            left = config.deadline_s - (time.perf_counter() - judging_started)
                            own = config.model_copy(update={"deadline_s": max(left, 1e-3)})
                        return asyncio.wait_for(
                            select_best(len(candidates), pairwise_judge, principle_judge, own, candidates),
                            self.limits.max_request_s,
                        )

                    judged = await self._one_version(stats, judge_once)
        except TimeoutError:
            raise self._too_long(stats) from None
        return self._selected(stats, config, principles, judged, candidates, groups, cut, started, queued_s)

    async def best_of_n(self, body: BestOfNRequest, stats: RequestStats) -> BestOfNResponse:
        return best_of_n_answer(await self.select(body, stats), body.candidates, self.limits.overlong)

    def rank_response(self, selected: Selected) -> RankResponse:
        return rank_answer(selected, self.limits.overlong)

    async def rank(self, body: RankRequest, stats: RequestStats, *, admitted: bool = False) -> RankResponse:
        return self.rank_response(await self.select(body, stats, admitted=admitted))

    # ---- many groups ---------------------------------------------------------------------------------------

    async def rank_batch(
        self, body: RankBatchRequest, tenant: str = DEFAULT_TENANT
    ) -> tuple[RankBatchResponse, list[RequestStats]]:
        """Every group judged concurrently, each as /v1/rank would judge it. The batch is admitted once (503 when
        the router is full); its groups then wait for running slots like any request, and a group that /v1/rank
        would refuse gets that status in its own entry. Returns the per-group stats to record."""
        started = time.perf_counter()
        self.checks.batch(len(body.groups))
        self._admit(RequestStats("rank_batch", tenant=tenant))
        all_stats: list[RequestStats] = []

        async def one(index: int, raw: Any) -> RankBatchEntry:
            try:
                group = RankRequest.model_validate(raw)
            except ValidationError as exc:
                errors = [{**e, "loc": [_printable(p) for p in e["loc"]]} for e in validation_errors(exc)]
                return RankBatchEntry(index=index, status=422, detail=errors)
            stats = RequestStats("rank_batch", tenant=tenant)
            try:
                answer = await self.rank(group, stats, admitted=True)
            except Refusal as exc:
                return RankBatchEntry(index=index, status=exc.status, detail=exc.message)
            all_stats.append(stats)
            return RankBatchEntry(index=index, status=200, result=answer)

        entries = await asyncio.gather(*(one(i, g) for i, g in enumerate(body.groups)))
        judged = sum(e.status == 200 for e in entries)
        answer = RankBatchResponse(
            results=list(entries),
            judged=judged,
            failed=len(entries) - judged,
            timings=RankBatchTimings(total_s=time.perf_counter() - started),
        )
        return answer, all_stats

    # ---- one rollout at a time: cohorts --------------------------------------------------------------------

    async def reward(
        self, body: RewardRequest, stats: RequestStats, rule: str = "ensemble", rollout: RolloutTexts | None = None
    ) -> RewardResponse:
        """One rollout's reward: it joins its cohort, waits until the cohort is judged, and reads its own row.
        ``rule`` names the :class:`~serve_app.core.reward_rules.RewardRule` its cohort is judged and read by; a
        ``reference`` answer makes it ``anchored``. ``rollout``: the rollout's texts, for a rule that reads them
        (``RewardRule.reads_rollouts``); they travel with the sample to its cohort, on whichever replica owns it."""
        if body.reference is not None:
            if rule not in ("ensemble", "anchored"):
                raise reject(
                    422,
                    f"reference: the {rule} reward rule compares a group's rollouts with each other; send the "
                    f"reference answer with the default rule (anchored rewards), or leave it out",
                )
            if not body.reference.strip():
                raise reject(422, "reference is empty or whitespace; give the reference answer's text")
            rule = "anchored"
        if self.rules[rule].reads_rollouts and rollout is None:
            raise ValueError(f"the {rule} reward rule reads each rollout's texts; pass them as rollout")
        if self.cohort_owner is not None:
            return await self._forward_reward(body, rule, stats.tenant, rollout)
        if self.cohorts is None:
            raise reject(
                404,
                "per-sample rewards are off in this deployment (router.cohorts.enabled: false); send each group "
                "whole to /v1/rank or /v1/rank_batch",
            )
        started = time.perf_counter()
        sample = self._sample(body, stats.tenant, rule, rollout)
        self.checks.group_size(sample.group_size)
        try:
            await self._check_sample(body)
        except Refusal:
            # It still arrived: its cohort must not wait for it.
            with contextlib.suppress(CohortRefused):
                self.cohorts.join(sample, judged=False)
            raise
        try:
            ticket = self.cohorts.join(sample)
        except CohortRefused as exc:
            retry = self.limits.retry_after_s if exc.retry_after else None
            raise self._refuse(stats, Refusal(exc.status, exc.message, retry_after_s=retry)) from None
        try:
            outcome = await ticket.outcome()
        except Refusal as exc:  # the cohort's judging was refused (e.g. router.max_request_s)
            raise self._refuse(stats, exc) from None
        except asyncio.CancelledError:  # the caller left (a client timeout): its retry takes this place
            self.cohorts.left(ticket, sample)
            raise
        selected = outcome.result
        assert selected is not None  # a cohort with a judged sample has a result
        position = ticket.position(outcome)
        reward_rule: RewardRule = sample.prompt.rule
        if reward_rule.anchored:
            reward = anchored_rewards(selected)[position]
            position += 1  # the reference is candidate 0
        else:
            n = len(outcome.indices)
            values = None if reward_rule.rewards is None else reward_rule.rewards(selected, n, outcome.rollouts)
            reward = group_rewards(selected, values)[position]
        total = time.perf_counter() - started
        stats.status, stats.latency_s = "200", total
        closed = ticket.cohort.closed if ticket.cohort.closed is not None else ticket.arrived
        cohort = {
            "rollout_index": ticket.rollout_index,
            "cohort_id": outcome.cohort_id,
            "group_id": body.group_id,
            "group_size": outcome.group_size,
            "size_judged": len(outcome.indices),
            "complete": outcome.complete,
            "closed_by": outcome.closed_by,
        }
        timings = CohortTimings(total_s=total, waited_s=max(0.0, closed - ticket.arrived), judging_s=outcome.judging_s)
        return reward_answer(selected, position, reward, self.limits.overlong, cohort=cohort, timings=timings)

    def _sample(self, body: RewardRequest, tenant: str, rule: str, rollout: RolloutTexts | None = None) -> Sample:
        """The rollout as its cohort takes it; ``Sample.key`` names the cohort (and so the owner shard)."""
        # An explicit group may leave group_size to its first sample; a prompt-derived key needs it resolved.
        size = body.group_size if body.group_id is not None else (body.group_size or self.limits.cohorts.group_size)
        principles = body.principles if body.principles is not None else self.limits.default_principles
        conversation = list(body.conversation)
        prompt_key = _prompt_parts(conversation, principles, body.principle_for_pairwise)
        if rule != "ensemble":  # cohorts of different rules (and references) never mix
            prompt_key.append(rule)
        if body.reference is not None:
            prompt_key.append(body.reference)
        return Sample(
            response=body.response,
            # Cohorts are kept per tenant, and per job within a tenant when the caller names one: two jobs that
            # send the same prompt never share a cohort (and so never a scale).
            scope=prompt_fingerprint([tenant, body.job_id]),
            fingerprint=prompt_fingerprint(prompt_key),
            prompt=CohortPrompt(
                conversation, principles, body.principle_for_pairwise, self.rules[rule], tenant, body.reference
            ),
            group_id=body.group_id,
            group_size=size,
            rollout_index=body.rollout_index,
            idempotency_key=body.idempotency_key,
            tenant=tenant,
            rollout=rollout,
        )

    async def _check_sample(self, body: RewardRequest) -> None:
        """What would make /v1/rank refuse this rollout, checked on its own so that it alone is refused."""
        if not body.response.strip():
            raise reject(422, "response is empty or whitespace; a rollout needs text to be judged")
        principles = self.checks.principles(body.principles)
        self.checks.texts([body.response], "response")
        self.checks.prompt_texts(body.conversation, principles, body.principle_for_pairwise)
        if self.limits.overlong == "reject":  # under 'truncate' the cohort's judging cuts it, as /v1/rank would
            prompt_principles = [*principles, *filter(None, [body.principle_for_pairwise])]
            await self._fit(body.conversation, [body.response], prompt_principles, "response")

    async def _judge_cohort(self, cohort: Cohort[Selected]) -> Selected:
        """A cohort judged as /v1/rank judges a group, by its rule's design, in a slot that waits instead of
        refusing; under ``router.cohorts.incremental`` a Swiss cohort is judged while its samples arrive
        (:meth:`_select_arriving`), any other once it has closed."""
        prompt: CohortPrompt = cohort.prompt
        stats = RequestStats("reward_cohort", tenant=prompt.tenant)
        design = SelectionOptions.model_validate(prompt.rule.design)
        config = self.checks.selection(design).with_position_pool(self.position_pool)
        if self.limits.cohorts.incremental and config.strategy == "swiss" and self.pairwise is not None:
            selected = await self._select_arriving(cohort, config, stats)
        else:
            await cohort.closing()
            body = RankRequest.model_validate(
                {
                    "conversation": prompt.conversation,
                    "candidates": [*filter(None, [prompt.reference]), *(response for _, response in cohort.judged())],
                    "principles": prompt.principles,
                    "principle_for_pairwise": prompt.principle_for_pairwise,
                    **prompt.rule.design,
                }
            )
            selected = await self.select(body, stats, admitted=True)
        # After the callers are woken: each Ray metric update costs a few hundred microseconds.
        asyncio.get_running_loop().call_soon(record, self.metrics, stats)
        return selected

    async def _select_arriving(
        self, cohort: Cohort[Selected], config: SelectionConfig, stats: RequestStats
    ) -> Selected:
        """Judge ``cohort`` from its first samples on (:func:`policies.incremental.select_arriving`), as
        :meth:`select` would judge it complete: copies judged once, texts fitted to the judges, calls in an
        admission slot (held only while calls are in flight, :class:`HeldWhileBusy`, so a cohort waiting for its
        rollouts keeps no other request out), one version of each judge (else judged again once, whole), at most
        ``router.max_request_s`` from the close on. The result is in :meth:`Cohort.judged` order; its latency (the
        request's stats, ``timings.total_s``) counts from the close, the wait the callers have once the group is
        there, as for a cohort judged whole."""
        closed = time.perf_counter()  # set again when the cohort closes
        prompt: CohortPrompt = cohort.prompt
        principles = self.checks.principles(prompt.principles)
        conversation, for_pairwise = prompt.conversation, prompt.principle_for_pairwise
        prompt_principles = [*principles, *filter(None, [for_pairwise])]
        candidates: list[str] = []  # the distinct texts as judged, in the order they arrived
        members: list[list[int]] = []  # the rollout indices of each
        first: dict[str, int] = {}  # a text's duplicate key -> its index in candidates
        cut: list[int] = []
        slot = HeldWhileBusy(lambda: self._admitted(stats, admitted=True))
        pairwise_judge, principle_judge = self._group_judges(
            stats, conversation, candidates, principles, for_pairwise, slot.hold
        )
        loop = asyncio.get_running_loop()

        async def arrivals() -> AsyncIterator[str]:
            nonlocal closed
            async for index, response in cohort.arrivals():
                key = duplicate_key(response)
                if key in first:
                    members[first[key]].append(index)
                    continue
                (text,), truncated = await self._fit(conversation, [response], prompt_principles, "candidate")
                first[key] = len(candidates)
                cut.extend(len(candidates) for _ in truncated)
                members.append([index])
                candidates.append(text)
                yield text
            closed = time.perf_counter()
            deadline.reschedule(loop.time() + self.limits.max_request_s)

        def attempt(again: int) -> Awaitable[SelectionResult]:
            if again:  # the cohort has closed: judged whole, as select would
                return select_best(len(candidates), pairwise_judge, principle_judge, config, candidates)
            return select_arriving(arrivals(), cohort.size, pairwise_judge, principle_judge, config)

        try:
            with self._affinity(conversation, principles, for_pairwise):
                async with asyncio.timeout(None) as deadline:
                    judged = await self._one_version(stats, attempt)
        except TimeoutError:
            raise self._too_long(stats) from None
        position = {index: k for k, (index, _) in enumerate(cohort.judged())}
        groups = [sorted(position[i] for i in m) for m in members]
        return self._selected(stats, config, principles, judged, candidates, groups, cut, closed, slot.queued_s)

    def owner_of(self, sample: Sample) -> Any:
        """The cohort owner shard that holds ``sample``'s cohort: a stable hash of the cohort key over the owners,
        so every sample of one cohort reaches the same owner, from whichever router replica, with no fallback to
        another (a cohort split over two owners would be judged as two)."""
        owners = self.cohort_owner if isinstance(self.cohort_owner, list | tuple) else [self.cohort_owner]
        return owners[shard_of(sample.key, len(owners))]

    async def _forward_reward(
        self, body: RewardRequest, rule: str, tenant: str, rollout: RolloutTexts | None
    ) -> RewardResponse:
        """This replica does not own the cohorts: the owner of this sample's cohort answers (the caller's wait is
        cancelled with it). A lost owner is a 503 with Retry-After at once; its replacement takes the retry."""
        owner = self.owner_of(self._sample(body, tenant, rule))
        payload = {**body.model_dump(mode="json", exclude_none=True), _FORWARDED_RULE: rule, _FORWARDED_TENANT: tenant}
        if rollout is not None:
            payload[_FORWARDED_ROLLOUT] = rollout.model_dump(mode="json")
        try:
            raw = await owner.forwarded_reward.remote(payload)
        except Exception as exc:
            raise reject(
                503,
                f"the cohort owner replica is unavailable ({type(exc).__name__}); retry later",
                self.limits.retry_after_s,
            ) from None
        answer = Forwarded.model_validate(raw)
        if answer.status != 200 or answer.body is None:
            raise Refusal(
                answer.status, answer.detail or "refused by the cohort owner", retry_after_s=answer.retry_after_s
            )
        return RewardResponse.model_validate_json(answer.body)

    async def forwarded_reward(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The cohort owner's side of :meth:`_forward_reward` (``payload``: the request's fields, and its reward
        rule's name, tenant and rollout texts under keys no request field has): the answer as a plain dict, a
        refusal included."""
        fields = dict(payload)
        rule = fields.pop(_FORWARDED_RULE, "ensemble")
        stats = RequestStats("reward", tenant=fields.pop(_FORWARDED_TENANT, DEFAULT_TENANT))
        texts = fields.pop(_FORWARDED_ROLLOUT, None)
        rollout = None if texts is None else RolloutTexts.model_validate(texts)
        try:
            answer = await self.reward(RewardRequest.model_validate(fields), stats, rule, rollout)
        except Refusal as exc:
            return Forwarded(status=exc.status, detail=exc.message, retry_after_s=exc.retry_after_s).model_dump()
        asyncio.get_running_loop().call_soon(record, self.metrics, stats)
        return Forwarded(status=200, body=answer.model_dump_json()).model_dump()

    # ---- single calls --------------------------------------------------------------------------------------

    async def principle_score(self, body: PrincipleScoreRequest, stats: RequestStats) -> PrincipleScoreResponse:
        self.checks.judge_present("principle", self.principle is not None)
        self.checks.principles(body.principles)
        self.checks.texts([body.response, *body.principles, *(m.content for m in body.conversation)], "text")
        (response,), cut = await self._fit(body.conversation, [body.response], body.principles, "response")
        judge = self.principle
        assert judge is not None
        async with self._admitted(stats):
            try:
                results = await self._timed(
                    stats, "principle", lambda: judge.score(body.conversation, response, body.principles)
                )
            except Exception as exc:
                raise self._refuse(stats, reject(503, f"the principle judge is unavailable: {exc}")) from exc
        stats.status = "200"
        return PrincipleScoreResponse(
            results=results,
            mean_reward=mean_reward(results),
            truncated=bool(cut),
            overlong_policy=self.limits.overlong,
        )

    async def compare(self, body: CompareRequest, stats: RequestStats) -> CompareResponse:
        self.checks.judge_present("pairwise", self.pairwise is not None)
        self.checks.texts([body.response_1, body.response_2, *(m.content for m in body.conversation)], "text")
        (first, second), cut = await self._fit(
            body.conversation, [body.response_1, body.response_2], list(filter(None, [body.principle])), "response"
        )
        judge = self.pairwise
        assert judge is not None

        async def one(a: str, b: str) -> PairwiseResult:
            try:
                return await self._timed(
                    stats, "pairwise", lambda: judge.compare(body.conversation, a, b, body.principle)
                )
            except Exception as exc:
                return PairwiseResult(failure=f"judge error: {exc}", unanswered=True)

        async with self._admitted(stats):
            forward, backward = await asyncio.gather(one(first, second), one(second, first))
        if forward.unanswered and backward.unanswered:
            raise self._refuse(stats, reject(503, f"the pairwise judge is unavailable: {forward.failure}"))
        stats.status = "200"
        comparison = combine_results(0, 1, [forward], [backward], verdicts=self.limits.selection.verdicts)
        return CompareResponse(
            forward=forward,
            backward=backward,
            comparison=comparison,
            truncated=[f"response_{i + 1}" for i in cut],
            overlong_policy=self.limits.overlong,
        )

    async def chat(self, role: str, judge: Judge, request: dict[str, Any], stats: RequestStats) -> Completion:
        """One raw chat call to a judge's engine (the OpenAI front's unit): one admission slot, the judge's lane,
        counted as every judge call is. A judge that is silent or down is a 503 with Retry-After; an engine that
        refuses the request itself (too long, a bad parameter) is the caller's 422."""
        model = getattr(self.config, role).served_model
        async with self._admitted(stats):
            try:
                return await self._timed(stats, role, lambda: judge.ask(request))
            except JudgeSilent as exc:
                raise self._come_back(stats, 503, f"the {role} judge ({model}) did not answer: {exc}") from None
            except JudgeCallError as exc:
                if exc.status in _REQUEST_REFUSED:
                    refusal = reject(422, f"the {role} judge's engine refused the request: {exc}")
                    raise self._refuse(stats, refusal) from None
                raise self._come_back(stats, 503, f"the {role} judge ({model}) is unavailable: {exc}") from None
            except Exception as exc:  # a client bug must still reach the caller as "judge unavailable"
                logger.exception("chat call to the %s judge failed", role)
                raise self._come_back(stats, 503, f"the {role} judge ({model}) failed: {type(exc).__name__}") from None
