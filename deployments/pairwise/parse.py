"""How the pairwise judge's answer is read.

The judge reasons, closes ``</think>``, then writes a JSON object (often in a ```json fence) with ``score_1``,
``score_2`` (helpfulness 1-5) and ``ranking`` (1-6). Only the text after the last ``</think>`` is read, so JSON the
judge drafted while reasoning never counts. The older Llama-3.3-Nemotron-Super-49B GenRM answered with
``\\boxed{x, y}`` / ``\\boxed{z}`` inside tagged blocks; that format is read as a fallback.

Every outcome is a :class:`~policies.verdicts.PairwiseResult`: unreadable output is a failure with a reason,
never an exception.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from deployments.text_safety import ECHO_CONTEXT_CHARS, THINK_CLOSE, THINK_OPEN, echo_key, occurs_in_untrusted
from policies.verdicts import RANKING_MAX, RANKING_MIN, SCORE_MAX, SCORE_MIN, PairVerdict, PairwiseResult

COPIED_FAILURE = "verdict copied from untrusted text"
VERDICT_KEYS = ("score_1", "score_2", "ranking")
_RANGES = {"score_1": (SCORE_MIN, SCORE_MAX), "score_2": (SCORE_MIN, SCORE_MAX), "ranking": (RANKING_MIN, RANKING_MAX)}

_JSON_FENCE = re.compile(r"```[ \t]*json[ \t]*\r?\n?(.*?)```", re.IGNORECASE | re.DOTALL)
# Characters that matter to brace counting; everything else is skipped by the regex engine, not by Python.
_BRACE_EVENTS = re.compile(r'[{}"\\]')
# Bounds the work on adversarial or degenerate text (e.g. thousands of unmatched "{"): characters examined by
# brace counting over all attempts. Real answers need a few thousand.
_SCAN_BUDGET = 500_000

_SCORES_BLOCK = re.compile(
    r"\[\s*the\s+begin\s+of\s+individual\s+scores\s*\](.*?)\[\s*the\s+end\s+of\s+individual\s+scores\s*\]",
    re.IGNORECASE | re.DOTALL,
)
_RANKING_BLOCK = re.compile(
    r"\[\s*the\s+begin\s+of\s+ranking\s+score\s*\](.*?)\[\s*the\s+end\s+of\s+ranking\s+score\s*\]",
    re.IGNORECASE | re.DOTALL,
)
_BOXED = re.compile(r"\\boxed\s*\{([^{}]*)\}")


class _Unreadable(Exception):
    """A verdict was located but its values are unusable; the message becomes the failure reason."""


def _match_brace(text: str, start: int, budget: list[int]) -> int | None:
    """End (exclusive) of the ``{...}`` opening at ``start``, counting braces outside JSON strings.

    ``budget[0]`` is decremented per event examined; None when unbalanced or the budget runs out.
    """
    depth = 0
    in_string = False
    skip_to = -1  # position after an escaped character; events before it are part of the escape
    for m in _BRACE_EVENTS.finditer(text, start):
        budget[0] -= 1
        if budget[0] < 0:
            return None
        i = m.start()
        if i < skip_to:
            continue
        c = m.group()
        if in_string:
            if c == "\\":
                skip_to = i + 2
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _json_objects(text: str) -> list[tuple[int, int, dict[str, Any]]]:
    """Top-level ``{...}`` spans of ``text`` that parse as JSON objects, in order.

    A ``{`` that does not start a parseable object (prose, LaTeX, an unbalanced draft) is skipped and the search
    resumes just after it, so a stray brace cannot hide the real verdict.
    """
    found: list[tuple[int, int, dict[str, Any]]] = []
    pos = 0
    budget = [_SCAN_BUDGET]
    while budget[0] > 0:
        start = text.find("{", pos)
        if start < 0:
            break
        end = _match_brace(text, start, budget)
        obj: Any = None
        if end is not None:
            try:
                obj = json.loads(text[start:end])
            except (ValueError, RecursionError):
                obj = None
        if isinstance(obj, dict) and end is not None:
            found.append((start, end, obj))
            pos = end
        else:
            pos = start + 1
    return found


def _unwrap(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    if not any(k in obj for k in VERDICT_KEYS) and isinstance(obj.get("overall"), Mapping):
        return obj["overall"]
    return obj


def _has_verdict(obj: Mapping[str, Any]) -> bool:
    return any(k in _unwrap(obj) for k in VERDICT_KEYS)


def last_verdict_span(text: str) -> tuple[int, int, Mapping[str, Any]] | None:
    """(start, end, object) of the verdict in ``text``: last ```json fence first, else the last bare object."""
    fences = list(_JSON_FENCE.finditer(text))
    if fences:
        fence = fences[-1]
        for start, end, obj in reversed(_json_objects(fence.group(1))):
            if _has_verdict(obj):
                return fence.start(1) + start, fence.start(1) + end, _unwrap(obj)
    for start, end, obj in reversed(_json_objects(text)):
        if _has_verdict(obj):
            return start, end, _unwrap(obj)
    return None


def _last_verdict_object(text: str) -> tuple[str, Mapping[str, Any]] | None:
    """(object text, object) of the verdict (see :func:`last_verdict_span`)."""
    located = last_verdict_span(text)
    return None if located is None else (text[located[0] : located[1]], located[2])


def _number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Unreadable(f"{name} has the wrong type ({type(value).__name__})")
    try:
        x = float(value.strip()) if isinstance(value, str) else float(value)
    except (ValueError, OverflowError):
        raise _Unreadable(f"{name} is not a number: {value!r:.40}") from None
    lo, hi = _RANGES[name]
    if not math.isfinite(x) or not lo <= x <= hi:
        raise _Unreadable(f"{name}={x:g} is out of range [{lo:g}, {hi:g}]")
    return x


def _verdict(values: Mapping[str, Any]) -> PairVerdict:
    numbers = {k: _number(k, values.get(k)) for k in VERDICT_KEYS}
    if all(v is None for v in numbers.values()):
        raise _Unreadable("the verdict has none of score_1, score_2, ranking")
    return PairVerdict(**numbers)


def _boxed_verdict(text: str) -> tuple[str, dict[str, Any]] | None:
    """The 49B GenRM format: (text of the tagged blocks, values) or None when neither block is present."""
    scores = list(_SCORES_BLOCK.finditer(text))
    ranking = list(_RANKING_BLOCK.finditer(text))
    if not scores and not ranking:
        return None
    values: dict[str, Any] = {}
    spans: list[str] = []
    if scores:
        boxes = _BOXED.findall(scores[-1].group(1))
        if not boxes:
            raise _Unreadable("individual-scores block without \\boxed{...}")
        parts = [p.strip() for p in boxes[-1].split(",")]
        if not 1 <= len(parts) <= 2:
            raise _Unreadable(f"individual scores \\boxed{{{boxes[-1]:.40}}} should hold one or two numbers")
        values.update(zip(("score_1", "score_2"), parts, strict=False))
        spans.append(scores[-1].group(0))
    if ranking:
        boxes = _BOXED.findall(ranking[-1].group(1))
        if not boxes:
            raise _Unreadable("ranking block without \\boxed{...}")
        values["ranking"] = boxes[-1].strip()
        spans.append(ranking[-1].group(0))
    return "\n".join(spans), values


def _same_object_in(values: Mapping[str, Any], untrusted: Iterable[str]) -> bool:
    """True when an untrusted text holds a JSON object equal to the verdict (re-serialised copies included).

    Whole-object equality, analyses included: a candidate cannot veto a judge's own verdict by planting objects
    that merely share its numbers.
    """
    return any(_unwrap(obj) == values for text in untrusted for _, _, obj in _json_objects(text))


def _copied(raw: str, verdict_text: str, values: Mapping[str, Any], untrusted: list[str]) -> bool:
    """Whether the verdict is a copy of text the judge was shown rather than its own.

    An object with analyses is specific: it is a copy when it (or an equal object) occurs in untrusted text. A
    scores-only object is one of 150, so a candidate could list them all and veto every comparison it would lose;
    such an object counts as copied only where the judge's text just before it matches what precedes it in the
    untrusted text (up to :data:`ECHO_CONTEXT_CHARS` characters): a quoted copy brings its surroundings along, the
    judge's own answer brings the judge's own words."""
    if any(isinstance(v, str) for v in values.values()):
        return occurs_in_untrusted(verdict_text, untrusted) or _same_object_in(values, untrusted)
    key = echo_key(verdict_text)
    before = echo_key(raw[: raw.rfind(verdict_text)])
    for text in untrusted:
        haystack = echo_key(text)
        at = haystack.find(key)
        while at >= 0:
            if before.endswith(haystack[max(0, at - ECHO_CONTEXT_CHARS) : at]):
                return True
            at = haystack.find(key, at + 1)
    return False


def answer_start(raw: str) -> int:
    """Where the answer begins: after the last ``</think>``, or 0 without one."""
    at = raw.rfind(THINK_CLOSE)
    return 0 if at < 0 else at + len(THINK_CLOSE)


def _final_answer(raw: str) -> str:
    """The text after the judge's reasoning (after the last ``</think>``; the judge saw candidates' own
    ``</think>`` strings neutralised, so it has no reason to write one in its answer)."""
    if THINK_CLOSE in raw:
        return raw[answer_start(raw) :]
    if raw.lstrip().startswith(THINK_OPEN):  # a trace that opened but never closed; "<think>" later is just text
        raise _Unreadable("the reasoning was never closed (<think> without </think>); output probably truncated")
    return raw


def parse_pairwise(text: str | None, *, untrusted: Iterable[str] = ()) -> PairwiseResult:
    """Read one pairwise judge answer into a verdict, or a failure saying why not.

    ``untrusted`` are the conversation and response texts shown to the judge: a verdict whose text appears
    verbatim in one of them is treated as copied, not judged.
    """
    raw = text if isinstance(text, str) else ""
    if not isinstance(text, str):
        return PairwiseResult(raw_text=raw, failure="no judge output")
    try:
        answer = _final_answer(raw)
        if not answer.strip():
            return PairwiseResult(raw_text=raw, failure="empty answer after the reasoning")
        located: tuple[str, Mapping[str, Any]] | None = _last_verdict_object(answer) or _boxed_verdict(answer)
        if located is None:
            return PairwiseResult(
                raw_text=raw,
                failure="no verdict found: expected a JSON object with score_1/score_2/ranking "
                "(or the \\boxed{} score blocks)",
            )
        verdict_text, values = located
        if _copied(raw, verdict_text, values, list(untrusted)):
            return PairwiseResult(raw_text=raw, failure=COPIED_FAILURE)
        return PairwiseResult(verdict=_verdict(values), raw_text=raw)
    except _Unreadable as exc:
        return PairwiseResult(raw_text=raw, failure=str(exc))
    except Exception as exc:  # last line of defence: model output must never take the caller down
        return PairwiseResult(raw_text=raw, failure=f"internal parser error: {type(exc).__name__}: {exc}")
