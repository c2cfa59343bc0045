"""OpenRLHF's remote reward model wire models: the body of ``POST /get_reward`` and its answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployments.chat import Text


class GetRewardRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: list[Text] = Field(description="per sample: prompt + response as chat-template text, special tokens kept")
    prompts: list[Text] | None = Field(default=None, description="per sample: the prompt part of its query")
    labels: list[Any] | None = Field(default=None, description="per sample: a reference (str or null); not used")

    @model_validator(mode="after")
    def _aligned(self) -> GetRewardRequest:
        n = len(self.query)
        for name in ("prompts", "labels"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"{name} has {len(values)} entries and query {n}: one per sample")
        return self


class GetRewardResponse(BaseModel):
    rewards: list[float] = Field(description="per sample, in request order (higher is better, within its group)")
    scores: list[float] = Field(description="the same values (OpenRLHF logs and filters on them)")
    extra_logs: dict[str, list[float]] = Field(description="per key one value per sample: rank, group_size, complete")
