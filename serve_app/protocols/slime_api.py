"""slime's remote reward model wire models: the body of ``POST /slime/reward`` and its dict answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deployments.chat import Text


class SlimeRewardRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: Text | list[dict[str, Any]] = Field(description="the prompt: (templated) text, or chat messages")
    response: Text = Field(description="the rollout's response")
    label: Any = Field(default=None, description="the sample's label; not used")


class SlimeReward(BaseModel):
    reward: float = Field(
        description="this sample's ensemble score in its cohort (higher is better); when valid is false, the "
        "cohort's mean valid reward"
    )
    valid: bool = Field(
        default=True, description="a judgement stands behind the reward (false: too few usable verdicts; mask it)"
    )
    rank: int = Field(description="1 = best of the cohort's judged samples")
    group_size: int
    size_judged: int = Field(description="samples judged together (fewer than group_size after a timeout)")
    complete: bool
    cohort_id: str
