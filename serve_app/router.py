"""The router: a FastAPI ingress that fans each request out to both judges and applies the selection policies.

Every call of a round goes out at once (``policies.selection`` gathers them); each judge call has its own timeout
and failed pairwise calls are retried within the budget. A judge that is down costs failed calls, not the answer:
the other judge decides and the response lists what was degraded. Admission is bounded: beyond
``max_concurrent_requests`` running and ``max_queued_requests`` waiting, requests get 503 with Retry-After.

Serve pickles the deployment class by value when it is decorated, so everything it uses is defined above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel
from ray import serve
from starlette.background import BackgroundTask

from deployments.engine_client import ChatClient, OpenAIHttpClient, ServeHandleClient
from deployments.pairwise.judge import PairwiseJudge
from deployments.principle.judge import PrincipleJudge
from deployments.principle.parse import VerdictTokens
from policies.debias import combine_results
from policies.selection import SelectionConfig, SelectionResult, select_best
from policies.verdicts import PairwiseResult, PrincipleResult
from serve_app.config import AppConfig, RouterConfig, _JudgeConfig
from serve_app.metrics import RequestStats, RouterMetrics, record
from serve_app.schemas import (
    BestOfNRequest,
    BestOfNResponse,
    CompareRequest,
    CompareResponse,
    Health,
    JudgeInfo,
    ModelsResponse,
    PrincipleScoreRequest,
    PrincipleScoreResponse,
    RankRequest,
    RankResponse,
    SelectionOptions,
    Timings,
)

logger = logging.getLogger("genrm_ensemble.router")

T = TypeVar("T")

api = FastAPI(
    title="GenRM ensemble",
    version="0.1.0",
    description="Best-of-N selection and reward scores from an ensemble of generative reward models.",
)


class Overloaded(Exception):
    pass


class Admission:
    """At most ``running`` requests at once and ``queued`` waiting; one more is refused at once."""

    def __init__(self, running: int, queued: int) -> None:
        self._slots = asyncio.Semaphore(running)
        self._limit = running + queued
        self.inside = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        if self.inside >= self._limit:
            raise Overloaded
        self.inside += 1
        try:
            waited = time.perf_counter()
            async with self._slots:
                yield time.perf_counter() - waited
        finally:
            self.inside -= 1


def _load_tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


def _client(judge: _JudgeConfig, handle: Any) -> ChatClient:
    if judge.endpoint is not None:
        e = judge.endpoint
        return OpenAIHttpClient(e.base_url, e.model, api_key_env=e.api_key_env, timeout_s=judge.call_timeout_s)
    return ServeHandleClient(handle, judge.served_model)


def _json(model: BaseModel, background: BackgroundTask | None = None) -> Response:
    """The body serialised once: FastAPI would dump, re-validate and dump again a returned model (the route's
    response_model still documents it). ``background`` runs after the response is sent."""
    return Response(content=model.model_dump_json(), media_type="application/json", background=background)


def _reject(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=message, headers=headers)


def _failures(result: Any) -> int:
    if isinstance(result, PairwiseResult):
        return int(not result.ok)
    if isinstance(result, list):
        return sum(not r.ok for r in result if isinstance(r, PrincipleResult))
    return 0


#: Set by the replica from its configuration (module state: the middleware has no access to the replica).
_BODY_LIMIT = [RouterConfig().max_request_bytes]


@api.middleware("http")
async def _limit_body(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
    from fastapi.responses import JSONResponse

    limit = _BODY_LIMIT[0]
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return JSONResponse(status_code=413, content={"detail": f"request body over {limit} bytes"})
    return await call_next(request)


@serve.deployment
@serve.ingress(api)
class Router:
    def __init__(
        self,
        config: dict[str, Any],
        tokenizers: dict[str, str],
        principle_server: Any = None,
        pairwise_server: Any = None,
    ) -> None:
        self.config = AppConfig.model_validate(config)
        self.limits: RouterConfig = self.config.router
        self.metrics = RouterMetrics()
        self.admission = Admission(self.limits.max_concurrent_requests, self.limits.max_queued_requests)
        _BODY_LIMIT[0] = self.limits.max_request_bytes
        self.principle: PrincipleJudge | None = None
        self.pairwise: PairwiseJudge | None = None
        if (p := self.config.principle) is not None:
            tok = _load_tokenizer(tokenizers["principle"])
            self.principle = PrincipleJudge(
                _client(p, principle_server),
                p.settings,
                VerdictTokens.from_tokenizer(tok, family=p.verdict_family),
                special_tokens=tok.all_special_tokens,
            )
        if (q := self.config.pairwise) is not None:
            tok = _load_tokenizer(tokenizers["pairwise"])
            self.pairwise = PairwiseJudge(
                _client(q, pairwise_server), q.settings, special_tokens=tok.all_special_tokens
            )

    # ---- helpers -------------------------------------------------------------------------------------------

    async def _timed(self, stats: RequestStats, judge: str, call: Callable[[], Awaitable[T]]) -> T:
        timeout_s = getattr(self.config, judge).call_timeout_s
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(call(), timeout_s)
        except TimeoutError:
            stats.calls[(judge, "timeout")] += 1
            raise TimeoutError(f"{judge} judge call timed out after {timeout_s} s") from None
        except Exception:
            stats.calls[(judge, "error")] += 1
            raise
        finally:
            stats.latencies.append((judge, time.perf_counter() - started))
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
        return _reject(status, message, headers)

    def _check_texts(self, texts: Sequence[str], what: str) -> None:
        limit = self.limits.max_text_chars
        for i, text in enumerate(texts):
            if len(text) > limit:
                raise _reject(422, f"{what} {i} has {len(text)} characters; at most {limit} are allowed")

    def _check_request(self, body: BestOfNRequest) -> list[str]:
        n, cap = len(body.candidates), self.limits.max_candidates
        if n > cap:
            raise _reject(422, f"{n} candidates; this service takes 1 to {cap}")
        principles = body.principles if body.principles is not None else self.limits.default_principles
        if len(principles) > self.limits.max_principles:
            raise _reject(
                422, f"{len(principles)} principles; at most {self.limits.max_principles} are allowed per request"
            )
        self._check_texts(body.candidates, "candidate")
        self._check_texts([m.content for m in body.conversation], "conversation turn")
        self._check_texts(principles, "principle")
        return principles

    def _selection(self, options: SelectionOptions) -> SelectionConfig:
        base = self.limits.selection
        overrides = {
            k: v for k, v in options.model_dump(include=set(SelectionOptions.model_fields)).items() if v is not None
        }
        try:
            return SelectionConfig.model_validate({**base.model_dump(), **overrides})
        except ValueError as exc:
            raise _reject(422, f"invalid selection options: {exc}") from exc

    async def _select(
        self, body: BestOfNRequest, stats: RequestStats
    ) -> tuple[SelectionResult, SelectionConfig, list[str], Timings]:
        started = time.perf_counter()
        principles = self._check_request(body)
        config = self._selection(body)
        conversation = body.conversation
        candidates = body.candidates
        if config.strategy != "principle" and self.pairwise is None and not (config.use_principle and self.principle):
            raise _reject(422, f"strategy {config.strategy!r} needs the pairwise judge, which is not configured")
        if config.strategy == "principle" and self.principle is None:
            raise _reject(422, "strategy 'principle' needs the principle judge, which is not configured")
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
            async with self.admission.slot() as queued_s:
                result = await select_best(len(candidates), pairwise_judge, principle_judge, config)
        except Overloaded:
            raise self._refuse(
                stats,
                503,
                f"too many requests in flight (limit {self.limits.max_concurrent_requests} running + "
                f"{self.limits.max_queued_requests} queued); retry later",
                headers={"Retry-After": str(self.limits.retry_after_s)},
            ) from None
        total = time.perf_counter() - started
        stats.status, stats.latency_s, stats.strategy = "200", total, config.strategy
        stats.swap_inconsistency = result.swap_inconsistency
        stats.degraded = bool(result.degraded)
        if result.degraded:
            logger.warning("degraded answer on %s: %s", stats.route, "; ".join(result.degraded))
        return result, config, principles, Timings(total_s=total, selection_s=result.elapsed_s, queued_s=queued_s)

    # ---- routes --------------------------------------------------------------------------------------------

    @api.post("/v1/best_of_n", response_model=BestOfNResponse, summary="Choose the best of N candidates")
    async def best_of_n(self, body: BestOfNRequest) -> Response:
        stats = RequestStats("best_of_n")
        result, config, principles, timings = await self._select(body, stats)
        answer = BestOfNResponse(
            index=result.best,
            text=body.candidates[result.best],
            strategy=config.strategy,
            ranking=result.ranking,
            candidates=result.candidates,
            comparisons=result.comparisons,
            principles=principles if result.principle_calls else [],
            pairwise_calls=result.pairwise_calls,
            principle_calls=result.principle_calls,
            failed_calls=result.failed_calls,
            rounds=result.rounds,
            swap_inconsistency=result.swap_inconsistency,
            degraded=result.degraded,
            timings=timings,
        )
        return _json(answer, BackgroundTask(record, self.metrics, stats))

    @api.post("/v1/rank", response_model=RankResponse, summary="Scores for all N candidates (e.g. RLHF rollouts)")
    async def rank(self, body: RankRequest) -> Response:
        stats = RequestStats("rank")
        result, _, _, timings = await self._select(body, stats)
        by_index = sorted(result.candidates, key=lambda c: c.index)
        answer = RankResponse(
            scores=[c.score for c in by_index],
            ranks=[c.rank for c in by_index],
            candidates=by_index,
            pairwise_calls=result.pairwise_calls,
            principle_calls=result.principle_calls,
            failed_calls=result.failed_calls,
            degraded=result.degraded,
            timings=timings,
        )
        return _json(answer, BackgroundTask(record, self.metrics, stats))

    @api.post("/v1/principle_score", response_model=PrincipleScoreResponse, summary="Score one response per principle")
    async def principle_score(self, body: PrincipleScoreRequest) -> Response:
        if self.principle is None:
            raise _reject(404, "the principle judge is not configured in this deployment")
        if len(body.principles) > self.limits.max_principles:
            raise _reject(422, f"{len(body.principles)} principles; at most {self.limits.max_principles} are allowed")
        self._check_texts([body.response, *body.principles, *(m.content for m in body.conversation)], "text")
        judge = self.principle
        stats = RequestStats("principle_score")
        try:
            results = await self._timed(
                stats, "principle", lambda: judge.score(body.conversation, body.response, body.principles)
            )
        except Exception as exc:
            raise self._refuse(stats, 503, f"the principle judge is unavailable: {exc}") from exc
        stats.status = "200"
        rewards = [r.reward for r in results if r.reward is not None]
        answer = PrincipleScoreResponse(results=results, mean_reward=sum(rewards) / len(rewards) if rewards else None)
        return _json(answer, BackgroundTask(record, self.metrics, stats))

    @api.post("/v1/compare", response_model=CompareResponse, summary="Compare two responses in both orders")
    async def compare(self, body: CompareRequest) -> Response:
        if self.pairwise is None:
            raise _reject(404, "the pairwise judge is not configured in this deployment")
        self._check_texts([body.response_1, body.response_2, *(m.content for m in body.conversation)], "text")
        judge = self.pairwise
        stats = RequestStats("compare")

        async def one(a: str, b: str) -> PairwiseResult:
            try:
                return await self._timed(
                    stats, "pairwise", lambda: judge.compare(body.conversation, a, b, body.principle)
                )
            except Exception as exc:
                return PairwiseResult(failure=f"judge error: {exc}")

        forward, backward = await asyncio.gather(
            one(body.response_1, body.response_2), one(body.response_2, body.response_1)
        )
        if not forward.ok and not backward.ok and "judge error" in (forward.failure or ""):
            raise self._refuse(stats, 503, f"the pairwise judge is unavailable: {forward.failure}")
        stats.status = "200"
        comparison = combine_results(0, 1, [forward], [backward])
        answer = CompareResponse(forward=forward, backward=backward, comparison=comparison)
        return _json(answer, BackgroundTask(record, self.metrics, stats))

    @api.get("/healthz", response_model=Health, summary="Liveness of the router")
    async def healthz(self) -> Health:
        return Health(status="ok", judges=[name for name in ("principle", "pairwise") if getattr(self, name)])

    @api.get("/v1/models", response_model=ModelsResponse, summary="The judge models behind this service")
    async def models(self) -> ModelsResponse:
        judges = []
        for role in ("principle", "pairwise"):
            cfg: _JudgeConfig | None = getattr(self.config, role)
            if cfg is not None:
                judges.append(
                    JudgeInfo(
                        role=role,  # type: ignore[arg-type]
                        model=cfg.served_model,
                        hosted=cfg.hosted is not None,
                        prompt_format=cfg.settings.prompt_format,
                    )
                )
        return ModelsResponse(judges=judges)
