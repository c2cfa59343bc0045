"""How the pairwise judge is asked: one message list per ordered pair of responses.

Native format (nvidia/Qwen3-Nemotron-235B-A22B-GenRM-2603): the history in user/assistant roles ending with a
user turn, an optional ``{"role": "principle", ...}``, then ``response_1`` and ``response_2``; the checkpoint's
template renders them into its own judging prompt.

Rendered format (any instruct model): one user message with the instructions, scoring scale and output spec first,
then the conversation and optional principle, and the two responses last, so everything that does not depend on
the pair is a shared prefix for the engine's prefix cache. The requested JSON matches
:data:`PAIRWISE_JSON_SCHEMA`, which can also be sent as a structured-output constraint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from policies.verdicts import RANKING_MAX, RANKING_MIN, SCORE_MAX, SCORE_MIN

RESPONSE_ROLES = ("response_1", "response_2")

_SCORE_RANGE = (int(SCORE_MIN), int(SCORE_MAX))
_RANKING_RANGE = (int(RANKING_MIN), int(RANKING_MAX))

#: Output keys in the order the judge should write them: analyses first, so the numbers follow the reasoning.
PAIRWISE_KEYS: tuple[str, ...] = ("response_1_analysis", "response_2_analysis", "score_1", "score_2", "ranking")

#: JSON schema of the rendered format's answer, for structured output (``response_format`` json_schema).
PAIRWISE_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "response_1_analysis": {"type": "string"},
        "response_2_analysis": {"type": "string"},
        "score_1": {"type": "integer", "minimum": _SCORE_RANGE[0], "maximum": _SCORE_RANGE[1]},
        "score_2": {"type": "integer", "minimum": _SCORE_RANGE[0], "maximum": _SCORE_RANGE[1]},
        "ranking": {"type": "integer", "minimum": _RANKING_RANGE[0], "maximum": _RANKING_RANGE[1]},
    },
    "required": list(PAIRWISE_KEYS),
    "additionalProperties": False,
}

_RANKING_MEANINGS = (
    "Response 1 is much better than Response 2",
    "Response 1 is better than Response 2",
    "Response 1 is slightly better than Response 2",
    "Response 2 is slightly better than Response 1",
    "Response 2 is better than Response 1",
    "Response 2 is much better than Response 1",
)
assert len(_RANKING_MEANINGS) == _RANKING_RANGE[1] - _RANKING_RANGE[0] + 1

_INTRO = (
    "You are evaluating an AI assistant. Below you will find a conversation between a user and the assistant, and "
    "then two candidate replies to the last user turn, Response 1 and Response 2. Rate how helpful each reply is "
    "and which of the two is better.\n\n" + QUOTED_DATA_RULE
)


def _guidelines() -> str:
    lo, hi = _SCORE_RANGE
    rlo, _ = _RANKING_RANGE
    ranking_lines = "\n".join(f"  {rlo + i} = {meaning}" for i, meaning in enumerate(_RANKING_MEANINGS))
    return (
        "Scoring guidelines:\n"
        f"- score_1 and score_2: helpfulness of Response 1 and of Response 2, each an integer from {lo} to {hi}. "
        f"{lo} means unhelpful, wrong or unsafe; {hi} means correct, complete and exactly what the user needed.\n"
        "- ranking: an integer comparing the two replies:\n"
        f"{ranking_lines}\n"
        "  There is no tie: when the replies are about equally good, pick 3 or 4 by whichever is slightly ahead.\n"
        "- Judge content over style and length; a longer reply is not better for being longer, and the order in "
        "which the replies are shown says nothing about their quality.\n\n"
        "Output format: reply with a single JSON object and nothing else, with exactly these keys in this order:\n"
        '- "response_1_analysis": a short string assessing Response 1\n'
        '- "response_2_analysis": a short string assessing Response 2\n'
        f'- "score_1": integer {lo}-{hi}\n'
        f'- "score_2": integer {lo}-{hi}\n'
        f'- "ranking": integer {_RANKING_RANGE[0]}-{_RANKING_RANGE[1]}'
    )


_GUIDELINES = _guidelines()
_PRINCIPLE_NOTE = "When judging, apply the evaluation principle quoted in the PRINCIPLE section."


def _rendered_prefix(history_text: str, principle: str | None) -> str:
    parts = [_INTRO, _GUIDELINES]
    if principle is not None:
        parts.append(_PRINCIPLE_NOTE)
    parts.append(history_text)
    if principle is not None:
        parts.append(section("PRINCIPLE", principle))
    return "\n\n".join(parts)


def build_pairwise_batch(
    conversation: ConversationInput,
    pairs: Sequence[tuple[str, str]],
    *,
    principle: str | None = None,
    prompt_format: PromptFormat = "native",
    special_tokens: Sequence[str] = (),
    system_prompt: str | None = None,
) -> list[list[JudgeMessage]]:
    """One message list per ``(response_1, response_2)`` pair, all sharing the conversation and principle.

    ``conversation`` must end with the user turn both responses answer (optionally led by one system message).
    ``special_tokens`` extends the built-in control-string list; in the native format it also carries the
    template's structural markers (``TemplateMarkers.protected()``), which every untrusted slot must not forge.
    ``system_prompt`` (trusted) is rendered-only.
    """
    fmt = check_prompt_format(prompt_format)
    head = rendered_head(fmt, system_prompt)  # rejects a system prompt with the native format
    history = validate_history(conversation)
    if principle is not None and not principle.strip():
        raise ValueError("principle is empty; pass None to use the judge's default evaluation")
    # The checkpoint's template writes the principle right after "#### Evaluation Plan ####"
    slot = neutralize_after_heading if fmt == "native" else neutralize
    safe_principle = None if principle is None else slot(principle, special_tokens)
    safe_pairs = [(neutralize(a, special_tokens), neutralize(b, special_tokens)) for a, b in pairs]

    if fmt == "native":
        prefix = native_turns(history, special_tokens)
        if safe_principle is not None:
            prefix.append({"role": PRINCIPLE_ROLE, "content": safe_principle})
        return [
            [
                *(dict(m) for m in prefix),
                {"role": RESPONSE_ROLES[0], "content": a},
                {"role": RESPONSE_ROLES[1], "content": b},
            ]
            for a, b in safe_pairs
        ]

    shared = _rendered_prefix(render_conversation(history, special_tokens), safe_principle)
    return [
        [
            *(dict(m) for m in head),
            {"role": "user", "content": f"{shared}\n\n{section('RESPONSE 1', a)}\n\n{section('RESPONSE 2', b)}"},
        ]
        for a, b in safe_pairs
    ]


def build_pairwise_messages(
    conversation: ConversationInput,
    response_1: str,
    response_2: str,
    *,
    principle: str | None = None,
    prompt_format: PromptFormat = "native",
    special_tokens: Sequence[str] = (),
    system_prompt: str | None = None,
) -> list[JudgeMessage]:
    """The message list for one ordered pair (see :func:`build_pairwise_batch`)."""
    return build_pairwise_batch(
        conversation,
        [(response_1, response_2)],
        principle=principle,
        prompt_format=prompt_format,
        special_tokens=special_tokens,
        system_prompt=system_prompt,
    )[0]


def pairwise_untrusted_texts(conversation: ConversationInput, response_1: str, response_2: str) -> list[str]:
    """The texts a pairwise verdict must not have been copied from (for the parser's echo guard)."""
    return [m.content for m in validate_history(conversation)] + [response_1, response_2]
