"""What every request passes before FastAPI parses it.

:class:`Gate` is plain ASGI middleware: the bearer token (every route but the probes /healthz and /readyz) and the
body size, counted as it arrives so a body without Content-Length cannot exceed it either. Its refusals are shaped
by ``serve_app.ingress.error_shapes``.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from serve_app.config import DEFAULT_TENANT, RouterConfig
from serve_app.ingress.error_shapes import detail_response, unauthorised

_FROM_CLASS: Any = object()  # "not given": the class attribute applies


class Gate:
    """Bearer token and body limit, before anything else runs.

    ``limit`` and ``token`` are given when the replica builds its app (``serve_app.ingress.asgi.build_api``); a Gate
    built without them uses the class attributes (the configuration's defaults, or what a test sets).
    """

    limit = RouterConfig().max_request_bytes
    token: bytes | None = None
    #: bearer token -> tenant name, when the deployment has ``router.tenants`` (then ``token`` is unused)
    tenants: dict[bytes, str] | None = None
    OPEN_PATHS = ("/healthz", "/readyz")  # probes carry no token

    def __init__(
        self,
        app: Any,
        limit: int | None = None,
        token: bytes | None = _FROM_CLASS,
        tenants: dict[bytes, str] | None = _FROM_CLASS,
    ) -> None:
        self.app = app
        if limit is not None:
            self.limit = limit
        if token is not _FROM_CLASS:
            self.token = token
        if tenants is not _FROM_CLASS:
            self.tenants = tenants

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Serve mounts the app under its route prefix (root_path); the open paths are relative to it.
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        tenant = self._tenant(scope)
        if tenant is None and path not in self.OPEN_PATHS:
            await unauthorised()(scope, receive, send)
            return
        # Starlette's request.state reads scope["state"]: the routes take the tenant from there.
        scope.setdefault("state", {})["tenant"] = tenant or DEFAULT_TENANT
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await detail_response(400, "invalid Content-Length")(scope, receive, send)
                return
            if int(length) > self.limit:
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
            if len(body) > self.limit:
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

    def _tenant(self, scope: dict[str, Any]) -> str | None:
        """The tenant the request's bearer token names (the default tenant when no token is asked for); None when
        the token is missing or wrong. Every known token is compared, in constant time each."""
        if self.tenants is None and self.token is None:
            return DEFAULT_TENANT
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        value = value.strip()
        table = self.tenants if self.tenants is not None else {self.token: DEFAULT_TENANT}
        found = None
        for token, tenant in table.items():
            if hmac.compare_digest(value, token):
                found = tenant
        return found

    async def _too_large(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        detail = f"request body over {self.limit} bytes (router.max_request_bytes)"
        await detail_response(413, detail)(scope, receive, send)


def tenant_tokens(limits: RouterConfig) -> dict[bytes, str] | None:
    """Each tenant's bearer token (``router.tenants``), read from the variable it names; None without tenants.
    Raises ValueError, naming the variable, when one is unset or empty: a tenant without a token could not call."""
    if not limits.tenants:
        return None
    table: dict[bytes, str] = {}
    for tenant in limits.tenants:
        value = os.environ.get(tenant.token_env)
        if not value:
            raise ValueError(f"router.tenants[{tenant.name!r}]: the variable {tenant.token_env} holds no token")
        if value.encode() in table:
            raise ValueError(f"router.tenants: {tenant.name!r} and {table[value.encode()]!r} have the same token")
        table[value.encode()] = tenant.name
    return table


def auth_token(limits: RouterConfig) -> bytes | None:
    """The bearer token the configuration asks for: ``router.auth_token``, else the variable it names."""
    if limits.auth_token is not None:
        return limits.auth_token.get_secret_value().encode()
    value = os.environ.get(limits.auth_token_env) if limits.auth_token_env else None
    return value.encode() if value else None
