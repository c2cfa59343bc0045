"""How the principle judge is asked: one message list per (response, principle).

Native format (nvidia/Qwen3-Nemotron-32B-GenRM-Principle): the conversation, the judged response as the last
assistant turn, then ``{"role": "principle", ...}`` last; the checkpoint's own chat template renders the custom role.

Rendered format (any instruct model): one user message quoting the conversation, the response and the principle
in delimited sections, asking for a short reasoning that ends in ``Final Judgement: Yes`` / ``No``.

In both formats everything before the principle is byte-identical across the principles of one response, so an
engine with prefix caching computes it once.
"""

from __future__ import annotations

from collections.abc import Sequence

from deployments.chat import (
    PRINCIPLE_ROLE,
    QUOTED_DATA_RULE,
    ConversationInput,
    JudgeMessage,
    PromptFormat,
    check_prompt_format,
    native_turns,
    render_conversation,
    rendered_head,
    validate_history,
)
from deployments.text_safety import neutralize, neutralize_after_heading, section

_INTRO = (
    "You are evaluating an AI assistant. Below you will find a conversation between a user and the assistant, "
    "one candidate reply written by the assistant to the last user turn, and a principle. Decide whether the "
    "candidate reply satisfies the principle.\n\n" + QUOTED_DATA_RULE
)

_OUTRO = (
    "Judge the candidate reply only against the principle above, in the context of the conversation. Reason "
    "briefly, in a few sentences, then end your answer with a line that is exactly `Final Judgement: Yes` if the "
    "reply satisfies the principle or exactly `Final Judgement: No` if it does not. Write nothing after that line."
)


def _check_principles(principles: Sequence[str]) -> None:
    if isinstance(principles, str):
        raise TypeError("principles must be a sequence of strings, not one string")
    if not principles:
        raise ValueError("at least one principle is required")
    for i, p in enumerate(principles):
        if not p.strip():
            raise ValueError(f"principle {i} is empty")


def build_principle_batch(
    conversation: ConversationInput,
    response: str,
    principles: Sequence[str],
    *,
    prompt_format: PromptFormat = "native",
    special_tokens: Sequence[str] = (),
    system_prompt: str | None = None,
) -> list[list[JudgeMessage]]:
    """One message list per principle, all judging ``response`` as the reply to ``conversation``.

    ``conversation`` must end with the user turn that ``response`` answers (optionally led by one system message).
    ``special_tokens`` extends the built-in control-string list (e.g. ``tokenizer.all_special_tokens``); in the
    native format it also carries the template's structural markers (``TemplateMarkers.protected()``).
    ``system_prompt`` is trusted project text and only applies to the rendered format.
    """
    fmt = check_prompt_format(prompt_format)
    head = rendered_head(fmt, system_prompt)  # rejects a system prompt with the native format
    _check_principles(principles)
    history = validate_history(conversation)
    safe_response = neutralize(response, special_tokens)
    # The checkpoint's template writes the principle right after a heading run
    slot = neutralize_after_heading if fmt == "native" else neutralize
    safe_principles = [slot(p, special_tokens) for p in principles]

    if fmt == "native":
        prefix = [*native_turns(history, special_tokens), {"role": "assistant", "content": safe_response}]
        return [[*(dict(m) for m in prefix), {"role": PRINCIPLE_ROLE, "content": p}] for p in safe_principles]

    # Computed once, so every principle's prompt starts with the very same string.
    shared = "\n\n".join([_INTRO, render_conversation(history, special_tokens), section("RESPONSE", safe_response)])
    return [
        [*(dict(m) for m in head), {"role": "user", "content": f"{shared}\n\n{section('PRINCIPLE', p)}\n\n{_OUTRO}"}]
        for p in safe_principles
    ]


def build_principle_messages(
    conversation: ConversationInput,
    response: str,
    principle: str,
    *,
    prompt_format: PromptFormat = "native",
    special_tokens: Sequence[str] = (),
    system_prompt: str | None = None,
) -> list[JudgeMessage]:
    """The message list for one principle (see :func:`build_principle_batch`)."""
    return build_principle_batch(
        conversation,
        response,
        [principle],
        prompt_format=prompt_format,
        special_tokens=special_tokens,
        system_prompt=system_prompt,
    )[0]


def principle_untrusted_texts(conversation: ConversationInput, response: str) -> list[str]:
    """The texts a principle verdict must not have been copied from (for the parser's echo guard)."""
    return [m.content for m in validate_history(conversation)] + [response]
