"""What the trainers' reward functions share: reading a trainer's prompt and completion, finding a batch's groups,
and one async client per event loop.

Trainers hand over prompts as message lists or as strings (plain text, or text their tokenizer's chat template
produced) and completions as strings or assistant message lists. The judges need a conversation ending with a
user turn and the response text; :mod:`serve_app.chat_text` reads templated text back, so both shapes work.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from serve_app.chat_text import content_text, policy_text, to_conversation
from serve_app.client.http import AsyncGenRMClient

#: Format-detecting reader (ChatML, Llama 3, Gemma; else plain text), reasoning before ``</think>`` dropped.
_TEXT = policy_text(None)

Prompt = str | Sequence[Mapping[str, Any]]
Completion = str | Sequence[Mapping[str, Any]]


def conversation_of(prompt: Prompt) -> list[dict[str, str]]:
    """The judges' conversation for a trainer's prompt (see the module docstring)."""
    if isinstance(prompt, str):
        turns = _TEXT.conversation(prompt)
    else:
        turns = to_conversation((str(m.get("role", "user")), content_text(m.get("content"))) for m in prompt)
    return [{"role": m.role, "content": m.content} for m in turns]


def response_of(completion: Completion) -> str:
    """The text the judges rate: a string as generated (EOS and padding stripped, reasoning dropped), or the
    assistant turns of a message list joined."""
    if isinstance(completion, str):
        return _TEXT.response(completion)
    texts = [content_text(m.get("content")) for m in completion if m.get("role", "assistant") == "assistant"]
    return _TEXT.response("\n\n".join(t for t in texts if t))


def prompt_key(prompt: Prompt) -> str:
    """Equal for equal prompts, whatever their shape (message dicts compare by content, not identity)."""
    return prompt if isinstance(prompt, str) else json.dumps(list(prompt), sort_keys=True, default=str)


def consecutive_groups(prompts: Sequence[Prompt], group_size: int | None) -> list[tuple[range, bool]]:
    """Split a batch into its groups: runs of equal consecutive prompts, each cut into ``group_size`` pieces.

    Returns ``(positions, whole)`` per group. ``whole`` is False for a piece shorter than ``group_size`` — the
    part of a group that another process holds the rest of. Without ``group_size`` every run is one whole group.
    """
    keys = [prompt_key(p) for p in prompts]
    groups: list[tuple[range, bool]] = []
    start = 0
    for end in range(1, len(keys) + 1):
        if end < len(keys) and keys[end] == keys[start]:
            continue
        if group_size is None:
            groups.append((range(start, end), True))
        else:
            for lo in range(start, end, group_size):
                hi = min(lo + group_size, end)
                groups.append((range(lo, hi), hi - lo == group_size))
        start = end
    return groups


class LoopClients:
    """One :class:`AsyncGenRMClient` per event loop: httpx's async pool must not cross loops, and some trainers
    call their reward function from more than one (a fresh ``asyncio.run`` per batch)."""

    def __init__(self, factory: Callable[[], AsyncGenRMClient]) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenRMClient] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> AsyncGenRMClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._factory()
        return client
