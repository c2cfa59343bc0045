"""The pairwise judge: one request per ordered pair, read into helpfulness 1–5 ×2 and a ranking 1–6."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from deployments.chat import ConversationInput, JudgeMessage
from deployments.engine_client import LOGPROBS_FROM_LAST
from deployments.judge import Judge, JudgeSettings
from deployments.pairwise.logprobs import with_beliefs
from deployments.pairwise.parse import VERDICT_KEYS, parse_pairwise
from deployments.pairwise.prompt import PAIRWISE_JSON_SCHEMA, build_pairwise_messages, pairwise_untrusted_texts
from deployments.text_safety import THINK_CLOSE
from policies.verdicts import CUT_OFF, PairwiseResult

#: The schema without the free-text analyses: small stand-in models then answer in a few tokens.
PAIRWISE_SCORES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {k: PAIRWISE_JSON_SCHEMA["properties"][k] for k in VERDICT_KEYS},
    "required": list(VERDICT_KEYS),
    "additionalProperties": False,
}


#: The three numbers and nothing else, spaced one way. A JSON schema leaves whitespace free, and on long prompts small
#: models fill it (``{  "score_1"  :  1  ,`` …) until max_tokens cuts the answer off; this grammar cannot be padded.
PAIRWISE_COMPACT_REGEX = r'\{"score_1": [1-5], "score_2": [1-5], "ranking": [1-6]\}'


class PairwiseSettings(JudgeSettings):
    #: "full": the rendered format's whole JSON answer; "scores": only the three numbers (JSON schema);
    #: "compact": the three numbers in one fixed layout (regex; small models on long prompts)
    structured_output: Literal["off", "full", "scores", "compact"] = "off"
    #: top logprobs per generated token, from which the beliefs at the verdict's digits are read (soft verdicts),
    #: when the judge does not know its tokenizer's digit ids (else it asks for exactly those, every digit's
    #: logprob). The digits 1..6 are all a judge considers there, so 10 covers them; 0 asks for no logprobs at all
    #: (sampled verdicts only). vLLM refuses more than its ``max_logprobs`` (20 by default).
    ranking_logprobs: int = Field(default=10, ge=0, le=20)


def digit_token_ids(tokenizer: Any) -> list[int]:
    """The ids of the tokenizer's single tokens that write a verdict digit 1..6: bare, after a space or after a
    quote (the variants the belief reader sums), in a stable order."""
    ids: dict[int, None] = {}
    for digit in "123456":
        for text in (digit, f" {digit}", f'"{digit}'):
            encoded = tokenizer.encode(text, add_special_tokens=False)
            if len(encoded) == 1:
                ids[int(encoded[0])] = None
    return list(ids)


class PairwiseJudge(Judge):
    settings: PairwiseSettings
    responses_per_call = 2

    def __init__(self, *args: Any, digit_token_ids: Sequence[int] = (), **kwargs: Any) -> None:
        """``digit_token_ids`` (:func:`digit_token_ids`): ask for exactly these tokens' logprobs at every generated
        position (vLLM's ``logprob_token_ids``), so each belief has all its digits, none cut by a top-k."""
        super().__init__(*args, **kwargs)
        self.digit_token_ids = list(digit_token_ids)

    def messages(
        self, conversation: ConversationInput, responses: Sequence[str], principle: str | None
    ) -> list[JudgeMessage]:
        response_1, response_2 = responses
        return build_pairwise_messages(
            conversation,
            response_1,
            response_2,
            principle=principle,
            prompt_format=self.settings.prompt_format,
            special_tokens=self.special_tokens,
            system_prompt=self.settings.system_prompt,
        )

    def _extra(self) -> dict[str, Any]:
        mode = self.settings.structured_output
        if mode == "off":
            return {}
        if mode == "compact":
            return {"structured_outputs": {"regex": PAIRWISE_COMPACT_REGEX}}
        schema = PAIRWISE_JSON_SCHEMA if mode == "full" else PAIRWISE_SCORES_SCHEMA
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "pairwise_verdict", "schema": schema, "strict": True},
            }
        }

    def _logprob_request(self) -> dict[str, Any]:
        k = self.settings.ranking_logprobs
        if k <= 0:
            return {}
        # The belief is read after the reasoning (pairwise.parse.answer_start): the trace's logprobs stay behind.
        request: dict[str, Any] = {"logprobs": True, LOGPROBS_FROM_LAST: THINK_CLOSE}
        if self.digit_token_ids:
            request["logprob_token_ids"] = self.digit_token_ids
        else:
            request["top_logprobs"] = k
        return request

    async def compare(
        self, conversation: ConversationInput, response_1: str, response_2: str, principle: str | None = None
    ) -> PairwiseResult:
        """One call with ``response_1`` shown first. Transport errors raise (the caller counts and retries them);
        an unreadable answer is a failed result."""
        messages = self.messages(conversation, (response_1, response_2), principle)
        completion = await self._send(messages, **self._extra(), **self._logprob_request())
        if completion.finish_reason == "length" and self.settings.structured_output != "off":
            return PairwiseResult(raw_text=completion.text, failure=CUT_OFF)
        # A grammar-constrained answer is the verdict and nothing else: there is no quoted text for the parser to
        # mistake for it, so the copy guard (which a candidate listing every possible object could abuse) is off.
        constrained = self.settings.structured_output != "off"
        untrusted = () if constrained else pairwise_untrusted_texts(conversation, response_1, response_2)
        return with_beliefs(parse_pairwise(completion.text, untrusted=untrusted), completion.logprobs)
