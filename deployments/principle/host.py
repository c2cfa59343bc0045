"""How the principle GenRM is hosted: engine settings from the nvidia/Qwen3-Nemotron-32B-GenRM-Principle card.

The judge reasons before its final judgement (the card generates up to 16k new tokens), and the reward needs the
Yes/No logprobs, read exactly with ``logprob_token_ids``. Every principle request for one response shares the
conversation and the response as a prefix, which prefix caching computes once.
"""

from __future__ import annotations

from typing import Any

MODEL_ID = "nvidia/Qwen3-Nemotron-32B-GenRM-Principle"
NAME_PREFIX = "principle-genrm:"

ENGINE_DEFAULTS: dict[str, Any] = {
    "max_model_len": 40960,
    "max_logprobs": 20,
    "enable_prefix_caching": True,
}
