"""The router's gate, as plain ASGI in front of a small app: bearer token on every route but /healthz, and the
body limit whether or not the client sends Content-Length."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from serve_app.ingress.gate import Gate as _Gate

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/echo")
async def echo(request: Request) -> dict[str, int]:
    return {"bytes": len(await request.body())}


def call(method: str, path: str, *, root_path: str = "", **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=_Gate(app), root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
            return await client.request(method, root_path + path, **kwargs)

    return asyncio.run(go())


@pytest.fixture
def gate() -> Iterator[type[_Gate]]:
    limit, token = _Gate.limit, _Gate.token
    _Gate.limit, _Gate.token = 1000, b"s3cret"
    yield _Gate
    _Gate.limit, _Gate.token = limit, token


def test_token_required_except_on_health(gate: type[_Gate]) -> None:
    assert call("GET", "/healthz").status_code == 200
    assert call("GET", "/healthz", root_path="/genrm").status_code == 200  # Serve route prefix
    assert call("GET", "/readyz").status_code == 200  # probes carry no token
    for headers in (
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": "s3cret"},
        {"authorization": "Basic s3cret"},
    ):
        r = call("POST", "/echo", content=b"{}", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", headers
        assert "Authorization: Bearer" in r.json()["detail"]
    ok = call("POST", "/echo", content=b"{}", headers={"authorization": "bearer  s3cret "})
    assert ok.status_code == 200 and ok.json() == {"bytes": 2}


def test_no_token_configured_means_open(gate: type[_Gate]) -> None:
    gate.token = None
    assert call("POST", "/echo", content=b"{}").status_code == 200


def test_body_limit_with_and_without_content_length(gate: type[_Gate]) -> None:
    auth = {"authorization": "Bearer s3cret"}
    assert call("POST", "/echo", content=b"x" * 1000, headers=auth).json() == {"bytes": 1000}
    r = call("POST", "/echo", content=b"x" * 1001, headers=auth)
    assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]

    async def chunks(total: int) -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(total // 100):
            yield b"x" * 100

    assert call("POST", "/echo", content=chunks(1000), headers=auth).json() == {"bytes": 1000}
    r = call("POST", "/echo", content=chunks(5000), headers=auth)
    assert r.status_code == 413 and "content-length" not in r.request.headers
    r = call("POST", "/echo", content=b"{}", headers={**auth, "content-length": "abc"})
    assert r.status_code == 400
