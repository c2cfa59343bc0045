"""The wire shapes of the OpenAI-compatible front (``serve_app/routes/openai.py``): chat completions, the model
list and OpenAI's error body.

Only what a judge needs is accepted, strictly: a field this front does not implement is a 400 that names it, not a
silent no-op (a client asking for ``tools`` or ``response_format`` would otherwise get an answer it did not ask for).
Messages may use the GenRMs' own roles (``principle``, ``response_1``, ``response_2``), which the checkpoints' chat
templates render.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deployments.chat import Text
from deployments.judge import EngineSeed

#: The roles a message may carry: OpenAI's, and the custom ones the Nemotron GenRM templates read.
MessageRole = Literal["system", "user", "assistant", "principle", "response_1", "response_2"]
MESSAGE_ROLES: tuple[str, ...] = MessageRole.__args__  # type: ignore[attr-defined]
#: The GenRM roles that fill one slot of the judge prompt each: two of one would leave the template to pick one.
SINGLE_SLOT_ROLES: tuple[str, ...] = ("principle", "response_1", "response_2")

#: OpenAI caps top_logprobs at 20, and so does vLLM's default max_logprobs.
MAX_TOP_LOGPROBS = 20


class TextPart(BaseModel):
    """One part of a multi-part content: text only (a judge reads no images or audio)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: Text


class ChatCompletionMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: MessageRole
    content: Text | list[TextPart] = Field(description="a string, or a list of text parts (joined by newlines)")

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class ChatCompletionRequest(BaseModel):
    """A non-streaming chat completion for one judge; sampling fields left out take the judge's configured ones."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="a judge's served model name (see GET /v1/models), or 'principle' / 'pairwise'")
    messages: list[ChatCompletionMessage] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, description="deprecated by OpenAI; max_completion_tokens")
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, description="only 1: one judgement per call")
    seed: EngineSeed | None = None
    stop: Text | Annotated[list[Text], Field(max_length=4)] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    stream: bool | None = Field(default=None, description="only false: answers are sent whole")
    user: str | None = Field(default=None, description="accepted for compatibility; not used")

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError(f"{value} choices asked; this front returns one judgement per call: send n=1 (or omit it)")
        return value

    @field_validator("stream")
    @classmethod
    def _not_streamed(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("streaming is not supported: send stream=false (or omit it) and read the whole answer")
        return value

    @field_validator("messages")
    @classmethod
    def _slots(cls, value: list[ChatCompletionMessage]) -> list[ChatCompletionMessage]:
        if all(m.role == "system" for m in value):
            raise ValueError("messages hold only system messages; send at least one other turn to judge")
        for role in SINGLE_SLOT_ROLES:
            if sum(m.role == role for m in value) > 1:
                raise ValueError(f"more than one {role!r} message; the judge's template has one {role} slot")
        return value

    @model_validator(mode="after")
    def _one_limit(self) -> ChatCompletionRequest:
        if (
            self.max_tokens is not None
            and self.max_completion_tokens is not None
            and self.max_tokens != self.max_completion_tokens
        ):
            raise ValueError(
                f"max_tokens={self.max_tokens} and max_completion_tokens={self.max_completion_tokens} disagree; send "
                f"one of them"
            )
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs=true")
        return self

    @property
    def completion_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str = Field(description="the answer: the text after the judge's last </think>")
    reasoning_content: str | None = Field(
        default=None, description="the judge's reasoning, before its last </think>; absent when it wrote none"
    )


class ChoiceLogprobs(BaseModel):
    content: list[dict[str, Any]] | None = Field(
        default=None, description="per generated token: token, logprob, bytes, top_logprobs (as the engine sends)"
    )


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str = Field(description="stop, length, ... as the engine reported it")
    logprobs: ChoiceLogprobs | None = None


class Usage(BaseModel):
    prompt_tokens: int = Field(description="tokens of the rendered judge prompt (0 when the engine reported none)")
    completion_tokens: int = Field(description="generated tokens, reasoning included")
    total_tokens: int


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(description="Unix seconds")
    model: str = Field(description="the judge's served model name (also when the request named its role)")
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    """One entry of GET /v1/models in OpenAI's shape."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "genrm-ensemble"


class ErrorInfo(BaseModel):
    message: str = Field(description="what was wrong and what is allowed")
    type: str = Field(description="invalid_request_error, not_found_error, service_unavailable_error, ...")
    param: str | None = Field(default=None, description="the request field at fault, when there is one")
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error body: what OpenAI clients read (``openai`` raises NotFoundError, BadRequestError, ... with
    ``error.message``)."""

    error: ErrorInfo
