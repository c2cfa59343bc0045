"""The core of a router replica: what every route asks of the judges, as plain async methods.

:class:`JudgingService` holds the replica's judges, their call lanes and context budgets, admission, readiness,
metrics and cohorts, and offers :meth:`~JudgingService.select` (one group judged by the configured design) with the
answers built on it — :meth:`~JudgingService.best_of_n`, :meth:`~JudgingService.rank`,
:meth:`~JudgingService.rank_batch`, :meth:`~JudgingService.reward` (per sample, through cohorts) — and the two
single-call routes, :meth:`~JudgingService.principle_score` and :meth:`~JudgingService.compare`.

Route modules (``serve_app/routes/``) stay thin: they take the parsed body, call one method with a fresh
:class:`~serve_app.metrics.RequestStats`, and serialise the answer. A method refuses with a ``fastapi.HTTPException``
(``serve_app.errors.reject``): status, what was wrong, what is allowed. A trainer protocol translates its request
into these calls, and the answer or the refusal into its own shape.

Every judge call goes through :meth:`JudgingService._timed` (lane, timeout, metrics); every group through one
admission slot; overlong text through :mod:`serve_app.fitting`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import HTTPException
from pydantic import BaseModel, ValidationError

from deployments.chat import ChatMessage
from policies.debias import combine_results
from policies.duplicates import expand_result, group_duplicates
from policies.selection import SelectionConfig, SelectionResult, select_best
from policies.verdicts import PairwiseResult, PrincipleResult, mean_reward
from serve_app.admission import Admission, Overloaded
from serve_app.cohorts import Cohort, CohortRefused, Cohorts, Sample, prompt_fingerprint
from serve_app.config import AppConfig, RouterConfig
from serve_app.errors import reject
from serve_app.fitting import fit_texts
from serve_app.gate import validation_errors
from serve_app.judge_calls import CallTiming, JudgeLane, JudgeSilent
from serve_app.judges import Judges, build_judges
from serve_app.metrics import RequestStats, RouterMetrics, record
from serve_app.readiness import Readiness
from serve_app.schemas import (
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


def _failures(result: Any) -> int:
    if isinstance(result, PairwiseResult):
        return int(not result.ok)
    if isinstance(result, list):
        return sum(not r.ok for r in result if isinstance(r, PrincipleResult))
    return 0


@dataclasses.dataclass
class Selected:
    """What one best-of-N/rank selection produced, in the request's own candidate indices."""

    result: SelectionResult
    config: SelectionConfig
    principles: list[str]
    timings: Timings
    duplicates: list[list[int]]
    truncated: list[int]


@dataclasses.dataclass(frozen=True)
class CohortPrompt:
    """What a cohort's judging needs besides the responses: taken from its first sample."""

    conversation: list[ChatMessage]
    principles: list[str]
    principle_for_pairwise: str | None


class Forwarded(BaseModel):
    """A /v1/reward answer from the cohort owner to the replica that received the request (see serve_app.app)."""

    status: int
    body: str | None = None  # the RewardResponse JSON, when status is 200
    detail: str | None = None
    headers: dict[str, str] | None = None


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
        metrics: RouterMetrics | None = None,
        cohort_owner: Any = None,
    ) -> None:
        self.config = config
        self.limits: RouterConfig = config.router
        self.metrics = metrics if metrics is not None else RouterMetrics()
        self.admission = Admission(self.limits.max_concurrent_requests, self.limits.max_queued_requests)
        self.principle = judges.principle
        self.pairwise = judges.pairwise
        self.budgets = judges.budgets
        # Token counting is CPU work: one thread keeps it off the event loop and never shares a tokenizer.
        self._tokenizing = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")
        self.lanes = {
            role: JudgeLane(role, cfg.call_timeout_s, cfg.max_inflight_calls, cfg.max_call_s)
            for role in ("principle", "pairwise")
            if (cfg := getattr(self.config, role)) is not None
        }
        present = {role: judge for role in ("principle", "pairwise") if (judge := getattr(self, role)) is not None}
        self.readiness = Readiness(present, self.lanes)
        with contextlib.suppress(RuntimeError):  # no running loop: constructed outside Serve (unit tests)
            self.readiness.start()
        #: a handle to the replica that owns the cohorts when the router has several replicas (None: this one)
        self.cohort_owner = cohort_owner
        self.cohorts: Cohorts[Selected] | None = None
        if self.limits.cohorts.enabled and cohort_owner is None:
            self.cohorts = Cohorts(self.limits.cohorts, self._judge_cohort)

    @classmethod
    def from_deployment(
        cls,
        config: AppConfig,
        tokenizers: dict[str, str],
        principle_server: Any = None,
        pairwise_server: Any = None,
        cohort_owner: Any = None,
    ) -> JudgingService:
        """The service of a router replica: judges reached through the hosted deployments' handles (or endpoints)."""
        judges = build_judges(config, tokenizers, principle_server, pairwise_server)
        return cls(config, judges, cohort_owner=cohort_owner)

    # ---- helpers -------------------------------------------------------------------------------------------

    async def _timed(self, stats: RequestStats, judge: str, call: Callable[[], Awaitable[T]]) -> T:
        timing = CallTiming()
        try:
            result = await self.lanes[judge].call(call, timing)
        except JudgeSilent:
            stats.calls[(judge, "timeout")] += 1
            raise
        except Exception:
            stats.calls[(judge, "error")] += 1
            raise
        finally:
            stats.latencies.append((judge, timing.sent_s))
            stats.call_queued_s += timing.queued_s
        failures = _failures(result)
        if failures:
            stats.parse_failures[judge] += failures
        stats.calls[(judge, "parse_failure" if failures else "ok")] += 1
        return result

    def _refuse(
        self, stats: RequestStats, status: int, message: str, headers: dict[str, str] | None = None
    ) -> HTTPException:
        stats.status = str(status)
        record(self.metrics, stats)
        return reject(status, message, headers)

    @property
    def _retry_after(self) -> dict[str, str]:
        return {"Retry-After": str(self.limits.retry_after_s)}

    def _overloaded(self, stats: RequestStats) -> HTTPException:
        return self._refuse(
            stats,
            503,
            f"too many requests in flight (limit {self.limits.max_concurrent_requests} running + "
            f"{self.limits.max_queued_requests} queued); retry later",
            headers=self._retry_after,
        )

    @contextlib.asynccontextmanager
    async def _admitted(self, stats: RequestStats, *, admitted: bool = False) -> AsyncIterator[float]:
        """One admission slot for the block (yields the seconds waited for it); 503 with Retry-After when the
        router already holds as many requests as it may. ``admitted``: let in already, so wait, never refuse."""
        try:
            async with self.admission.slot(admitted=admitted) as queued_s:
                yield queued_s
        except Overloaded:
            raise self._overloaded(stats) from None

    def _check_texts(self, texts: Sequence[str], what: str) -> None:
        limit = self.limits.max_text_chars
        for i, text in enumerate(texts):
            if len(text) > limit:
                raise reject(422, f"{what} {i} has {len(text)} characters; at most {limit} are allowed")

    def _check_request(self, body: BestOfNRequest) -> list[str]:
        n, cap = len(body.candidates), self.limits.max_candidates
        if n > cap:
            raise reject(422, f"{n} candidates; this service takes 1 to {cap}")
        principles = body.principles if body.principles is not None else self.limits.default_principles
        if len(principles) > self.limits.max_principles:
            raise reject(
                422, f"{len(principles)} principles; at most {self.limits.max_principles} are allowed per request"
            )
        self._check_texts(body.candidates, "candidate")
        self._check_texts([m.content for m in body.conversation], "conversation turn")
        self._check_texts([*principles, *filter(None, [body.principle_for_pairwise])], "principle")
        return principles

    def _selection(self, options: SelectionOptions) -> SelectionConfig:
        base = self.limits.selection
        overrides = {
            k: v for k, v in options.model_dump(include=set(SelectionOptions.model_fields)).items() if v is not None
        }
        try:
            return SelectionConfig.model_validate({**base.model_dump(), **overrides})
        except ValueError as exc:
            raise reject(422, f"invalid selection options: {exc}") from exc

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

    async def select(self, body: BestOfNRequest, stats: RequestStats, *, admitted: bool = False) -> Selected:
        """Judge one group of candidates by the request's (or configured) design. ``admitted``: the group is part
        of work let in already (a batch's group, a complete cohort), so it waits for a slot instead of a 503."""
        started = time.perf_counter()
        principles = self._check_request(body)
        config = self._selection(body)
        conversation = body.conversation
        if config.strategy != "principle" and self.pairwise is None and not (config.use_principle and self.principle):
            raise reject(422, f"strategy {config.strategy!r} needs the pairwise judge, which is not configured")
        if config.strategy == "principle" and self.principle is None:
            raise reject(422, "strategy 'principle' needs the principle judge, which is not configured")
        # Copies are judged once: the selection runs over the distinct texts and is mapped back afterwards.
        groups = group_duplicates(body.candidates)
        distinct = [body.candidates[g[0]] for g in groups]
        candidates: list[str] = distinct
        attempts: Tally[tuple[int, int]] = Tally()

        pairwise_judge = None
        if self.pairwise is not None:
            judge = self.pairwise

            async def pairwise_judge(i: int, j: int) -> PairwiseResult:
                attempts[(i, j)] += 1
                if attempts[(i, j)] > 1:
                    stats.retries["pairwise"] += 1
                return await self._timed(
                    stats,
                    "pairwise",
                    lambda: judge.compare(conversation, candidates[i], candidates[j], body.principle_for_pairwise),
                )

        principle_judge = None
        if self.principle is not None:
            pjudge = self.principle

            async def principle_judge(k: int) -> list[PrincipleResult]:
                return await self._timed(
                    stats, "principle", lambda: pjudge.score(conversation, candidates[k], principles)
                )

        try:
            async with self._admitted(stats, admitted=admitted) as queued_s:
                prompt_principles = [*principles, *filter(None, [body.principle_for_pairwise])]
                candidates, cut = await self._fit(conversation, distinct, prompt_principles, "candidate")
                result = await asyncio.wait_for(
                    select_best(len(candidates), pairwise_judge, principle_judge, config, candidates),
                    self.limits.max_request_s,
                )
        except TimeoutError:
            raise self._refuse(
                stats,
                503,
                f"the judges did not finish within {self.limits.max_request_s:g} s (router.max_request_s); retry "
                f"later or with fewer candidates or a smaller budget",
                headers=self._retry_after,
            ) from None
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
            duplicates=[g for g in groups if len(g) > 1],
            truncated=sorted(i for u in cut for i in groups[u]),
        )

    async def best_of_n(self, body: BestOfNRequest, stats: RequestStats) -> BestOfNResponse:
        selected = await self.select(body, stats)
        result = selected.result
        return BestOfNResponse(
            index=result.best,
            text=body.candidates[result.best],
            strategy=selected.config.strategy,
            ranking=result.ranking,
            candidates=result.candidates,
            comparisons=result.comparisons,
            principles=selected.principles if result.principle_calls else [],
            pairwise_calls=result.pairwise_calls,
            principle_calls=result.principle_calls,
            failed_calls=result.failed_calls,
            rounds=result.rounds,
            swap_inconsistency=result.swap_inconsistency,
            style_effect=result.style_effect,
            degraded=result.degraded,
            duplicates=selected.duplicates,
            truncated=selected.truncated,
            overlong_policy=self.limits.overlong,
            timings=selected.timings,
        )

    def rank_response(self, selected: Selected) -> RankResponse:
        result = selected.result
        by_index = sorted(result.candidates, key=lambda c: c.index)
        return RankResponse(
            scores=[c.score for c in by_index],
            ranks=[c.rank for c in by_index],
            candidates=by_index,
            pairwise_calls=result.pairwise_calls,
            principle_calls=result.principle_calls,
            failed_calls=result.failed_calls,
            style_effect=result.style_effect,
            degraded=result.degraded,
            duplicates=selected.duplicates,
            truncated=selected.truncated,
            overlong_policy=self.limits.overlong,
            timings=selected.timings,
        )

    async def rank(self, body: RankRequest, stats: RequestStats, *, admitted: bool = False) -> RankResponse:
        return self.rank_response(await self.select(body, stats, admitted=admitted))

    # ---- many groups ---------------------------------------------------------------------------------------

    async def rank_batch(self, body: RankBatchRequest) -> tuple[RankBatchResponse, list[RequestStats]]:
        """Every group judged concurrently, each as /v1/rank would judge it. The batch is admitted once (503 when
        the router is full); its groups then wait for running slots like any request, and a group that /v1/rank
        would refuse gets that status in its own entry. Returns the per-group stats to record."""
        started = time.perf_counter()
        n, cap = len(body.groups), self.limits.max_batch_groups
        if n > cap:
            raise reject(422, f"{n} groups; at most {cap} are allowed per request (router.max_batch_groups)")
        batch_stats = RequestStats("rank_batch")
        try:
            self.admission.check()
        except Overloaded:
            raise self._overloaded(batch_stats) from None
        all_stats: list[RequestStats] = []

        async def one(index: int, raw: Any) -> RankBatchEntry:
            try:
                group = RankRequest.model_validate(raw)
            except ValidationError as exc:
                errors = [{**e, "loc": [_printable(p) for p in e["loc"]]} for e in validation_errors(exc)]
                return RankBatchEntry(index=index, status=422, detail=errors)
            stats = RequestStats("rank_batch")
            try:
                answer = await self.rank(group, stats, admitted=True)
            except HTTPException as exc:
                return RankBatchEntry(index=index, status=exc.status_code, detail=str(exc.detail))
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

    async def reward(self, body: RewardRequest, stats: RequestStats) -> RewardResponse:
        """One rollout's reward: it joins its cohort, waits until the cohort is judged, and reads its own row."""
        if self.cohort_owner is not None:
            return await self._forward_reward(body)
        if self.cohorts is None:
            raise reject(
                404,
                "per-sample rewards are off in this deployment (router.cohorts.enabled: false); send each group "
                "whole to /v1/rank or /v1/rank_batch",
            )
        started = time.perf_counter()
        settings = self.limits.cohorts
        # An explicit group may leave group_size to its first sample; a prompt-derived key needs it resolved.
        size = body.group_size if body.group_id is not None else (body.group_size or settings.group_size)
        if size is not None and size > self.limits.max_candidates:
            raise reject(
                422, f"group_size {size}; this service judges groups of 1 to {self.limits.max_candidates} rollouts"
            )
        principles = body.principles if body.principles is not None else self.limits.default_principles
        conversation = list(body.conversation)
        sample = Sample(
            response=body.response,
            fingerprint=prompt_fingerprint(
                [[[m.role, m.content] for m in conversation], principles, body.principle_for_pairwise]
            ),
            prompt=CohortPrompt(conversation, principles, body.principle_for_pairwise),
            group_id=body.group_id,
            group_size=size,
            rollout_index=body.rollout_index,
        )
        try:
            await self._check_sample(body, principles)
        except HTTPException:
            # It still arrived: its cohort must not wait for it.
            with contextlib.suppress(CohortRefused):
                self.cohorts.join(sample, judged=False)
            raise
        try:
            ticket = self.cohorts.join(sample)
        except CohortRefused as exc:
            raise self._refuse(stats, exc.status, exc.message, self._retry_after if exc.retry_after else None) from None
        try:
            outcome = await ticket.outcome()
        except HTTPException as exc:  # the cohort's judging was refused (e.g. router.max_request_s)
            raise self._refuse(stats, exc.status_code, str(exc.detail), exc.headers) from None
        selected = outcome.result
        assert selected is not None  # a cohort with a judged sample has a result
        position = ticket.position(outcome)
        result = selected.result
        row = next(c for c in result.candidates if c.index == position)
        total = time.perf_counter() - started
        stats.status, stats.latency_s = "200", total
        closed = ticket.cohort.closed if ticket.cohort.closed is not None else ticket.arrived
        return RewardResponse(
            reward=row.score,
            rank=row.rank,
            rollout_index=ticket.rollout_index,
            cohort_id=outcome.cohort_id,
            group_id=body.group_id,
            group_size=outcome.group_size,
            size_judged=len(outcome.indices),
            complete=outcome.complete,
            closed_by=outcome.closed_by,
            candidate=row.model_copy(update={"index": ticket.rollout_index}),
            strategy=selected.config.strategy,
            pairwise_calls=result.pairwise_calls,
            principle_calls=result.principle_calls,
            failed_calls=result.failed_calls,
            degraded=result.degraded,
            truncated=position in selected.truncated,
            overlong_policy=self.limits.overlong,
            timings=CohortTimings(
                total_s=total, waited_s=max(0.0, closed - ticket.arrived), judging_s=outcome.judging_s
            ),
        )

    async def _check_sample(self, body: RewardRequest, principles: list[str]) -> None:
        """What would make /v1/rank refuse this rollout, checked on its own so that it alone is refused."""
        if not body.response.strip():
            raise reject(422, "response is empty or whitespace; a rollout needs text to be judged")
        if len(principles) > self.limits.max_principles:
            raise reject(
                422, f"{len(principles)} principles; at most {self.limits.max_principles} are allowed per request"
            )
        self._check_texts([body.response], "response")
        self._check_texts([m.content for m in body.conversation], "conversation turn")
        self._check_texts([*principles, *filter(None, [body.principle_for_pairwise])], "principle")
        if self.limits.overlong == "reject":  # under 'truncate' the cohort's judging cuts it, as /v1/rank would
            prompt_principles = [*principles, *filter(None, [body.principle_for_pairwise])]
            await self._fit(body.conversation, [body.response], prompt_principles, "response")

    async def _judge_cohort(self, cohort: Cohort[Selected]) -> Selected:
        """A closed cohort judged as /v1/rank judges a group, in a slot that waits instead of refusing."""
        prompt: CohortPrompt = cohort.prompt
        body = RankRequest(
            conversation=prompt.conversation,
            candidates=[response for _, response in cohort.judged()],
            principles=prompt.principles,
            principle_for_pairwise=prompt.principle_for_pairwise,
            strategy=self.limits.cohorts.strategy,
        )
        stats = RequestStats("reward_cohort")
        selected = await self.select(body, stats, admitted=True)
        # After the callers are woken: each Ray metric update costs a few hundred microseconds.
        asyncio.get_running_loop().call_soon(record, self.metrics, stats)
        return selected

    async def _forward_reward(self, body: RewardRequest) -> RewardResponse:
        """This replica does not own the cohorts: the owner answers (the caller's wait is cancelled with it)."""
        try:
            raw = await self.cohort_owner.forwarded_reward.remote(body.model_dump(mode="json", exclude_none=True))
        except Exception as exc:
            raise reject(
                503, f"the cohort owner replica is unavailable ({type(exc).__name__}); retry later", self._retry_after
            ) from None
        answer = Forwarded.model_validate(raw)
        if answer.status != 200 or answer.body is None:
            raise reject(answer.status, answer.detail or "refused by the cohort owner", answer.headers)
        return RewardResponse.model_validate_json(answer.body)

    async def forwarded_reward(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The cohort owner's side of :meth:`_forward_reward`: the answer as a plain dict, a refusal included."""
        stats = RequestStats("reward")
        try:
            answer = await self.reward(RewardRequest.model_validate(payload), stats)
        except HTTPException as exc:
            return Forwarded(status=exc.status_code, detail=str(exc.detail), headers=exc.headers).model_dump()
        asyncio.get_running_loop().call_soon(record, self.metrics, stats)
        return Forwarded(status=200, body=answer.model_dump_json()).model_dump()

    # ---- single calls --------------------------------------------------------------------------------------

    async def principle_score(self, body: PrincipleScoreRequest, stats: RequestStats) -> PrincipleScoreResponse:
        if self.principle is None:
            raise reject(404, "the principle judge is not configured in this deployment")
        if len(body.principles) > self.limits.max_principles:
            raise reject(422, f"{len(body.principles)} principles; at most {self.limits.max_principles} are allowed")
        self._check_texts([body.response, *body.principles, *(m.content for m in body.conversation)], "text")
        (response,), cut = await self._fit(body.conversation, [body.response], body.principles, "response")
        judge = self.principle
        async with self._admitted(stats):
            try:
                results = await self._timed(
                    stats, "principle", lambda: judge.score(body.conversation, response, body.principles)
                )
            except Exception as exc:
                raise self._refuse(stats, 503, f"the principle judge is unavailable: {exc}") from exc
        stats.status = "200"
        return PrincipleScoreResponse(
            results=results,
            mean_reward=mean_reward(results),
            truncated=bool(cut),
            overlong_policy=self.limits.overlong,
        )

    async def compare(self, body: CompareRequest, stats: RequestStats) -> CompareResponse:
        if self.pairwise is None:
            raise reject(404, "the pairwise judge is not configured in this deployment")
        self._check_texts([body.response_1, body.response_2, *(m.content for m in body.conversation)], "text")
        (first, second), cut = await self._fit(
            body.conversation, [body.response_1, body.response_2], list(filter(None, [body.principle])), "response"
        )
        judge = self.pairwise

        async def one(a: str, b: str) -> PairwiseResult:
            try:
                return await self._timed(
                    stats, "pairwise", lambda: judge.compare(body.conversation, a, b, body.principle)
                )
            except Exception as exc:
                return PairwiseResult(failure=f"judge error: {exc}")

        async with self._admitted(stats):
            forward, backward = await asyncio.gather(one(first, second), one(second, first))
        if not forward.ok and not backward.ok and "judge error" in (forward.failure or ""):
            raise self._refuse(stats, 503, f"the pairwise judge is unavailable: {forward.failure}")
        stats.status = "200"
        comparison = combine_results(0, 1, [forward], [backward], verdicts=self.limits.selection.verdicts)
        return CompareResponse(
            forward=forward,
            backward=backward,
            comparison=comparison,
            truncated=[f"response_{i + 1}" for i in cut],
            overlong_policy=self.limits.overlong,
        )
