"""Overlong text: making responses fit every judge's context, by the configured policy (reject or truncate).

The room is measured in each judge's own tokens (``deployments.context.ContextBudget``): its context, minus the
answer's max_tokens, the fixed prompt, the conversation and the longest principle.
"""

from __future__ import annotations

from collections.abc import Sequence

from deployments.chat import ChatMessage
from deployments.context import ContextBudget
from serve_app.core.refusal import reject

#: the least room a response may have before a request is refused as leaving no space for candidates
MIN_RESPONSE_TOKENS = 16


def fit_texts(
    budgets: dict[str, ContextBudget],
    conversation: Sequence[ChatMessage],
    texts: Sequence[str],
    principles: Sequence[str],
    policy: str,
    what: str,
) -> tuple[list[str], list[int]]:
    """``texts`` made to fit every judge's context (the overlong policy: reject or truncate), and the indices that
    were cut. Raises a 422 when a text is too long under 'reject', or when nothing would fit."""
    rooms = []
    for role, budget in budgets.items():
        conversation_tokens = budget.conversation_tokens(conversation)
        principle_tokens = max((budget.count(p) for p in principles), default=0)
        room = budget.room(conversation_tokens, principle_tokens)
        if room < MIN_RESPONSE_TOKENS:
            raise reject(
                422,
                f"the conversation ({conversation_tokens} tokens) and principles ({principle_tokens} tokens) leave no "
                f"room for a {what} in the {role} judge's context of {budget.context_tokens} tokens, of which "
                f"{budget.answer_tokens} are kept for its answer; shorten the conversation",
            )
        rooms.append((room, role, budget))
    out = list(texts)
    cut: set[int] = set()
    for room, role, budget in sorted(rooms, key=lambda r: r[0]):  # tightest judge first: its limit is the one to name
        for i, text in enumerate(out):
            tokens = budget.count(text)
            if tokens <= room:
                continue
            if policy == "reject":
                raise reject(
                    422,
                    f"{what} {i} is {tokens} tokens; the {role} judge's context leaves room for {room} per {what} "
                    f"with this conversation (overlong policy 'reject'; a deployment can choose 'truncate')",
                )
            out[i] = budget.truncate(text, room)
            cut.add(i)
    return out, sorted(cut)
