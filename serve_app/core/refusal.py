"""How the core declines a request: :class:`Refusal`, the project's own error type.

A refusal carries a status in HTTP's vocabulary (404 not served here, 409 conflicts with what arrived before, 422
bad input, 503 come back later), a message that says what was wrong and what is allowed, and — for 503 — how long
to wait. The core raises it and never shapes it: ``serve_app.ingress.error_shapes`` answers it in the shape the
route's clients read (``{"detail": ...}``, or OpenAI's error object on the OpenAI front). ``param`` and ``code``
name the offending field and a machine-readable reason where one exists (OpenAI's error object carries both).
"""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """The service declines the request; see the module docstring."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retry_after_s: int | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s
        self.param = param
        self.code = code

    def with_message(self, message: str) -> Refusal:
        """The same refusal saying more (a protocol adds how its own settings relate to the reason)."""
        return Refusal(self.status, message, retry_after_s=self.retry_after_s, param=self.param, code=self.code)


def reject(status: int, message: str, retry_after_s: int | None = None) -> Refusal:
    """A :class:`Refusal` to raise: ``raise reject(422, "...; at most 16 are allowed")``."""
    return Refusal(status, message, retry_after_s=retry_after_s)


def validation_errors(exc: Any) -> list[dict[str, Any]]:
    """Where and what of each error of a pydantic ``ValidationError`` (or FastAPI's ``RequestValidationError``,
    which has the same ``errors()``), without the input: it may be huge, hostile or not encodable."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
