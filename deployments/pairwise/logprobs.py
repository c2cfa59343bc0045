"""The pairwise judge's beliefs over its ranking and its two helpfulness scores, read from the logprobs at their digits.

A sampled ranking is one draw. The engine's top logprobs at the position that wrote the ranking digit (asked for
with ``logprobs`` / ``top_logprobs``) hold the judge's whole distribution over the next token there, so the
distribution over the digits 1..6, renormalised, is its belief (:attr:`PairVerdict.ranking_probs`).

Input is the OpenAI-compatible ``choices[0].logprobs.content`` list, one entry per generated token with its
``top_logprobs``. With a server-side reasoning parser the completion text holds only the answer while the logprobs
cover every generated token, so the position is found in the generated tokens themselves: their joined text is
read like an answer (after the last ``</think>``, the last verdict object, in either prompt format: the rendered
format's object, possibly fixed by the compact grammar, or the native checkpoint's final JSON) and the digit of
its ``"ranking"`` value (``"ranking": 2`` or ``"ranking": "2"``) is mapped back to its token; ``"score_1"`` and
``"score_2"`` the same way, over their levels 1..5. Each belief is only
attached when that digit is the one the parser read; a token that carries more than the digit (besides
whitespace and quotes), tokens sent as ``token_id:N``, or no top logprobs at all leave the verdict as it was.
Nothing here fails a call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError

from deployments.engine_client import position_at, token_texts
from deployments.pairwise.parse import answer_start, last_verdict_span
from deployments.principle.parse import TokenLogprob
from policies.verdicts import RANKING_LEVELS, SCORE_LEVELS, PairwiseResult, belief_from_logprobs

_TOKEN_ID = re.compile(r"token_id:\d+\Z")
# What may surround the digit inside its token: a leading space, or the quote of a string value.
_AROUND_DIGIT = " \t\r\n\"'"
_DIGITS = "0123456789"


def _digit(token: str) -> int | None:
    core = token.strip(_AROUND_DIGIT)
    return int(core) if len(core) == 1 and core in _DIGITS else None


def _entry(raw: Mapping[str, Any] | TokenLogprob) -> TokenLogprob | None:
    if isinstance(raw, TokenLogprob):
        return raw
    try:
        return TokenLogprob.model_validate(raw)
    except (ValidationError, TypeError):
        return None


def value_logprobs(
    content: Sequence[Mapping[str, Any] | TokenLogprob] | None, key: str, value: int
) -> dict[int, float] | None:
    """{digit: logprob} at the token that wrote ``value`` for ``key`` in the last verdict object; None when that
    position cannot be found (see the module docstring). Token variants of one digit (" 2", "2", '"2') are summed."""
    if not content:
        return None
    # Only the token strings of every position are read; the one entry at the digit is validated in full.
    tokens = token_texts(content)
    if tokens is None or any(_TOKEN_ID.match(t) for t in tokens):
        return None
    joined = "".join(tokens)
    begin = answer_start(joined)
    located = last_verdict_span(joined[begin:])
    if located is None:
        return None
    obj_start, obj_end = begin + located[0], begin + located[1]
    pattern = re.compile(rf'"{re.escape(key)}"\s*:\s*"?\s*([0-9])(?![0-9])')
    hits = [m for m in pattern.finditer(joined, obj_start, obj_end) if int(m.group(1)) == value]
    if not hits:
        return None
    at = hits[-1].start(1)
    entry = _entry(content[position_at(tokens, at)])
    if entry is None or _digit(entry.token) != value or not entry.top_logprobs:
        return None
    # The sampled token counts too (top_logprobs need not list it); one logprob per distinct token text.
    by_token = {entry.token: entry.logprob} | {a.token: a.logprob for a in entry.top_logprobs}
    found: dict[int, float] = {}
    for token, logprob in by_token.items():
        d = _digit(token)
        if d is not None and not math.isnan(logprob):
            found[d] = logprob if d not in found else float(np.logaddexp(found[d], logprob))
    return found


def _belief(
    content: Sequence[Mapping[str, Any] | TokenLogprob] | None,
    key: str,
    value: float | None,
    levels: Sequence[int],
) -> tuple[float, ...] | None:
    if value is None or value != int(value):
        return None
    found = value_logprobs(content, key, int(value))
    if not found:
        return None
    try:
        return belief_from_logprobs({d: lp for d, lp in found.items() if d in levels}, levels)
    except ValueError:  # only non-finite logprobs at the digit
        return None


def ranking_belief(
    content: Sequence[Mapping[str, Any] | TokenLogprob] | None, ranking: float | None
) -> tuple[float, ...] | None:
    """The belief over rankings 1..6 at the sampled ``ranking``'s digit, or None (see the module docstring)."""
    return _belief(content, "ranking", ranking, RANKING_LEVELS)


def score_belief(
    content: Sequence[Mapping[str, Any] | TokenLogprob] | None, key: str, score: float | None
) -> tuple[float, ...] | None:
    """The belief over helpfulness 1..5 at the sampled ``score``'s digit of ``key`` ("score_1" or "score_2")."""
    return _belief(content, key, score, SCORE_LEVELS)


def with_beliefs(result: PairwiseResult, content: Sequence[Mapping[str, Any] | TokenLogprob] | None) -> PairwiseResult:
    """``result`` with the beliefs attached to its verdict where the logprobs hold them; unchanged otherwise."""
    verdict = result.verdict
    if verdict is None or content is None:
        return result
    beliefs = {
        "ranking_probs": ranking_belief(content, verdict.ranking),
        "score_1_probs": score_belief(content, "score_1", verdict.score_1),
        "score_2_probs": score_belief(content, "score_2", verdict.score_2),
    }
    found = {k: v for k, v in beliefs.items() if v is not None}
    if not found:
        return result
    updated = type(verdict).model_validate({**verdict.model_dump(), **found})
    return result.model_copy(update={"verdict": updated})
