"""Python clients of the service's own API: :class:`GenRMClient` (blocking) and :class:`AsyncGenRMClient`.

Both send the project's request models and return its response models, so a request that the service would refuse
as malformed fails here first, with pydantic's message. What they share:

- one connection pool per client (keep-alive), closed by ``close()`` or the ``with`` block;
- timeouts the caller sets: ``timeout_s`` per request (default :data:`DEFAULT_TIMEOUT_S`) and ``connect_timeout_s``;
- bounded retries: a 503 that carries Retry-After (admission full, a judge still warming up, a cohort table full)
  and a 429 (this tenant at its own limits, ``router.tenants``) are sent again after the advertised wait, at most
  ``max_retries`` times; so is a request that never reached the service (connection refused). Any other 4xx is
  never retried, nor is a 503 without Retry-After (a judge call that timed out: the work may have run);
- the bearer token from ``token`` or else the environment variable :data:`TOKEN_ENV`;
- a refusal raises :class:`ServiceRefused` with the status and the service's own reason.

The trainer-protocol routes (``/get_reward``, ``/slime/reward``, ``/compare``, ``/verify``,
``/v1/score/evaluation``) are called by those trainers' own code; ``/v1/chat/completions`` by the ``openai``
package. This client covers the project's API.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from serve_app.protocols.genrm_api import (
    BestOfNRequest,
    BestOfNResponse,
    CompareRequest,
    CompareResponse,
    Health,
    ModelsResponse,
    PrincipleScoreRequest,
    PrincipleScoreResponse,
    RankBatchRequest,
    RankBatchResponse,
    RankRequest,
    RankResponse,
    ReadinessReport,
    RewardRequest,
    RewardResponse,
)

#: Per-request timeout. A thinking GenRM (the 235B with up to 16k reasoning tokens) takes minutes per call, a
#: best-of-N makes several rounds of calls, and a /v1/reward waits for its whole cohort: 15 minutes covers them.
DEFAULT_TIMEOUT_S = 900.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_RETRIES = 8
#: refusals that waiting cures, when they carry Retry-After: the service is full (503), the tenant is (429)
RETRIED = frozenset({429, 503})
#: A Retry-After above this is waited only this long before the next try.
MAX_RETRY_WAIT_S = 60.0
TOKEN_ENV = "GENRM_API_TOKEN"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

R = TypeVar("R", bound=BaseModel)
Body = BaseModel | Mapping[str, Any] | None


class ServiceError(RuntimeError):
    """The service could not be reached, or kept answering 'busy' past the retries."""


class ServiceRefused(ServiceError):
    """The service answered a request with an error status; ``detail`` is its reason (text or validation errors)."""

    def __init__(self, method: str, path: str, status: int, detail: Any, retry_after_s: float | None = None) -> None:
        self.method, self.path, self.status, self.detail = method, path, status, detail
        self.retry_after_s = retry_after_s
        super().__init__(f"{method} {path} was refused with {status}: {describe_detail(detail)}")


def describe_detail(detail: Any) -> str:
    """One readable line from a ``{"detail": ...}`` body: FastAPI's validation list becomes ``where: what``."""
    if isinstance(detail, list):
        parts = []
        for err in detail:
            if isinstance(err, Mapping):
                where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
                parts.append(f"{where or 'body'}: {err.get('msg', err)}")
            else:
                parts.append(str(err))
        return "; ".join(parts)
    if isinstance(detail, Mapping) and "message" in detail:  # an OpenAI-shaped error
        return str(detail["message"])
    return str(detail)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: not something this service sends


def _refusal(method: str, path: str, response: httpx.Response) -> ServiceRefused:
    try:
        payload = response.json()
        detail = payload.get("detail", payload.get("error", payload)) if isinstance(payload, dict) else payload
    except ValueError:
        detail = response.text[:500]
    return ServiceRefused(method, path, response.status_code, detail, _retry_after(response))


@dataclass(frozen=True)
class _Wait:
    seconds: float
    cause: ServiceError


def _outcome(method: str, path: str, response: httpx.Response) -> Any:
    """The JSON of a success, a :class:`_Wait` for a retryable 503, else raises the refusal."""
    if response.status_code < 400:
        return response.json()
    refusal = _refusal(method, path, response)
    if response.status_code in RETRIED and refusal.retry_after_s is not None:
        return _Wait(min(refusal.retry_after_s, MAX_RETRY_WAIT_S), refusal)
    raise refusal


def _unsent(method: str, path: str, exc: httpx.TransportError) -> _Wait | None:
    # Only a request that never reached the service is safe to send again; a read timeout may have run the work.
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return _Wait(1.0, ServiceError(f"{method} {path}: could not connect ({exc})"))
    return None


def _body(model: type[BaseModel], body: Body, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a request (a model, a mapping, or keyword fields) and return its JSON, unset fields left out."""
    if body is None:
        request = model.model_validate(dict(fields))
    elif isinstance(body, BaseModel):
        if fields:
            raise TypeError("pass either a request model or keyword fields, not both")
        request = model.model_validate(body.model_dump(exclude_unset=True))
    else:
        request = model.model_validate({**body, **fields})
    return request.model_dump(mode="json", exclude_unset=True)


class _Client:
    """What both clients hold: where the service is, how to authenticate, the timeouts and the retry budget."""

    _pool: type[httpx.Client] | type[httpx.AsyncClient]

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_connections: int = 256,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        # The service's root: an OpenAI-style base URL (``.../v1``, as the OpenAI front is addressed) means the same
        # service, and would otherwise become ``/v1/v1/rank``.
        self.base_url = (
            (base_url or os.environ.get("GENRM_BASE_URL") or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1")
        )
        self.max_retries = max_retries
        self.retried = 0  # 503 + Retry-After and connection retries, over the client's life
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self._http: Any = self._pool(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {token}"} if token else {},
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )


class GenRMClient(_Client):
    """Blocking client; safe to share between threads (httpx's pool is)."""

    _pool = httpx.Client

    def _send(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        for attempt in range(self.max_retries + 1):
            try:
                outcome = _outcome(method, path, self._http.request(method, path, json=json))
            except httpx.TransportError as exc:
                outcome = _unsent(method, path, exc)
                if outcome is None:
                    raise ServiceError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            if not isinstance(outcome, _Wait):
                return outcome
            if attempt == self.max_retries:
                raise outcome.cause
            self.retried += 1
            time.sleep(outcome.seconds)
        raise AssertionError("unreachable")

    def _post(self, path: str, model: type[BaseModel], out: type[R], body: Body, fields: Mapping[str, Any]) -> R:
        return out.model_validate(self._send("POST", path, _body(model, body, fields)))

    def best_of_n(self, body: Body = None, **fields: Any) -> BestOfNResponse:
        return self._post("/v1/best_of_n", BestOfNRequest, BestOfNResponse, body, fields)

    def rank(self, body: Body = None, **fields: Any) -> RankResponse:
        return self._post("/v1/rank", RankRequest, RankResponse, body, fields)

    def rank_batch(self, body: Body = None, **fields: Any) -> RankBatchResponse:
        return self._post("/v1/rank_batch", RankBatchRequest, RankBatchResponse, body, fields)

    def reward(self, body: Body = None, **fields: Any) -> RewardResponse:
        return self._post("/v1/reward", RewardRequest, RewardResponse, body, fields)

    def principle_score(self, body: Body = None, **fields: Any) -> PrincipleScoreResponse:
        return self._post("/v1/principle_score", PrincipleScoreRequest, PrincipleScoreResponse, body, fields)

    def compare(self, body: Body = None, **fields: Any) -> CompareResponse:
        return self._post("/v1/compare", CompareRequest, CompareResponse, body, fields)

    def models(self) -> ModelsResponse:
        return ModelsResponse.model_validate(self._send("GET", "/v1/models"))

    def health(self) -> Health:
        return Health.model_validate(self._send("GET", "/healthz"))

    def readiness(self) -> ReadinessReport:
        """The /readyz report, whether ready (200) or warming up (503)."""
        response = self._http.get("/readyz")
        if response.status_code not in (200, 503):
            raise _refusal("GET", "/readyz", response)
        return ReadinessReport.model_validate(response.json())

    def wait_ready(self, timeout_s: float = 1800, poll_s: float = 2) -> ReadinessReport:
        """Block until every judge has answered its warm-up call; raises ServiceError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                report: ReadinessReport | None = self.readiness()
            except (httpx.TransportError, ServiceRefused):
                report = None  # not up yet, or a proxy in front answering for it
            if report is not None and report.status == "ready":
                return report
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.base_url} was not ready within {timeout_s:g} s (last: {report})")
            time.sleep(poll_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GenRMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGenRMClient(_Client):
    """The same API for asyncio. The connection pool belongs to the event loop that first uses it."""

    _pool = httpx.AsyncClient

    async def _send(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        for attempt in range(self.max_retries + 1):
            try:
                outcome = _outcome(method, path, await self._http.request(method, path, json=json))
            except httpx.TransportError as exc:
                outcome = _unsent(method, path, exc)
                if outcome is None:
                    raise ServiceError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            if not isinstance(outcome, _Wait):
                return outcome
            if attempt == self.max_retries:
                raise outcome.cause
            self.retried += 1
            await asyncio.sleep(outcome.seconds)
        raise AssertionError("unreachable")

    async def _post(self, path: str, model: type[BaseModel], out: type[R], body: Body, fields: Mapping[str, Any]) -> R:
        return out.model_validate(await self._send("POST", path, _body(model, body, fields)))

    async def best_of_n(self, body: Body = None, **fields: Any) -> BestOfNResponse:
        return await self._post("/v1/best_of_n", BestOfNRequest, BestOfNResponse, body, fields)

    async def rank(self, body: Body = None, **fields: Any) -> RankResponse:
        return await self._post("/v1/rank", RankRequest, RankResponse, body, fields)

    async def rank_batch(self, body: Body = None, **fields: Any) -> RankBatchResponse:
        return await self._post("/v1/rank_batch", RankBatchRequest, RankBatchResponse, body, fields)

    async def reward(self, body: Body = None, **fields: Any) -> RewardResponse:
        return await self._post("/v1/reward", RewardRequest, RewardResponse, body, fields)

    async def principle_score(self, body: Body = None, **fields: Any) -> PrincipleScoreResponse:
        return await self._post("/v1/principle_score", PrincipleScoreRequest, PrincipleScoreResponse, body, fields)

    async def compare(self, body: Body = None, **fields: Any) -> CompareResponse:
        return await self._post("/v1/compare", CompareRequest, CompareResponse, body, fields)

    async def models(self) -> ModelsResponse:
        return ModelsResponse.model_validate(await self._send("GET", "/v1/models"))

    async def health(self) -> Health:
        return Health.model_validate(await self._send("GET", "/healthz"))

    async def readiness(self) -> ReadinessReport:
        response = await self._http.get("/readyz")
        if response.status_code not in (200, 503):
            raise _refusal("GET", "/readyz", response)
        return ReadinessReport.model_validate(response.json())

    async def wait_ready(self, timeout_s: float = 1800, poll_s: float = 2) -> ReadinessReport:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                report: ReadinessReport | None = await self.readiness()
            except (httpx.TransportError, ServiceRefused):
                report = None
            if report is not None and report.status == "ready":
                return report
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.base_url} was not ready within {timeout_s:g} s (last: {report})")
            await asyncio.sleep(poll_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncGenRMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
