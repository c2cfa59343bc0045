"""LLaMA-Factory's API reward model wire models: the body of ``POST /v1/score/evaluation`` and its answer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from deployments.chat import Text


class ScoreEvaluationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(default=None, description="LLaMA-Factory sends 'model'; not used")
    messages: list[Text] = Field(description="per sample: the whole decoded text, prompt and response")


class ScoreEvaluationResponse(BaseModel):
    scores: list[float] = Field(description="per message, in request order (higher is better)")
