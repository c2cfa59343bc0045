"""What every request passes before FastAPI parses it.

:class:`Gate` is plain ASGI middleware: the bearer token (every route but the probes /healthz and /readyz) and the
body size, counted as it arrives so a body without Content-Length cannot exceed it either. Its refusals are shaped
by ``serve_app.ingress.error_shapes``.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from serve_app.config import RouterConfig
from serve_app.ingress.error_shapes import detail_response, unauthorised

_FROM_CLASS: Any = object()  # "not given": the class attribute applies


class Gate:
    """Bearer token and body limit, before anything else runs.

    ``limit`` and ``token`` are given when the replica builds its app (``serve_app.ingress.asgi.build_api``); a Gate
    built without them uses the class attributes (the configuration's defaults, or what a test sets).
    """

    limit = RouterConfig().max_request_bytes
    token: bytes | None = None
    OPEN_PATHS = ("/healthz", "/readyz")  # probes carry no token

    def __init__(self, app: Any, limit: int | None = None, token: bytes | None = _FROM_CLASS) -> None:
        self.app = app
        if limit is not None:
            self.limit = limit
        if token is not _FROM_CLASS:
            self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Serve mounts the app under its route prefix (root_path); the open paths are relative to it.
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if self.token is not None and path not in self.OPEN_PATHS and not self._authorised(scope):
            await unauthorised()(scope, receive, send)
            return
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

    def _authorised(self, scope: dict[str, Any]) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, value = header.partition(b" ")
        assert self.token is not None
        return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self.token)

    async def _too_large(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        detail = f"request body over {self.limit} bytes (router.max_request_bytes)"
        await detail_response(413, detail)(scope, receive, send)


def auth_token(limits: RouterConfig) -> bytes | None:
    """The bearer token the configuration asks for: ``router.auth_token``, else the variable it names."""
    if limits.auth_token is not None:
        return limits.auth_token.get_secret_value().encode()
    value = os.environ.get(limits.auth_token_env) if limits.auth_token_env else None
    return value.encode() if value else None
