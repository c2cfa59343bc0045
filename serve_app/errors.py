"""How the service refuses a request: one HTTPException with the status, what was wrong and what is allowed.

The core (``serve_app.judging``) raises these; the project's own routes let FastAPI answer them as
``{"detail": message}``. A protocol module that owes its clients another error shape catches
``fastapi.HTTPException`` around its core calls and answers ``status_code`` and ``detail`` in that shape.
"""

from __future__ import annotations

from fastapi import HTTPException


def reject(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=message, headers=headers)
