"""What both judges share: a chat client, the prompt settings and the sampling settings.

A concrete judge (``deployments.principle.judge``, ``deployments.pairwise.judge``) only says how it asks (messages
and constraints) and how it reads the answer; sending goes through :meth:`Judge._send`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from deployments.chat import ConversationInput, JudgeMessage, PromptFormat
from deployments.engine_client import JUDGE_TOKENS, JUDGE_VERSIONS, ChatClient, Completion
from deployments.template_markers import NO_MARKERS, TemplateMarkers

#: An engine sampling seed: vLLM seeds a torch generator with it, which takes a signed 64-bit integer.
EngineSeed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class Sampling(BaseModel):
    """Sampling for judge calls. The model cards recommend temperature 0.6 and top_p 0.95 for both GenRMs."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.6, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=16384, ge=1, description="reasoning plus answer")
    seed: EngineSeed | None = Field(default=None, description="engine sampling seed, for reproducible judge outputs")


class JudgeSettings(BaseModel):
    """How one judge is asked (the same whether the model is hosted here or behind an endpoint)."""

    model_config = ConfigDict(extra="forbid")

    prompt_format: PromptFormat = "native"
    system_prompt: str | None = Field(default=None, description="rendered format only; trusted project text")
    sampling: Sampling = Sampling()
    chat_template_kwargs: dict[str, Any] | None = Field(
        default=None, description="passed to the checkpoint's chat template (e.g. reasoning switches)"
    )


class Judge:
    """Base class: holds the client and settings, and sends one chat request per message list."""

    #: how many responses one call shows (they share the context left after the fixed prompt)
    responses_per_call: int = 1

    def __init__(
        self,
        client: ChatClient,
        settings: JudgeSettings,
        special_tokens: Sequence[str] = (),
        template_markers: TemplateMarkers = NO_MARKERS,
    ) -> None:
        self.client = client
        self.settings = settings
        #: the structure of the checkpoint's chat template (native format; see deployments.template_markers)
        self.template_markers = template_markers
        #: what untrusted text may not reproduce, on top of the built-in list: the checkpoint's own special tokens
        #: and its template's markers (the prompt builders hand both to the neutraliser)
        self.special_tokens = (*special_tokens, *template_markers.protected())

    def messages(
        self, conversation: ConversationInput, responses: Sequence[str], principle: str | None
    ) -> list[JudgeMessage]:
        """The messages of one call showing ``responses`` (``responses_per_call`` of them)."""
        raise NotImplementedError

    def _request(self, messages: list[JudgeMessage], **extra: Any) -> dict[str, Any]:
        s = self.settings.sampling
        request: dict[str, Any] = {
            "messages": messages,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            **extra,
        }
        if s.seed is not None:
            request["seed"] = s.seed
        if self.settings.chat_template_kwargs:
            request["chat_template_kwargs"] = self.settings.chat_template_kwargs
        return request

    async def _send(self, messages: list[JudgeMessage], **extra: Any) -> Completion:
        return await self.ask(self._request(messages, **extra))

    async def ask(self, request: dict[str, Any]) -> Completion:
        """Send one chat request as it is, and note what the router accounts for in the caller's context (batched
        calls answer each caller's own future): the judge's version stamp — a group judged by two versions during a
        rolling update is judged again (serve_app.core.service) — and the tokens its answer used."""
        completion = await self.client.chat(request)
        if completion.judge_version is not None and (seen := JUDGE_VERSIONS.get()) is not None:
            seen.add((str(getattr(self.client, "model", "")), completion.judge_version))
        if (tokens := JUDGE_TOKENS.get()) is not None:
            tokens["prompt"] += completion.prompt_tokens or 0
            tokens["completion"] += completion.completion_tokens or 0
        return completion
