"""The principle judge: one request per principle, each read as logprob(Yes) − logprob(No)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from deployments.chat import ConversationInput, JudgeMessage
from deployments.engine_client import ChatClient, JudgeCallError
from deployments.judge import Judge, JudgeSettings
from deployments.principle.parse import VerdictTokens, parse_principle_logprobs
from deployments.principle.prompt import build_principle_batch, build_principle_messages, principle_untrusted_texts
from deployments.template_markers import NO_MARKERS, TemplateMarkers
from policies.verdicts import CUT_OFF, PrincipleResult

#: Structured output for small stand-in models: a few words of reasoning, then the judgement line. The Yes/No
#: logprobs are still the model's own (vLLM reports logprobs before the grammar mask).
JUDGEMENT_REGEX = r"[A-Za-z0-9 ,.'()-]{0,100}\nFinal Judgement: (Yes|No)"


class PrincipleSettings(JudgeSettings):
    structured_output: Literal["off", "regex"] = "off"


class PrincipleJudge(Judge):
    """Scores one response against each principle; a failed request becomes failed results, never an exception
    out of :meth:`score` unless the model server itself could not be reached."""

    settings: PrincipleSettings

    def __init__(
        self,
        client: ChatClient,
        settings: PrincipleSettings,
        tokens: VerdictTokens,
        special_tokens: Sequence[str] = (),
        template_markers: TemplateMarkers = NO_MARKERS,
    ) -> None:
        super().__init__(client, settings, special_tokens, template_markers)
        self.tokens = tokens

    def messages(
        self, conversation: ConversationInput, responses: Sequence[str], principle: str | None
    ) -> list[JudgeMessage]:
        (response,) = responses
        return build_principle_messages(
            conversation,
            response,
            principle or "",
            prompt_format=self.settings.prompt_format,
            special_tokens=self.special_tokens,
            system_prompt=self.settings.system_prompt,
        )

    def _extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"logprobs": True, "logprob_token_ids": self.tokens.logprob_token_ids}
        if self.settings.structured_output == "regex":
            extra["structured_outputs"] = {"regex": JUDGEMENT_REGEX}
        return extra

    async def score(
        self, conversation: ConversationInput, response: str, principles: Sequence[str]
    ) -> list[PrincipleResult]:
        batch = build_principle_batch(
            conversation,
            response,
            principles,
            prompt_format=self.settings.prompt_format,
            special_tokens=self.special_tokens,
            system_prompt=self.settings.system_prompt,
        )
        untrusted = principle_untrusted_texts(conversation, response)
        completions = await asyncio.gather(*(self._send(m, **self._extra()) for m in batch), return_exceptions=True)
        results = []
        for principle, completion in zip(principles, completions, strict=True):
            if isinstance(completion, BaseException):
                if not isinstance(completion, JudgeCallError | TimeoutError):
                    raise completion
                results.append(PrincipleResult(principle=principle, failure=str(completion) or "judge call failed"))
            elif completion.finish_reason == "length":
                # A cut-off answer has no final judgement of its own; any Yes/No in it would be mid-reasoning.
                results.append(PrincipleResult(principle=principle, raw_text=completion.text, failure=CUT_OFF))
            else:
                results.append(
                    parse_principle_logprobs(
                        completion.logprobs,
                        principle=principle,
                        tokens=self.tokens,
                        text=completion.text,
                        untrusted=untrusted,
                    )
                )
        return results
