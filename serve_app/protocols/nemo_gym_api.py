"""NeMo-Gym's ``genrm_compare`` wire models: the bodies of ``POST /compare`` and ``POST /verify`` and their answers,
as NeMo-Gym's resources server defines them (extra fields a row carries are kept and echoed)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deployments.chat import Text
from policies.nemo_gym import JudgedPair


class ResponseObject(BaseModel):
    """An OpenAI Responses-API response object; only its ``output`` items are read, the rest is kept as sent."""

    model_config = ConfigDict(extra="allow")

    output: list[dict[str, Any]] = Field(
        default_factory=list,
        description="output items: 'message' items' output_text is judged; 'reasoning' items are never judged, their "
        "summaries' length counts in NeMo-Gym's length terms when configured",
    )


class GenRMCompareRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    conversation_history: list[dict[str, Any]] = Field(
        min_length=1, description="{role, content} messages ending with the user turn the responses answer"
    )
    response_objs: list[ResponseObject] = Field(description="Responses-API objects, one per candidate")
    principle: Text | None = Field(default=None, description="sent to the pairwise judge as its evaluation plan")


class GenRMCompareMetrics(BaseModel):
    mean_individual_score: float | None = Field(default=None, description="mean of every 1–5 score the judge gave")
    std_individual_score: float | None = Field(default=None, description="their population standard deviation")
    tiebreak_usage_rate: float | None = Field(default=None, description="share of calls whose two scores tied")


class GenRMCompareResponse(BaseModel):
    rewards: list[float] = Field(description="one per response, in request order")
    comparison_results: list[JudgedPair] = Field(description="every judge call, response_i shown first")
    metrics: GenRMCompareMetrics = Field(description="keys without a value (no call made) are left out")


class ResponsesCreateParams(BaseModel):
    """The Responses-API request the rollout answered; its ``input`` (and ``instructions``) is the conversation."""

    model_config = ConfigDict(extra="allow")

    input: str | list[dict[str, Any]] = Field(description="a user message, or the conversation's input items")
    instructions: str | None = None


class VerifyRequest(BaseModel):
    """A NeMo-Gym verify request: the dataset row (any further fields are echoed back) and the rollout."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    responses_create_params: ResponsesCreateParams
    response: ResponseObject
    principle: Text | None = None
    ng_task_index: int | None = Field(default=None, alias="_ng_task_index")
    ng_rollout_index: int | None = Field(default=None, ge=0, alias="_ng_rollout_index")
    ng_group_id: str | None = Field(default=None, alias="_ng_group_id", description="NeMo-Gym >= 0.7: the group")
    ng_group_attempt: int = Field(
        default=0, ge=0, alias="_ng_group_attempt", description="NeMo-Gym >= 0.7: the group's attempt (retries)"
    )
    prompt_id: str | int | None = None


class VerifyResponse(BaseModel):
    """The request's row as sent, plus the reward."""

    model_config = ConfigDict(extra="allow")

    reward: float
