"""What a reasoning pairwise judge's logprobs cost outside the engine, per call, with and without the trim.

The pairwise judge asks for ``top_logprobs`` (``ranking_logprobs``, 10 by default) to read its belief at the ranking
digit. vLLM returns them for every generated token, reasoning included. Per call this bench measures, for traces of
1k–16k tokens with a short JSON answer after ``</think>``:

* replica: :class:`~deployments.judge_server.BatchedChat` turning vLLM's response model into a dict (and trimming it
  to the answer's logprobs when the request carries ``LOGPROBS_FROM_LAST``, as the pairwise judge's does);
* transport: pickling the dict in the replica and unpickling it in the router (what a Ray call does to it);
* router: reading the completion and the belief (:func:`deployments.pairwise.logprobs.with_beliefs`).

    python -m bench.judge_payload [--repeats 3]

Writes bench/results/judge_payload.md.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import random
import time
from pathlib import Path
from typing import Any

from deployments.engine_client import LOGPROBS_FROM_LAST, completion_from_openai
from deployments.judge_server import BatchedChat
from deployments.pairwise.logprobs import with_beliefs
from deployments.pairwise.parse import parse_pairwise
from deployments.text_safety import THINK_CLOSE

RESULTS = Path(__file__).parent / "results"
TOP = 10
WORDS = ["the", " first", " answer", " is", " correct", ",", " but", " second", " misses", " a", " step", "\n"]
ANSWER = ["\n", '{"', "score", "_1", '":', " 4", ",", ' "', "score", "_2", '":', " 2", ",", ' "', "ranking", '":']
ANSWER += [" 2", "}"]


def _position(token: str, rng: random.Random) -> dict[str, Any]:
    alternatives = rng.sample(WORDS, TOP) if token not in (" 2",) else [f" {d}" for d in range(1, 7)]
    top = [{"token": t, "logprob": -0.3 * (k + 1), "bytes": list(t.encode())} for k, t in enumerate(alternatives)]
    return {"token": token, "logprob": -0.3, "bytes": list(token.encode()), "top_logprobs": top}


def response(trace_tokens: int, seed: int = 0) -> Any:
    """vLLM's ChatCompletionResponse for a trace of ``trace_tokens`` tokens, ``</think>`` and a verdict object."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionResponse

    rng = random.Random(seed)
    tokens = [rng.choice(WORDS) for _ in range(trace_tokens)] + [THINK_CLOSE] + ANSWER
    content = [_position(t, rng) for t in tokens]
    text = "".join(ANSWER).strip()
    return ChatCompletionResponse.model_validate(
        {
            "id": "bench",
            "created": 0,
            "model": "pairwise",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": {"content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 2000, "completion_tokens": len(tokens), "total_tokens": 2000 + len(tokens)},
        }
    )


class _Replica(BatchedChat):
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def chat(self, request: dict[str, Any]) -> Any:
        yield self.answer


def measure(built: Any, trim: bool) -> dict[str, float]:
    replica = _Replica(built.model_copy(deep=True))  # a fresh response per call, as the engine builds one
    request: dict[str, Any] = {"messages": [], "logprobs": True, "top_logprobs": TOP}
    if trim:
        request[LOGPROBS_FROM_LAST] = THINK_CLOSE
    started = time.perf_counter()
    (body,) = asyncio.run(replica.chat_many([request]))
    replica_s = time.perf_counter() - started
    started = time.perf_counter()
    wire = pickle.dumps(body)
    received = pickle.loads(wire)
    transport_s = time.perf_counter() - started
    started = time.perf_counter()
    completion = completion_from_openai(received)
    result = with_beliefs(parse_pairwise(completion.text), completion.logprobs)
    router_s = time.perf_counter() - started
    assert result.verdict is not None and result.verdict.ranking_probs is not None, "the belief was not read"
    return {"replica_s": replica_s, "transport_s": transport_s, "router_s": router_s, "mb": len(wire) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs per cell")
    parser.add_argument("--out", type=Path, default=RESULTS / "judge_payload.md")
    args = parser.parse_args()
    rows = []
    for n in (1000, 4000, 16000):
        built = response(n)
        for trim in (False, True):
            runs = [measure(built, trim) for _ in range(args.repeats)]
            best = {k: min(r[k] for r in runs) for k in runs[0]}
            rows.append((n, trim, best))
            print(n, "answer only" if trim else "whole trace", {k: round(v, 4) for k, v in best.items()}, flush=True)
    lines = [
        "# A reasoning judge's logprobs outside the engine",
        "",
        f"One pairwise call, top_logprobs {TOP} on every generated token, a trace of N tokens then `</think>` and "
        f"a {len(ANSWER)}-token verdict object. Best of {args.repeats} runs, one core of this machine.",
        "",
        "| trace tokens | logprobs sent back | payload (MB) | replica: to dict (s) | pickle + unpickle (s) "
        "| router: completion + belief (s) |",
        "|---|---|---|---|---|---|",
    ]
    for n, trim, best in rows:
        lines.append(
            f"| {n} | {'from the last </think>' if trim else 'every token'} | {best['mb']:.2f} | "
            f"{best['replica_s']:.3f} | {best['transport_s']:.3f} | {best['router_s']:.3f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
