"""How judge requests reach a model: OpenAI bodies read into completions, batching per round, the HTTP transport."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from deployments.engine_client import (
    AFFINITY_KEY,
    CALL_SCOPE,
    LOGPROBS_FROM_LAST,
    ChatBatch,
    JudgeCallError,
    OpenAIHttpClient,
    ServeHandleClient,
    completion_from_openai,
    logprobs_from_last,
)
from deployments.judge_server import BatchedChat


def _body(content: str, finish: str = "stop", logprobs: list | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"message": {"role": "assistant", "content": content}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return {"choices": [choice], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}


def test_completion_from_openai_reads_text_logprobs_and_usage() -> None:
    c = completion_from_openai(_body("Final Judgement: Yes", logprobs=[{"token": " Yes", "logprob": -0.1}]))
    assert (c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) == ("Final Judgement: Yes", "stop", 12, 3)
    assert c.logprobs == [{"token": " Yes", "logprob": -0.1}]
    assert completion_from_openai({"choices": [{"message": {"content": None}}]}).text == ""


@pytest.mark.parametrize(
    "payload",
    [
        {"error": {"message": "context length exceeded"}},
        {"object": "error", "message": "bad"} | {"error": "bad"},
        {"choices": []},
    ],
)
def test_errors_become_judge_call_errors(payload: dict[str, Any]) -> None:
    with pytest.raises(JudgeCallError):
        completion_from_openai(payload)


class _Remote:
    """Stands in for a DeploymentHandle method: records the batches it is called with."""

    def __init__(self, server: BatchedChat) -> None:
        self.server = server
        self.batches: list[int] = []

    async def remote(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches.append(len(bodies))
        return await self.server.chat_many(bodies)


class _EchoServer(BatchedChat):
    async def chat(self, request: dict[str, Any]):  # LLMServer's shape: an async generator of one response
        if request["messages"][0]["content"] == "boom":
            raise RuntimeError("engine failed")
        yield _body(f"{request['model']}:{request['messages'][0]['content']}")


class _Handle:
    def __init__(self) -> None:
        self.chat_many = _Remote(_EchoServer())


def test_calls_of_one_round_travel_as_one_batch() -> None:
    handle = _Handle()
    client = ServeHandleClient(handle, model="judge")

    async def one_round(k: int) -> list[str]:
        # shaped like selection rounds: nested gathers and wait_for around each call
        async def call(i: int) -> str:
            done = await asyncio.wait_for(client.chat({"messages": [{"role": "user", "content": str(i)}]}), 5)
            return done.text

        return list(await asyncio.gather(*(call(i) for i in range(k))))

    async def main() -> tuple[list[str], list[str]]:
        return await one_round(8), await one_round(3)

    first, second = asyncio.run(main())
    assert first == [f"judge:{i}" for i in range(8)] and second == [f"judge:{i}" for i in range(3)]
    assert handle.chat_many.batches == [8, 3]


class _Routed(_Remote):
    """A handle method that records, per batch, the ``session_id`` it was given through ``options`` and its prompt."""

    def __init__(
        self, server: BatchedChat, sessions: list[str | None], prompts: list[str], session: str | None = None
    ) -> None:
        super().__init__(server)
        self.sessions, self.prompts, self.session = sessions, prompts, session

    def options(self, *, session_id: str) -> _Routed:
        return _Routed(self.server, self.sessions, self.prompts, session_id)

    async def remote(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.sessions.append(self.session)
        self.prompts.append(bodies.prompt)  # type: ignore[attr-defined]
        return await self.server.chat_many(bodies)


def test_calls_of_one_affinity_key_travel_together_with_it_as_their_session() -> None:
    """Three groups judged in the same moment: one batch per group, each sent with the group's key as session_id
    (what Serve's ConsistentHashRouter routes by) and as the batch's prompt (what PrefixCacheAffinityRouter reads);
    calls without a key keep the plain handle, and their batch a text of its own."""
    sessions: list[str | None] = []
    prompts: list[str] = []

    class Handle:
        chat_many = _Routed(_EchoServer(), sessions, prompts)

    client = ServeHandleClient(Handle(), model="m")

    async def group(key: str | None, n: int) -> list[str]:
        AFFINITY_KEY.set(key)  # in this task's own context, as the router's core sets it per group
        calls = [client.chat({"messages": [{"role": "user", "content": f"{key}-{i}"}]}) for i in range(n)]
        return [c.text for c in await asyncio.gather(*calls)]

    async def main() -> list[list[str]]:
        return list(await asyncio.gather(group("g1", 3), group("g2", 2), group(None, 2)))

    answers = asyncio.run(main())
    assert answers[0] == ["m:g1-0", "m:g1-1", "m:g1-2"] and answers[1] == ["m:g2-0", "m:g2-1"]
    assert sorted(sessions, key=str) == sorted(["g1", "g2", None], key=str) and client.sent == 3
    unkeyed = next(p for p in prompts if p not in ("g1", "g2"))
    assert sorted(prompts) == sorted(["g1", "g2", unkeyed]) and len(unkeyed) == 32


def test_a_batch_keeps_its_prompt_across_serialization() -> None:
    """Ray pickles a handle call's argument: the judge replica gets a list of the same bodies, and the router's
    prompt survives with it."""
    import pickle

    import cloudpickle

    batch = ChatBatch([{"messages": []}, {"messages": [{"role": "user", "content": "x"}]}], prompt="key")
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        back = loads(dumps(batch))
        assert isinstance(back, list) and back == batch and back.prompt == "key"


def test_one_failing_request_does_not_fail_its_batch() -> None:
    client = ServeHandleClient(_Handle(), model="m")

    async def main() -> list[Any]:
        calls = [client.chat({"messages": [{"role": "user", "content": c}]}) for c in ("ok", "boom")]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    ok, failed = asyncio.run(main())
    assert ok.text == "m:ok"
    assert isinstance(failed, JudgeCallError) and "engine failed" in str(failed)


class _SlowServer(BatchedChat):
    """An engine whose requests take ``delay_s`` and that records each one's end: answered or cancelled."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.ended: dict[str, str] = {}

    async def chat(self, request: dict[str, Any]):
        content = request["messages"][0]["content"]
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.ended[content] = "cancelled"  # what vLLM's generate does here: abort the request
            raise
        self.ended[content] = "answered"
        yield _body(content)


class _Cancellable:
    """A handle method whose calls, like Serve's DeploymentResponse, are awaitable and have ``cancel()``, which
    cancels the call on its replica."""

    def __init__(self, server: BatchedChat) -> None:
        self.server = server
        self.batches: list[list[str]] = []

    def options(self, *, session_id: str) -> _Cancellable:
        return self

    def remote(self, bodies: list[dict[str, Any]]) -> asyncio.Task[list[dict[str, Any]]]:
        self.batches.append([b["messages"][0]["content"] for b in bodies])
        return asyncio.ensure_future(self.server.chat_many(bodies))


def test_a_batch_whose_callers_all_gave_up_is_cancelled_on_its_replica_and_other_scopes_carry_on() -> None:
    """Two groups with the same prompt (one affinity key) judged in the same moment, each in its own scope: two
    batches. The first group's caller gives up (its deadline passed): its batch is cancelled, so the replica ends
    those requests, while the second group's calls complete."""
    server = _SlowServer(0.3)

    class Handle:
        chat_many = _Cancellable(server)

    client = ServeHandleClient(Handle(), model="m")

    async def group(name: str, n: int, give_up_after_s: float | None) -> list[str]:
        AFFINITY_KEY.set("same prompt")
        CALL_SCOPE.set(object())
        calls = asyncio.gather(
            *(client.chat({"messages": [{"role": "user", "content": f"{name}{i}"}]}) for i in range(n))
        )
        return [c.text for c in await asyncio.wait_for(calls, give_up_after_s)]

    async def main() -> tuple[Any, Any]:
        cut, kept = await asyncio.gather(group("a", 3, 0.05), group("b", 2, None), return_exceptions=True)
        await asyncio.sleep(0.05)  # the cancellation reaches the replica's tasks
        return cut, kept

    cut, kept = asyncio.run(main())
    assert isinstance(cut, TimeoutError) and kept == ["b0", "b1"]
    assert sorted(Handle.chat_many.batches) == [["a0", "a1", "a2"], ["b0", "b1"]]
    assert server.ended == {"a0": "cancelled", "a1": "cancelled", "a2": "cancelled", "b0": "answered", "b1": "answered"}


def test_a_batch_is_kept_while_one_of_its_callers_still_waits() -> None:
    server = _SlowServer(0.2)

    class Handle:
        chat_many = _Cancellable(server)

    client = ServeHandleClient(Handle(), model="m")

    async def main() -> list[Any]:
        calls = [client.chat({"messages": [{"role": "user", "content": f"c{i}"}]}) for i in range(2)]
        gone = asyncio.wait_for(calls[0], 0.05)
        return list(await asyncio.gather(gone, calls[1], return_exceptions=True))

    gone, kept = asyncio.run(main())
    assert isinstance(gone, TimeoutError) and kept.text == "c1"
    assert server.ended == {"c0": "answered", "c1": "answered"}


class _Unreachable:
    class chat_many:  # mirrors the handle attribute
        @staticmethod
        async def remote(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
            raise ConnectionError("replica died")


def test_a_dead_replica_fails_every_call_of_the_batch() -> None:
    client = ServeHandleClient(_Unreachable(), model="m")

    async def main() -> list[Any]:
        calls = [client.chat({"messages": []}) for _ in range(3)]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    assert all(isinstance(e, JudgeCallError) and "replica died" in str(e) for e in asyncio.run(main()))


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A tiny OpenAI-compatible server on loopback that answers from the request and records what it got."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            seen.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
            status, answer = (200, _body("hello")) if body["model"] == "good" else (400, {"error": {"message": "no"}})
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", seen
    finally:
        server.shutdown()


def test_openai_endpoint_client(endpoint: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("httpx")
    url, seen = endpoint
    monkeypatch.setenv("JUDGE_KEY", "s3cret")

    async def main() -> None:
        good = OpenAIHttpClient(url, "good", api_key_env="JUDGE_KEY")
        asked = {"messages": [], "temperature": 0.6, LOGPROBS_FROM_LAST: "</think>"}
        assert (await good.chat(asked)).text == "hello"
        bad = OpenAIHttpClient(url, "bad")
        with pytest.raises(JudgeCallError, match="HTTP 400: no"):
            await bad.chat({"messages": []})
        down = OpenAIHttpClient("http://127.0.0.1:9/v1", "good", timeout_s=2)
        with pytest.raises(JudgeCallError, match="unreachable"):
            await down.chat({"messages": []})
        for c in (good, bad, down):
            await c.aclose()

    asyncio.run(main())
    assert seen[0]["path"] == "/v1/chat/completions"
    assert seen[0]["auth"] == "Bearer s3cret" and seen[1]["auth"] is None
    assert seen[0]["body"] == {"messages": [], "temperature": 0.6, "model": "good"}


# ---- logprobs after the reasoning only ----------------------------------------------------------------------------

TRACE = ["<think>", "Both", " are", " fine", "</th", "ink>", "\n", '{"', "ranking", '":', " 2", "}"]


def _positions(tokens: list[str]) -> list[dict[str, Any]]:
    return [
        {"token": t, "logprob": -0.5, "bytes": None, "top_logprobs": [{"token": t, "logprob": -0.5}]} for t in tokens
    ]


@pytest.mark.parametrize(
    ("tokens", "kept"),
    [
        (TRACE, TRACE[4:]),  # the marker split over two tokens: kept from the one where it starts
        (["a</think>b", "</think>", "c"], ["</think>", "c"]),  # the last occurrence counts
        (["x", "y</think>"], ["y</think>"]),
        (["no", " trace"], ["no", " trace"]),  # never written: everything stays
    ],
)
def test_logprobs_from_the_last_marker(tokens: list[str], kept: list[str]) -> None:
    assert [e["token"] for e in logprobs_from_last(_positions(tokens), "</think>")] == kept


class _TracingServer(BatchedChat):
    """Answers with vLLM's own response model, as LLMServer does."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def chat(self, request: dict[str, Any]):
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionResponse

        self.seen.append(request)
        body = _body("".join(TRACE), logprobs=_positions(TRACE))
        body["choices"][0]["index"] = 0
        yield ChatCompletionResponse.model_validate(
            {**body, "model": "m", "usage": {**body["usage"], "total_tokens": 15}}
        )


def test_the_replica_sends_back_only_the_answers_logprobs() -> None:
    pytest.importorskip("vllm", reason="vLLM's response model")
    server = _TracingServer()
    trimmed, whole = asyncio.run(
        server.chat_many(
            [
                {"messages": [], "logprobs": True, LOGPROBS_FROM_LAST: "</think>"},
                {"messages": [], "logprobs": True},  # e.g. the OpenAI front: a client's logprobs stay whole
            ]
        )
    )
    assert len(server.seen) == 2 and all(LOGPROBS_FROM_LAST not in r for r in server.seen)  # nor does the engine
    assert [e["token"] for e in trimmed["choices"][0]["logprobs"]["content"]] == TRACE[4:]
    assert [e["token"] for e in whole["choices"][0]["logprobs"]["content"]] == TRACE
    assert trimmed["choices"][0]["message"]["content"] == whole["choices"][0]["message"]["content"]


# ---- the engine's scheduling priority ------------------------------------------------------------------------------


def test_a_judge_replica_lowers_its_priority_as_its_environment_says() -> None:
    """In a child process: niceness cannot be raised back, and the test process must keep its own."""
    import subprocess
    import sys

    code = (
        "import os; from deployments.judge_server import lower_priority; before = os.nice(0); "
        "assert lower_priority({}) is None and os.nice(0) == before; "
        "after = lower_priority({'GENRM_ENGINE_NICE': '3'}); print(before, after)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = map(int, out.stdout.split())
    assert after == min(before + 3, 19)  # the kernel caps niceness at 19


@pytest.mark.parametrize("value", ["-5", "20", "ten"])
def test_a_niceness_outside_0_to_19_is_refused_with_the_range(value: str) -> None:
    from deployments.judge_server import ENGINE_NICE_ENV, lower_priority

    with pytest.raises(ValueError, match="an integer from 0 to 19"):
        lower_priority({ENGINE_NICE_ENV: value})


def test_a_hosted_judge_stamps_its_answers_with_a_hash_of_its_llm_config() -> None:
    """The stamp the router reads to keep one group on one judge version: equal for equal LLMConfigs (replicas of
    one version), different when the model or an engine setting changes (a rolling update)."""
    pytest.importorskip("ray.serve.llm")
    from ray.serve.llm import LLMConfig

    from deployments.engine_client import JUDGE_VERSION_FIELD, completion_from_openai
    from deployments.judge_server import judge_server_class

    def stamp(model: str, **engine: Any) -> str:
        server = judge_server_class().__new__(judge_server_class())  # no engine: only the stamp is asked for
        server._llm_config = LLMConfig(model_loading_config={"model_id": model}, engine_kwargs=engine)
        return server._judge_version()

    assert stamp("judge-a") == stamp("judge-a") != stamp("judge-b")
    assert stamp("judge-a", max_model_len=4096) != stamp("judge-a", max_model_len=8192)
    body = {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}], JUDGE_VERSION_FIELD: "abc"}
    assert completion_from_openai(body).judge_version == "abc"
