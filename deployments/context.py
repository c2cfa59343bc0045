"""How much candidate text fits in one judge call.

A call must hold the judge's fixed prompt, the conversation, the principle, the responses it shows and, after
them, the answer (``max_tokens``) — all within the model's context. The fixed part is measured once on the judge's
own chat template; what is left is shared by the responses of one call (two for the pairwise judge). Counts use the
judge's tokenizer; a small safety margin covers what neutralisation and templates add around untrusted text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deployments.chat import ChatMessage
from deployments.judge import Judge
from deployments.principle.parse import encode_ids

PROBE = "probe"
#: role markers and separators around one conversation turn (ChatML-style templates use 4-5)
TURN_TOKENS = 8
#: share of the free room kept back for what neutralisation and the template add around untrusted text
SAFETY = 0.05


def chat_tokens(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> int:
    """Tokens of ``messages`` rendered by the tokenizer's chat template (an estimate when there is none, or the
    template rejects the judge's roles)."""
    try:
        rendered = tokenizer.apply_chat_template(list(messages), tokenize=True, add_generation_prompt=True)
    except Exception:
        return sum(len(encode_ids(tokenizer, m["content"])) + TURN_TOKENS for m in messages)
    ids = rendered["input_ids"] if isinstance(rendered, Mapping) else rendered
    return len(ids)


class ContextBudget:
    """The room one judge's calls leave for each response they show."""

    def __init__(self, judge: Judge, tokenizer: Any, context_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.context_tokens = context_tokens
        self.per_call = judge.responses_per_call
        self.answer_tokens = judge.settings.sampling.max_tokens
        probe = self.count(PROBE)
        messages = judge.messages([ChatMessage(role="user", content=PROBE)], [PROBE] * self.per_call, PROBE)
        # conversation turn, principle and responses are probes; what remains is the fixed prompt
        self.fixed_tokens = max(0, chat_tokens(tokenizer, messages) - probe * (self.per_call + 2))

    def count(self, text: str) -> int:
        return len(encode_ids(self.tokenizer, text))

    def conversation_tokens(self, conversation: Sequence[ChatMessage]) -> int:
        return sum(self.count(m.content) + TURN_TOKENS for m in conversation)

    def room(self, conversation_tokens: int, principle_tokens: int) -> int:
        """Tokens each response may have."""
        free = self.context_tokens - self.answer_tokens - self.fixed_tokens - conversation_tokens - principle_tokens
        return int(free * (1 - SAFETY)) // self.per_call

    def truncate(self, text: str, tokens: int) -> str:
        """The longest prefix of ``text`` of at most ``tokens`` tokens (cut on a token boundary)."""
        ids = encode_ids(self.tokenizer, text)
        if len(ids) <= tokens:
            return text
        keep = tokens
        while True:
            # Decoding and re-encoding can merge across the cut into a different count: shorten until it fits.
            cut = str(self.tokenizer.decode(ids[:keep]))
            if keep == 0 or self.count(cut) <= tokens:
                return cut
            keep -= 1
