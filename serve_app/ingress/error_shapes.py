"""Every HTTP error the service answers is shaped here, once.

Two shapes, chosen per route:

* ours, for the project's API and every trainer protocol (their clients read FastAPI's shape or only the status):
  ``{"detail": message}`` with the refusal's status, a 422 validation error as ``{"detail": [{loc, msg, type}]}``;
* OpenAI's error object, for the OpenAI-compatible front (routes built with :class:`OpenAIShapedRoute`):
  ``{"error": {message, type, param, code}}``, bad input as 400 (OpenAI clients read 400, not 422).

A :class:`~serve_app.core.refusal.Refusal` raised anywhere below a route becomes one of these; a 503 carries
``Retry-After``. Neither shape ever echoes the offending input: it may be huge, hostile, or not encodable at all (a
lone surrogate echoed by FastAPI's default handler turned a 422 into a 500).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from serve_app.core.refusal import Refusal, validation_errors
from serve_app.protocols.openai_api import ChatCompletionRequest, ErrorInfo, ErrorResponse

# ---- ours ---------------------------------------------------------------------------------------------------------


def retry_headers(retry_after_s: int | None) -> dict[str, str] | None:
    return {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None


def detail_response(status: int, detail: Any, headers: dict[str, str] | None = None) -> Response:
    """``{"detail": ...}``, ASCII-escaped: a field name in a message may be a lone surrogate, which no UTF-8 writer
    accepts."""
    return Response(
        content=json.dumps({"detail": detail}, ensure_ascii=True),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def refused(request: Request, exc: Refusal) -> Response:
    return detail_response(exc.status, exc.message, retry_headers(exc.retry_after_s))


async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """422 with where and what of each error, never the offending input."""
    return detail_response(422, validation_errors(exc))


def install(app: FastAPI) -> None:
    """Our shape for the whole app (routes of :class:`OpenAIShapedRoute` answer theirs before these run)."""
    app.add_exception_handler(Refusal, refused)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]


def unauthorised() -> Response:
    return JSONResponse(
        status_code=401,
        content={"detail": "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'"},
        headers={"WWW-Authenticate": "Bearer"},
    )


# ---- OpenAI's -----------------------------------------------------------------------------------------------------

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    status = 400 if status == 422 else status
    body = ErrorResponse(
        error=ErrorInfo(message=message, type=_OPENAI_TYPES.get(status, "api_error"), param=param, code=code)
    )
    return Response(
        content=json.dumps(body.model_dump(), ensure_ascii=True),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _field_path(loc: tuple[Any, ...] | list[Any]) -> list[str]:
    """A validation error's location as the client wrote it: field names and list indices, without FastAPI's
    ``body`` and pydantic's union-member tags (``function-after[...]``, ``list[TextPart]``)."""
    return [str(p) for p in loc if isinstance(p, int) or (p != "body" and str(p).isidentifier())]


def openai_invalid(exc: RequestValidationError) -> Response:
    """The first validation error as OpenAI reports bad input: one message, the field it concerns as ``param``."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = _field_path(first.get("loc", ()))
    param = ".".join(loc) or None
    kind = first.get("type")
    if kind == "extra_forbidden":
        accepted = ", ".join(ChatCompletionRequest.model_fields)
        where = "message fields are role and content" if "messages" in loc else f"accepted fields: {accepted}"
        message = f"unsupported field {param!r}: this front does not implement it ({where})"
    elif kind == "json_invalid":
        message, param = "the body is not valid JSON", None
    elif kind == "string_unicode" and param is None:
        message = "the body holds invalid Unicode (an unpaired surrogate escape such as \\ud800?); send valid UTF-8"
    else:
        message = f"{param or 'body'}: {first.get('msg', 'invalid value')}".replace("Value error, ", "")
    # one problem per field: a union (content: string or parts) reports each of its members
    others = len({tuple(_field_path(e.get("loc", ()))) for e in errors} - {tuple(loc)})
    if others:
        message += f" (and problems in {others} more field{'s' if others > 1 else ''})"
    return openai_error(400, message, param=param)


class OpenAIShapedRoute(APIRoute):
    """A route whose refusals, FastAPI's validation errors included, are answered in OpenAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def shaped(request: Request) -> Response:
            try:
                return await handler(request)
            except Refusal as exc:
                headers = retry_headers(exc.retry_after_s)
                return openai_error(exc.status, exc.message, param=exc.param, code=exc.code, headers=headers)
            except RequestValidationError as exc:
                return openai_invalid(exc)
            except HTTPException as exc:
                return openai_error(exc.status_code, str(exc.detail), headers=exc.headers)

        return shaped
