"""Prefix-cache reuse: the share of prompt tokens vLLM served from its prefix cache during one best-of-N request.

    python -m bench.prefix_cache                 # the CPU default (config.yaml), N = 8, default strategy
    python -m bench.prefix_cache --n 8 --strategy knockout

Starts the CPU default in-process (two SmolLM2 engines under ray.serve.llm), sends one best-of-N request on a long
conversation that the engines have never seen, and reads vLLM's own counters from Ray's Prometheus endpoint before
and after: prompt tokens by source (local_cache_hit / local_compute), per judge model. Every pairwise prompt of the
request starts with the same instructions and conversation, so only the first call of a round should compute it.
Target: >= 60% of the pairwise judge's prompt tokens from the cache. Writes bench/results/prefix_cache.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import yaml

from bench.ray_metrics import counter_total, metrics_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
TARGET = 0.60
METRIC = "ray_vllm_prompt_tokens_by_source_total"

_FACTS = [
    "The river delta floods every spring and leaves a layer of silt across the lower fields.",
    "Farmers in the valley rotate barley, beans and clover on a three-year cycle.",
    "A cooperative founded in 1952 buys the harvest and runs the only grain dryer in the district.",
    "The regional railway closed its branch line in 1987, so grain now leaves the valley by truck.",
    "Rainfall has fallen by about a tenth over the last thirty years, while summer storms have grown heavier.",
    "The cooperative's members voted last year to build a second storage hall on higher ground.",
    "Young people increasingly leave for the coastal cities, and the median farmer is now 58 years old.",
    "A pilot project pays farmers to leave a strip of wildflowers along every drainage ditch.",
]


def long_conversation(turns: int) -> list[dict[str, str]]:
    """A multi-turn conversation of a few thousand tokens whose last turn asks for a summary."""
    messages = []
    for t in range(turns):
        report = " ".join(f"({t + 1}.{k + 1}) {fact}" for k, fact in enumerate(_FACTS))
        messages.append({"role": "user", "content": f"Here is section {t + 1} of the district report: {report}"})
        messages.append({"role": "assistant", "content": f"Thank you, I have read section {t + 1}."})
    messages.append({"role": "user", "content": "Summarise the report in two sentences for the district council."})
    return messages


CANDIDATES = [
    "The valley's farms depend on spring floods and a 1952 cooperative; drier years and heavier storms now push "
    "the cooperative to build storage on higher ground.",
    "Farming in the valley is ageing and exposed to climate change, so the council should back the new storage "
    "hall and the wildflower strips.",
    "The report describes barley, beans and clover rotations, a closed railway branch and a cooperative dryer.",
    "Rain is down, storms are up, young people leave, and the cooperative is building a second hall.",
    "The district report is long and covers many topics about agriculture in the valley.",
    "Grain leaves the valley by truck since 1987; the cooperative plans new storage and pays for wildflower strips.",
    "Summary: floods, crops, a cooperative, a railway, rainfall, storage, migration, wildflowers.",
    "The valley's agriculture is resilient but under pressure from climate and demographics; investment in "
    "storage is underway.",
]


def _by_source(model: str) -> dict[str, float]:
    text = metrics_text()
    return {s: counter_total(text, METRIC, model_name=model, source=s) for s in ("local_cache_hit", "local_compute")}


def _settled(model: str, timeout_s: float = 90.0) -> dict[str, float]:
    """Counters once two reads 6 s apart agree (Ray exports engine metrics every few seconds)."""
    last = _by_source(model)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(6)
        now = _by_source(model)
        if now == last:
            return now
        last = now
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8, choices=range(2, len(CANDIDATES) + 1), metavar="N")
    parser.add_argument("--strategy", default=None, help="default: the configuration's")
    parser.add_argument("--turns", type=int, default=6, help="report sections in the conversation")
    parser.add_argument("--port", type=int, default=8124)
    parser.add_argument("--out", type=Path, default=RESULTS / "prefix_cache.md")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import httpx
    import ray
    from ray import serve
    from transformers import AutoTokenizer

    from serve_app.app import build_app
    from serve_app.config import AppConfig
    from serve_app.core.judge_pool import judge_llm_configs

    app_args = yaml.safe_load((ROOT / "config.yaml").read_text())["applications"][0]["args"]
    config = AppConfig.model_validate(app_args)
    llm_fields = judge_llm_configs(config)
    models = {role: f["model_loading_config"]["model_id"] for role, f in llm_fields.items()}
    source = llm_fields["pairwise"]["model_loading_config"]["model_source"]
    conversation = long_conversation(args.turns)
    encoded = AutoTokenizer.from_pretrained(source).apply_chat_template(conversation, tokenize=True, return_dict=True)
    prompt_tokens = len(encoded["input_ids"])

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    try:
        serve.run(build_app(app_args), name="genrm", route_prefix="/")
        client = httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=900)
        warm = {"conversation": [{"role": "user", "content": "Hi"}], "response_1": "Hello!", "response_2": "Hey."}
        deadline = time.monotonic() + 900
        while client.post("/v1/compare", json=warm).status_code != 200:  # engines up and warmed on another prompt
            if time.monotonic() > deadline:
                raise SystemExit("the judges did not come up")
            time.sleep(5)
        before = {role: _settled(m) for role, m in models.items()}
        body = {"conversation": conversation, "candidates": CANDIDATES[: args.n], "principles": ["correctness"]}
        if args.strategy:
            body["strategy"] = args.strategy
        started = time.perf_counter()
        r = client.post("/v1/best_of_n", json=body)
        wall = time.perf_counter() - started
        r.raise_for_status()
        out = r.json()
        after = {role: _settled(m) for role, m in models.items()}
    finally:
        serve.shutdown()
        ray.shutdown()

    rows = []
    shares = {}
    for role in models:
        hit = after[role]["local_cache_hit"] - before[role]["local_cache_hit"]
        computed = after[role]["local_compute"] - before[role]["local_compute"]
        shares[role] = hit / (hit + computed) if hit + computed else float("nan")
        calls = out["pairwise_calls"] if role == "pairwise" else out["principle_calls"]
        rows.append(f"| {role} | {calls} | {hit + computed:.0f} | {hit:.0f} | {computed:.0f} | {shares[role]:.1%} |")
    report = "\n".join(
        [
            "# Prefix-cache reuse",
            "",
            f"One best-of-N request (N = {args.n}, strategy {out['strategy']}, one principle) on a {len(conversation)}-"
            f"message conversation of {prompt_tokens} tokens (as a chat), never seen before by either engine; CPU "
            f"default (SmolLM2-135M-Instruct, vLLM CPU build, block size 128). {out['rounds']} rounds, {wall:.1f} s.",
            "",
            "| judge | calls | prompt tokens | from cache | computed | share from cache |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Target: >= {TARGET:.0%} of the pairwise judge's prompt tokens from the cache "
            f"({'met' if shares['pairwise'] >= TARGET else 'missed'}). Source: vLLM's "
            "prompt_tokens_by_source counters on Ray's metrics endpoint.",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
