"""The router: a FastAPI ingress that fans each request out to both judges and applies the selection policies.

Every call of a round goes out at once (``policies.selection`` gathers them); each judge call has its own timeout
and failed pairwise calls are retried within the budget. A judge that is down costs failed calls, not the answer:
the other judge decides and the response lists what was degraded. Admission is bounded: beyond
``max_concurrent_requests`` running and ``max_queued_requests`` waiting, requests get 503 with Retry-After.

Serve pickles the deployment class by value when it is decorated, so everything it uses is defined above it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from ray import serve
from starlette.background import BackgroundTask

from deployments.chat import ChatMessage
from deployments.context import ContextBudget
from deployments.engine_client import ChatClient, GarblingClient, OpenAIHttpClient, ServeHandleClient
from deployments.judge import Judge
from deployments.pairwise.judge import PairwiseJudge
from deployments.principle.judge import PrincipleJudge
from deployments.principle.parse import VerdictTokens
from deployments.template_markers import native_template_markers
from policies.debias import combine_results
from policies.duplicates import expand_result, group_duplicates
from policies.selection import SelectionConfig, SelectionResult, select_best
from policies.verdicts import PairwiseResult, PrincipleResult
from serve_app.app import judge_context_tokens
from serve_app.config import AppConfig, RouterConfig, _JudgeConfig
from serve_app.judge_calls import CallTiming, JudgeLane, JudgeSilent
from serve_app.metrics import RequestStats, RouterMetrics, record
from serve_app.readiness import Readiness
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
    ReadinessReport,
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


def _control_tokens(tokenizer: Any) -> list[str]:
    """Every string the tokenizer turns into a token of its own: the special tokens and the rest of the added
    vocabulary (SmolLM2's <file_sep> or <jupyter_code> are not "special" but still become single control ids)."""
    added = tokenizer.get_added_vocab() if hasattr(tokenizer, "get_added_vocab") else {}
    return sorted({*tokenizer.all_special_tokens, *added})


def _client(judge: _JudgeConfig, handle: Any) -> ChatClient:
    client: ChatClient
    if judge.endpoint is not None:
        e = judge.endpoint
        client = OpenAIHttpClient(e.base_url, e.model, api_key_env=e.api_key_env, timeout_s=judge.call_timeout_s)
    else:
        client = ServeHandleClient(handle, judge.served_model)
    if judge.fault_injection is not None:
        client = GarblingClient(client, judge.fault_injection.garble_fraction, judge.fault_injection.seed)
    return client


#: the least room a response may have before a request is refused as leaving no space for candidates
MIN_RESPONSE_TOKENS = 16


def _fit_texts(
    budgets: dict[str, ContextBudget],
    conversation: Sequence[ChatMessage],
    texts: Sequence[str],
    principles: Sequence[str],
    policy: str,
    what: str,
) -> tuple[list[str], list[int]]:
    """``texts`` made to fit every judge's context (the overlong policy: reject or truncate), and the indices that
    were cut. Raises a 422 when a text is too long under 'reject', or when nothing would fit."""
    rooms = []
    for role, budget in budgets.items():
        conversation_tokens = budget.conversation_tokens(conversation)
        principle_tokens = max((budget.count(p) for p in principles), default=0)
        room = budget.room(conversation_tokens, principle_tokens)
        if room < MIN_RESPONSE_TOKENS:
            raise _reject(
                422,
                f"the conversation ({conversation_tokens} tokens) and principles ({principle_tokens} tokens) leave no "
                f"room for a {what} in the {role} judge's context of {budget.context_tokens} tokens, of which "
                f"{budget.answer_tokens} are kept for its answer; shorten the conversation",
            )
        rooms.append((room, role, budget))
    out = list(texts)
    cut: set[int] = set()
    for room, role, budget in sorted(rooms, key=lambda r: r[0]):  # tightest judge first: its limit is the one to name
        for i, text in enumerate(out):
            tokens = budget.count(text)
            if tokens <= room:
                continue
            if policy == "reject":
                raise _reject(
                    422,
                    f"{what} {i} is {tokens} tokens; the {role} judge's context leaves room for {room} per {what} "
                    f"with this conversation (overlong policy 'reject'; a deployment can choose 'truncate')",
                )
            out[i] = budget.truncate(text, room)
            cut.add(i)
    return out, sorted(cut)


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


@dataclasses.dataclass
class _Selected:
    """What one best-of-N/rank selection produced, in the request's own candidate indices."""

    result: SelectionResult
    config: SelectionConfig
    principles: list[str]
    timings: Timings
    duplicates: list[list[int]]
    truncated: list[int]


class _Gate:
    """Checks done before FastAPI parses anything, as plain ASGI: the bearer token (every route but /healthz) and
    the body size, counted as it arrives so a body without Content-Length cannot exceed it either. The replica
    sets ``limit`` and ``token`` from its configuration (module state: middleware has no access to the replica)."""

    limit = RouterConfig().max_request_bytes
    token: bytes | None = None
    OPEN_PATHS = ("/healthz",)

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Serve mounts the app under its route prefix (root_path); the open paths are relative to it.
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if _Gate.token is not None and path not in self.OPEN_PATHS and not self._authorised(scope):
            response = JSONResponse(
                status_code=401,
                content={"detail": "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'"},
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await JSONResponse(status_code=400, content={"detail": "invalid Content-Length"})(scope, receive, send)
                return
            if int(length) > _Gate.limit:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read the body here, at most the limit, then hand it on.
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > _Gate.limit:
                await self._too_large(scope, receive, send)
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _authorised(scope: dict[str, Any]) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, value = header.partition(b" ")
        assert _Gate.token is not None
        return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), _Gate.token)

    @staticmethod
    async def _too_large(scope: dict[str, Any], receive: Any, send: Any) -> None:
        detail = f"request body over {_Gate.limit} bytes (router.max_request_bytes)"
        await JSONResponse(status_code=413, content={"detail": detail})(scope, receive, send)


api.add_middleware(_Gate)


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """422 with where and what, never the offending input: it may be huge, hostile, or not encodable at all (a
    lone surrogate in the default handler's echo of the input turned a 422 into a 500)."""
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return Response(
        content=json.dumps({"detail": errors}, ensure_ascii=True), status_code=422, media_type="application/json"
    )


def _auth_token(limits: RouterConfig) -> bytes | None:
    if limits.auth_token is not None:
        return limits.auth_token.get_secret_value().encode()
    value = os.environ.get(limits.auth_token_env) if limits.auth_token_env else None
    return value.encode() if value else None


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
        _Gate.limit = self.limits.max_request_bytes
        _Gate.token = _auth_token(self.limits)
        self.principle: PrincipleJudge | None = None
        self.pairwise: PairwiseJudge | None = None
        loaded: dict[str, Any] = {}  # one tokenizer object per source: both judges often share one
        judges: dict[str, tuple[Judge, Any]] = {}
        # Native format: the checkpoint's template writes its own headers and role prefixes around untrusted text,
        # so they are read off that template here and neutralised like the special tokens.
        if (p := self.config.principle) is not None:
            tok = loaded.setdefault(tokenizers["principle"], _load_tokenizer(tokenizers["principle"]))
            self.principle = PrincipleJudge(
                _client(p, principle_server),
                p.settings,
                VerdictTokens.from_tokenizer(tok, family=p.verdict_family),
                special_tokens=_control_tokens(tok),
                template_markers=native_template_markers(tok, p.settings),
            )
            judges["principle"] = (self.principle, tok)
        if (q := self.config.pairwise) is not None:
            source = tokenizers["pairwise"]
            tok = loaded[source] if source in loaded else _load_tokenizer(source)
            self.pairwise = PairwiseJudge(
                _client(q, pairwise_server),
                q.settings,
                special_tokens=_control_tokens(tok),
                template_markers=native_template_markers(tok, q.settings),
            )
            judges["pairwise"] = (self.pairwise, tok)
        self.budgets: dict[str, ContextBudget] = {}
        for role, (judge, tok) in judges.items():
            context = judge_context_tokens(role, getattr(self.config, role))
            if context is not None:
                self.budgets[role] = ContextBudget(judge, tok, context)
        # Token counting is CPU work: one thread keeps it off the event loop and never shares a tokenizer.
        self._tokenizing = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")
        self.lanes = {
            role: JudgeLane(role, cfg.call_timeout_s, cfg.max_inflight_calls, cfg.max_call_s)
            for role in ("principle", "pairwise")
            if (cfg := getattr(self.config, role)) is not None
        }
        self.readiness = Readiness({role: judge for role, (judge, _) in judges.items()}, self.lanes)
        with contextlib.suppress(RuntimeError):  # no running loop: constructed outside Serve (unit tests)
            self.readiness.start()

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
        return _reject(status, message, headers)

    @contextlib.asynccontextmanager
    async def _admitted(self, stats: RequestStats) -> AsyncIterator[float]:
        """One admission slot for the block (yields the seconds waited for it); 503 with Retry-After when the
        router already holds as many requests as it may."""
        try:
            async with self.admission.slot() as queued_s:
                yield queued_s
        except Overloaded:
            raise self._refuse(
                stats,
                503,
                f"too many requests in flight (limit {self.limits.max_concurrent_requests} running + "
                f"{self.limits.max_queued_requests} queued); retry later",
                headers={"Retry-After": str(self.limits.retry_after_s)},
            ) from None

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
            raise _reject(422, f"invalid selection options: {exc}") from exc

    async def _fit(
        self, conversation: Sequence[ChatMessage], texts: Sequence[str], principles: Sequence[str], what: str
    ) -> tuple[list[str], list[int]]:
        if not self.budgets:
            return list(texts), []
        return await asyncio.get_running_loop().run_in_executor(
            self._tokenizing,
            _fit_texts,
            self.budgets,
            conversation,
            texts,
            principles,
            self.limits.overlong,
            what,
        )

    async def _select(self, body: BestOfNRequest, stats: RequestStats) -> _Selected:
        started = time.perf_counter()
        principles = self._check_request(body)
        config = self._selection(body)
        conversation = body.conversation
        if config.strategy != "principle" and self.pairwise is None and not (config.use_principle and self.principle):
            raise _reject(422, f"strategy {config.strategy!r} needs the pairwise judge, which is not configured")
        if config.strategy == "principle" and self.principle is None:
            raise _reject(422, "strategy 'principle' needs the principle judge, which is not configured")
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
            async with self._admitted(stats) as queued_s:
                prompt_principles = [*principles, *filter(None, [body.principle_for_pairwise])]
                candidates, cut = await self._fit(conversation, distinct, prompt_principles, "candidate")
                result = await asyncio.wait_for(
                    select_best(len(candidates), pairwise_judge, principle_judge, config), self.limits.max_request_s
                )
        except TimeoutError:
            raise self._refuse(
                stats,
                503,
                f"the judges did not finish within {self.limits.max_request_s:g} s (router.max_request_s); retry "
                f"later or with fewer candidates or a smaller budget",
                headers={"Retry-After": str(self.limits.retry_after_s)},
            ) from None
        result = expand_result(result, groups)
        total = time.perf_counter() - started
        stats.status, stats.latency_s, stats.strategy = "200", total, config.strategy
        stats.swap_inconsistency = result.swap_inconsistency
        stats.degraded = bool(result.degraded)
        if result.degraded:
            logger.warning("degraded answer on %s: %s", stats.route, "; ".join(result.degraded))
        return _Selected(
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

    # ---- routes --------------------------------------------------------------------------------------------

    @api.post("/v1/best_of_n", response_model=BestOfNResponse, summary="Choose the best of N candidates")
    async def best_of_n(self, body: BestOfNRequest) -> Response:
        stats = RequestStats("best_of_n")
        selected = await self._select(body, stats)
        result = selected.result
        answer = BestOfNResponse(
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
            degraded=result.degraded,
            duplicates=selected.duplicates,
            truncated=selected.truncated,
            overlong_policy=self.limits.overlong,
            timings=selected.timings,
        )
        return _json(answer, BackgroundTask(record, self.metrics, stats))

    @api.post("/v1/rank", response_model=RankResponse, summary="Scores for all N candidates (e.g. RLHF rollouts)")
    async def rank(self, body: RankRequest) -> Response:
        stats = RequestStats("rank")
        selected = await self._select(body, stats)
        result = selected.result
        by_index = sorted(result.candidates, key=lambda c: c.index)
        answer = RankResponse(
            scores=[c.score for c in by_index],
            ranks=[c.rank for c in by_index],
            candidates=by_index,
            pairwise_calls=result.pairwise_calls,
            principle_calls=result.principle_calls,
            failed_calls=result.failed_calls,
            degraded=result.degraded,
            duplicates=selected.duplicates,
            truncated=selected.truncated,
            overlong_policy=self.limits.overlong,
            timings=selected.timings,
        )
        return _json(answer, BackgroundTask(record, self.metrics, stats))

    @api.post("/v1/principle_score", response_model=PrincipleScoreResponse, summary="Score one response per principle")
    async def principle_score(self, body: PrincipleScoreRequest) -> Response:
        if self.principle is None:
            raise _reject(404, "the principle judge is not configured in this deployment")
        if len(body.principles) > self.limits.max_principles:
            raise _reject(422, f"{len(body.principles)} principles; at most {self.limits.max_principles} are allowed")
        self._check_texts([body.response, *body.principles, *(m.content for m in body.conversation)], "text")
        (response,), cut = await self._fit(body.conversation, [body.response], body.principles, "response")
        judge = self.principle
        stats = RequestStats("principle_score")
        async with self._admitted(stats):
            try:
                results = await self._timed(
                    stats, "principle", lambda: judge.score(body.conversation, response, body.principles)
                )
            except Exception as exc:
                raise self._refuse(stats, 503, f"the principle judge is unavailable: {exc}") from exc
        stats.status = "200"
        rewards = [r.reward for r in results if r.reward is not None]
        answer = PrincipleScoreResponse(
            results=results,
            mean_reward=sum(rewards) / len(rewards) if rewards else None,
            truncated=bool(cut),
            overlong_policy=self.limits.overlong,
        )
        return _json(answer, BackgroundTask(record, self.metrics, stats))

    @api.post("/v1/compare", response_model=CompareResponse, summary="Compare two responses in both orders")
    async def compare(self, body: CompareRequest) -> Response:
        if self.pairwise is None:
            raise _reject(404, "the pairwise judge is not configured in this deployment")
        self._check_texts([body.response_1, body.response_2, *(m.content for m in body.conversation)], "text")
        (first, second), cut = await self._fit(
            body.conversation, [body.response_1, body.response_2], list(filter(None, [body.principle])), "response"
        )
        judge = self.pairwise
        stats = RequestStats("compare")

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
        comparison = combine_results(0, 1, [forward], [backward])
        answer = CompareResponse(
            forward=forward,
            backward=backward,
            comparison=comparison,
            truncated=[f"response_{i + 1}" for i in cut],
            overlong_policy=self.limits.overlong,
        )
        return _json(answer, BackgroundTask(record, self.metrics, stats))

    @api.get("/healthz", response_model=Health, summary="Liveness of the router")
    async def healthz(self) -> Health:
        judges = [name for name in ("principle", "pairwise") if getattr(self, name)]
        return Health(status="ok", judges=judges, ready=self.readiness.ready)

    @api.get(
        "/readyz",
        response_model=ReadinessReport,
        summary="200 once every judge has answered its warm-up call; 503 while they warm up",
        responses={503: {"model": ReadinessReport, "description": "a judge has not answered yet"}},
    )
    async def readyz(self) -> Response:
        ready = self.readiness.ready
        body = ReadinessReport(
            status="ready" if ready else "warming_up",
            judges=self.readiness.state,
            capacity=self.limits.max_concurrent_requests,
        )
        headers = None if ready else {"Retry-After": str(self.limits.retry_after_s)}
        return Response(
            content=body.model_dump_json(),
            media_type="application/json",
            status_code=200 if ready else 503,
            headers=headers,
        )

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
