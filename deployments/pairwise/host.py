"""How the pairwise GenRM is hosted: engine settings from the nvidia/Qwen3-Nemotron-235B-A22B-GenRM-2603 card.

The card serves it with vLLM at tensor-parallel 8 and a 40k context; its reasoning ends with ``</think>``, and a
reasoning parser keeps the trace out of ``content`` so the parser only sees the JSON answer. All pairwise requests
of one best-of-N share the conversation, which prefix caching computes once.
"""

from __future__ import annotations

from typing import Any

MODEL_ID = "nvidia/Qwen3-Nemotron-235B-A22B-GenRM-2603"
NAME_PREFIX = "pairwise-genrm:"

ENGINE_DEFAULTS: dict[str, Any] = {
    "max_model_len": 40000,
    "enable_prefix_caching": True,
    "reasoning_parser": "deepseek_r1",
}
