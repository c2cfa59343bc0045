"""Neutralising untrusted text before it goes into a judge prompt.

Candidates come from policies under RL training, which learn to exploit their judge. Two attacks matter:

1. **Control strings.** A tokenizer turns ``<|im_end|>``, ``</think>`` and friends into real special tokens when
   they appear in text, so a candidate could close its own turn and write the judge's answer. Some tokenizers
   normalise (NFKC) before matching added tokens, so fullwidth look-alikes (``＜｜im_end｜＞``) are just as
   dangerous, and a model may still *read* a string with zero-width characters inside as the control string.
2. **Section delimiters.** The "rendered" prompts quote untrusted text between marker lines
   (``<<<BEGIN RESPONSE 1>>>`` … ``<<<END RESPONSE 1>>>``). A candidate that writes the closing marker could end
   its section early and append text that looks like the project's own instructions.

Matching happens on a *skeleton* of the text: each character is NFKD-decomposed, combining marks and invisible
characters are dropped, the result is case-folded, and Cyrillic/Greek letters that look Latin are folded to Latin.
This catches look-alikes, zero-width insertions and case variants with one set of patterns. Only the matched spans
are rewritten; all other text is left byte-identical, so benign candidates reach the judge unchanged.

Rewriting rule: inside a matched span, every character whose skeleton is one of ``< > | [ ]`` is replaced by a
visible look-alike that no normalisation maps back (``‹ › ¦ ⁅ ⁆``), and invisible characters are removed. So
``<|im_end|>`` becomes ``‹¦im_end¦›`` and ``<<<END RESPONSE 1>>>`` becomes ``‹‹‹END RESPONSE 1>>>``: still
readable to the judge, useless as structure. Because every pattern needs at least one of those characters and the
substitutes are not among them, the rewrite terminates and ``neutralize`` is idempotent.

3. **Template structure.** In the native format the checkpoint's own chat template writes its section headers
   (``#### Evaluation Plan ####``), response delimiters (``[The End of Response 1]``) and role prefixes
   (``User:`` at a line start) around untrusted text, and escapes nothing. ``deployments.template_markers`` derives
   these strings from the template; callers pass them with the special tokens. A protected string that starts
   with a punctuation character and holds a space or a heading run (``#``, ``**``, ``==``, ...) is a *delimiter*:
   matched anywhere, with any number of decoration characters, any spacing and without its closing decoration
   (``### evaluation plan``). A protected string that starts with a newline (:func:`line_start`) is a *line
   prefix*: matched only at the start of a line, after optional blanks or markdown emphasis, since "User:" is an
   ordinary word elsewhere. Inside these spans the decoration characters ``# * = ~ - :`` get visible substitutes
   as well (``♯ ∗ ꞊ ∼ ‐ ꞉``): ``♯♯♯♯ Evaluation Plan ♯♯♯♯``, ``⁅The End of Response 1⁆``, ``User꞉``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

#: The reasoning trace's delimiters in Qwen3-style models: what comes after the last THINK_CLOSE is the answer.
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

#: Control strings of ChatML / Qwen3 templates, and the added tokens of the CPU default's SmolLM2 vocabulary. Always
#: applied; callers can add more (e.g. a tokenizer's ``all_special_tokens``). Any other ``<|...|>``-shaped string is
#: caught by a generic pattern.
DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    THINK_OPEN,
    THINK_CLOSE,
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    # SmolLM2 (StarCoder-style vocabulary): its tokenizer turns these into added tokens when they appear in text,
    # yet its ``all_special_tokens`` lists only the three ChatML ones. The router passes the whole added vocabulary;
    # listing them here also covers callers that pass only ``all_special_tokens``.
    "<repo_name>",
    "<reponame>",
    "<file_sep>",
    "<filename>",
    "<gh_stars>",
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<jupyter_script>",
    "<empty_output>",
)

#: Structural character -> visible substitute. The substitutes are NFKC-stable and not look-alikes in the
#: skeleton sense, so a rewritten span can never match again.
SUBSTITUTES: dict[str, str] = {"<": "\u2039", ">": "\u203a", "|": "\u00a6", "[": "\u2045", "]": "\u2046"}
#: Inside a template delimiter or line prefix, the decoration characters as well: ``#### Evaluation Plan ####`` has
#: none of the characters above. Same properties (NFKC-stable, own skeleton, not word characters).
TEMPLATE_SUBSTITUTES: dict[str, str] = {
    **SUBSTITUTES,
    "#": "\u266f",  # ♯
    "*": "\u2217",  # ∗
    "=": "\ua78a",  # ꞊
    "~": "\u223c",  # ∼
    "-": "\u2010",  # ‐
    ":": "\ua789",  # ꞉
}
_UNSUBSTITUTE = str.maketrans({v: k for k, v in TEMPLATE_SUBSTITUTES.items()})
#: Used only for caller-supplied special tokens that contain none of the structural characters.
_BREAK = "\u00b7"

# Invisible characters that are not in Unicode category Cf but render as nothing (or as blank space).
_EXTRA_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0")

# Cyrillic and Greek letters (after case folding) that look like the Latin letters of our patterns: NFKD keeps
# them apart, so without this "<<<ЕND RЕSPONSE 1>>>" (Cyrillic Е) would pass as ordinary text.
_CONFUSABLES = str.maketrans(
    {
        **dict(zip("авеікмнорстухѕјүһԁԛԝӏ", "abeikmhopctyxsjyhdqwl", strict=True)),
        **dict(zip("αβεζηικμνορτυχ", "abezhikmnoptyx", strict=True)),
    }
)


def _is_invisible(ch: str) -> bool:
    cp = ord(ch)
    return (
        unicodedata.category(ch) == "Cf"
        or ch in _EXTRA_INVISIBLE
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors
        or 0xE0100 <= cp <= 0xE01EF  # variation selectors supplement
    )


@lru_cache(maxsize=65536)
def _char_skeleton(ch: str) -> str:
    """What one character contributes to the matching skeleton (possibly nothing, possibly several chars)."""
    if ch.isascii():
        return ch.lower()
    if _is_invisible(ch):
        return ""
    parts = (c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c) and not _is_invisible(c))
    return "".join(parts).casefold().translate(_CONFUSABLES)


assert all(
    unicodedata.normalize("NFKD", v) == v == v.casefold() and not v.isalnum() and v != "_"
    for v in TEMPLATE_SUBSTITUTES.values()
), "a substitute must keep its own skeleton and not be a word character, or a rewritten span could match again"


def _skeleton(text: str) -> tuple[str, list[int] | None]:
    """The skeleton and, for non-ASCII text, the index of the original character behind each skeleton char."""
    if text.isascii():  # fast path: skeleton is just lower-case, positions are identical
        return text.lower(), None
    pieces: list[str] = []
    owner: list[int] = []
    for i, ch in enumerate(text):
        sk = _char_skeleton(ch)
        if sk:
            pieces.append(sk)
            owner.extend([i] * len(sk))
    return "".join(pieces), owner


# --- section delimiters of the rendered prompts ----------------------------------------------------------------

#: Section names used by the project's rendered prompts. Every marker built from them is recognised (and
#: therefore defused) by the delimiter patterns below; tests check that.
SECTION_NAMES: tuple[str, ...] = ("CONVERSATION", "RESPONSE", "RESPONSE 1", "RESPONSE 2", "PRINCIPLE")
TURN_NAMES: tuple[str, ...] = ("SYSTEM", "USER", "ASSISTANT")


def open_marker(name: str) -> str:
    return f"<<<BEGIN {name}>>>"


def close_marker(name: str) -> str:
    return f"<<<END {name}>>>"


def turn_marker(role: str) -> str:
    return f"<<<{role.upper()}>>>"


def section(name: str, body: str) -> str:
    """Quote ``body`` (already neutralised) between the open/close markers of ``name``."""
    if name not in SECTION_NAMES:
        raise ValueError(f"unknown section {name!r}; add it to SECTION_NAMES so forgeries of it are caught")
    return f"{open_marker(name)}\n{body}\n{close_marker(name)}"


# Patterns run on the lower-case skeleton. Names end with `(?![a-z])` instead of `\b` so that "response_1" still
# counts. No separator is needed between action and name: the skeleton drops invisible characters, so
# "END\u200bRESPONSE" reads as "endresponse", and "<<<ENDRESPONSE 1>>>" is a forgery too.
_ACTION = r"(?:begin|end|start|stop)"
_NAME = r"(?:conversation|responses?|principle|user|assistant|system|turn)(?![a-z])"
_PHRASE = rf"{_ACTION}[\s_\-]*(?:of[\s_\-]*)?(?:the[\s_\-]*)?{_NAME}"
# "<<<END RESPONSE 1", "<< end_response", "<<</response>>>", "<<<USER>>>": two or more '<' then a marker phrase.
# The closing brackets are taken along when present, so the whole marker is defused in one go. Linear time on
# hostile input: the '<' run is bounded (of a longer run, the last nine are taken: the marker is still defused) and
# no two adjacent quantifiers can split the same whitespace; unbounded, "<" * 30_000 took tens of seconds.
_DELIM_OPEN = rf"<(?:\s*<){{1,8}}\s*(?:/\s*)?(?:{_PHRASE}|{_NAME}[\s_\-\d]*+(?=>))(?:[^<>\n]{{0,20}}?>(?:\s*>)*)?"
# "END RESPONSE 1>>>" without the opening brackets.
_DELIM_CLOSE = rf"(?<![a-z]){_PHRASE}[^<>\n]{{0,20}}?>\s*>"
# Any ChatML-style control token, known or not (e.g. "<|fim_prefix|>", DeepSeek's fullwidth-bar tokens).
_GENERIC_CONTROL = r"<\|[^|<>\s]{1,64}\|>"

_STRUCTURAL = frozenset(SUBSTITUTES)
_TEMPLATE_STRUCTURAL = frozenset(TEMPLATE_SUBSTITUTES)

# --- template structure (native format) ---------------------------------------------------------------------------

#: Marks a protected string as a line prefix (see :func:`line_start`).
LINE_START = "\n"
#: Decoration characters whose runs may have another length in a forgery: "### X ###" reads like "#### X ####".
_DECORATION = "#*=~-"
#: Decoration runs are bounded, so that matching stays linear on hostile input ("#" * 30_000).
_RUN_MAX = 16
#: Line breaks as ``str.splitlines`` knows them: a model reads all of them as one.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_BLANK = rf"[^\S{_LINE_BREAKS}]"
#: Spacing between the words of a marker: any blanks on the line, or none (words joined by a zero-width character).
#: Possessive, and never followed by another blank: each run of blanks is scanned once per attempt, so linear.
_GAP = rf"{_BLANK}*+"
#: Before a line prefix: a line start, then any blanks, markdown emphasis, heading or quote characters. Only line
#: starts pass the lookbehind and the lead stops at the next line break, so each character is scanned once.
_LINE_LEAD = rf"(?<![^{_LINE_BREAKS}])(?:{_BLANK}|[*_>#])*+"


def line_start(prefix: str) -> str:
    """The protected-string form of a role prefix (``"User:"``) that only matters at the start of a line."""
    return LINE_START + prefix.strip()


def _loose(skeleton: str, *, heading: bool = False) -> str:
    """A regex for ``skeleton`` that allows any spacing and any length of decoration runs."""
    out: list[str] = []
    for run in re.finditer(r"\s+|(.)\1*", skeleton):
        text, ch = run.group(), run.group(1)
        if ch is None:
            out.append(_GAP)
        elif ch in _DECORATION:
            # A single '#' opens a markdown heading; elsewhere a decoration needs two to read as a rule or emphasis.
            low = 1 if heading and ch == "#" else min(len(text), 2)
            out.append(f"{re.escape(ch)}{{{low},{max(_RUN_MAX, len(text))}}}")
        else:
            out.append(re.escape(text))
    return "".join(out)


def _delimiter_regex(skeleton: str) -> str:
    """The words with the opening decoration (the closing one is taken along when present), or with the closing
    decoration alone: "[The End of Response 1" and "The End of Response 1]" read as the marker too."""
    first = min(i for i, c in enumerate(skeleton) if c.isalnum())
    last = max(i for i, c in enumerate(skeleton) if c.isalnum())
    # Blanks between decoration and words are optional whatever the marker has: "[ The End of Response 1 ]".
    head = _loose(skeleton[:first].rstrip(), heading=True) + _GAP
    words, tail = _loose(skeleton[first : last + 1]), _loose(skeleton[last + 1 :].lstrip())
    # "(?![^\\W_])": "[The Start of Response 1]" must not match inside "[The Start of Response 12]".
    opened = f"{head}{words}(?![^\\W_])" + (f"(?:{_GAP}{tail})?" if tail else "")
    return f"{opened}|{words}{_GAP}{tail}" if tail else opened


def _prefix_regex(skeleton: str) -> str:
    body = skeleton.removesuffix(":").rstrip()
    return _loose(body) + (f"{_GAP}:" if skeleton.endswith(":") else r"(?![^\W_])")


def _is_delimiter(skeleton: str) -> bool:
    """Header-shaped: punctuation first, and a space or a decoration run (plain tokens such as ``<|im_end|>`` or
    ``[INST]`` keep literal matching)."""
    return (
        not skeleton[0].isalnum()
        and any(c.isalnum() for c in skeleton)
        and (any(c.isspace() for c in skeleton) or skeleton[0] in _DECORATION)
    )


@lru_cache(maxsize=64)
def _pattern(extra: tuple[str, ...]) -> re.Pattern[str]:
    tokens: set[str] = set()
    delimiters: set[str] = set()
    prefixes: set[str] = set()
    for t in (*DEFAULT_SPECIAL_TOKENS, *extra):
        sk = _skeleton(t.strip())[0]
        if not sk:
            continue
        if t.startswith(LINE_START):
            if any(c.isalnum() for c in sk):
                prefixes.add(sk)
        elif _is_delimiter(sk):
            delimiters.add(sk)
        else:
            tokens.add(_skeleton(t)[0])
    # Single characters cannot be told apart from ordinary text; longest first so the regex prefers full tokens.
    literals = sorted((t for t in tokens if len(t) >= 2), key=lambda t: (-len(t), t))
    alternatives = [*(re.escape(t) for t in literals), _GENERIC_CONTROL, _DELIM_OPEN, _DELIM_CLOSE]
    if delimiters:
        # Longest first, so that of two markers sharing a start the whole one is taken.
        found = "|".join(_delimiter_regex(d) for d in sorted(delimiters, key=lambda d: (-len(d), d)))
        alternatives.append(f"(?P<template>{found})")
    if prefixes:
        # Only the prefix itself is rewritten: the blanks and emphasis before it stay as they are.
        found = "|".join(_prefix_regex(p) for p in sorted(prefixes, key=lambda p: (-len(p), p)))
        alternatives.append(f"{_LINE_LEAD}(?P<prefix>{found})")
    return re.compile("|".join(alternatives))


@lru_cache(maxsize=64)
def _leading_words(extra: tuple[str, ...]) -> re.Pattern[str] | None:
    """The words of every protected delimiter (its decoration stripped), at the start of a text after blanks."""
    words = set()
    for t in extra:
        sk = _skeleton(t.strip())[0]
        if sk and not t.startswith(LINE_START) and _is_delimiter(sk):
            first = min(i for i, c in enumerate(sk) if c.isalnum())
            last = max(i for i, c in enumerate(sk) if c.isalnum())
            words.add(sk[first : last + 1])
    if not words:
        return None
    found = "|".join(_loose(w) for w in sorted(words, key=lambda w: (-len(w), w)))
    return re.compile(rf"{_GAP}(?:{found})(?![^\W_])")


def neutralize_after_heading(text: str, special_tokens: Iterable[str] = ()) -> str:
    """:func:`neutralize` for a slot the chat template writes right after a heading run (the GenRMs' templates put
    the principle directly after ``#### Evaluation Plan ####``): a text that opens with the words of a protected
    delimiter ("Scoring Guidelines ...") would read as that heading, so it starts on the next line instead."""
    tokens = _normalise_tokens(special_tokens)
    safe = _neutralize(text, tokens)
    pattern = _leading_words(tokens)
    return "\n" + safe if pattern is not None and pattern.match(_skeleton(safe)[0]) else safe


def _defuse(span: str, template: bool = False) -> str:
    """Rewrite one matched span so that its skeleton no longer matches anything (see module docstring)."""
    table, structural = (TEMPLATE_SUBSTITUTES, _TEMPLATE_STRUCTURAL) if template else (SUBSTITUTES, _STRUCTURAL)
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", span):
        if _is_invisible(ch):
            continue
        sk = _char_skeleton(ch)
        out.append(next((table[c] for c in sk if c in structural), ch))
    text = "".join(out)
    if not any(c in structural for c in _skeleton(span)[0]):
        # A caller-supplied token with no brackets or bars: break it up visibly instead.
        text = _BREAK.join(text)
    return text


def _spans(text: str, pattern: re.Pattern[str]) -> list[tuple[int, int, bool]]:
    """Matched spans in original-text coordinates, merged where they share characters, each with whether it is
    template structure (rewritten with :data:`TEMPLATE_SUBSTITUTES`)."""
    skel, owner = _skeleton(text)
    has_template = "template" in pattern.groupindex
    has_prefix = "prefix" in pattern.groupindex
    spans: list[tuple[int, int, bool]] = []
    for m in pattern.finditer(skel):
        is_prefix = has_prefix and m.start("prefix") >= 0
        lo, hi = m.span("prefix") if is_prefix else m.span()
        if hi == lo:
            continue
        template = is_prefix or (has_template and m.start("template") >= 0)
        start, end = (lo, hi) if owner is None else (owner[lo], owner[hi - 1] + 1)
        if spans and start < spans[-1][1]:  # one original char expanded into two matches
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]), spans[-1][2] or template)
        else:
            spans.append((start, end, template))
    return spans


def _normalise_tokens(special_tokens: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(special_tokens)))


def neutralize(text: str, special_tokens: Iterable[str] = ()) -> str:
    """Return ``text`` with every control string, section-delimiter forgery and template marker defused.

    ``special_tokens`` adds protected strings to :data:`DEFAULT_SPECIAL_TOKENS` (which always apply): the
    tokenizer's control tokens, and in the native format the chat template's structural markers (delimiters as
    they are, role prefixes in :func:`line_start` form; see ``deployments.template_markers``). Text without such
    strings is returned unchanged; the result is a fixed point (``neutralize(neutralize(t)) == neutralize(t)``).
    """
    return _neutralize(text, _normalise_tokens(special_tokens))


@lru_cache(maxsize=4096)
def _neutralize(text: str, special_tokens: tuple[str, ...]) -> str:
    # Cached: a best-of-N renders every candidate into many judge prompts.
    pattern = _pattern(special_tokens)
    # Every pattern needs a character of TEMPLATE_SUBSTITUTES (or is a caller token broken up with _BREAK), and
    # each pass replaces at least one by a substitute that no pattern uses, so this ends; real inputs take one to
    # four passes.
    for _ in range(64):
        spans = _spans(text, pattern)
        if not spans:
            return text
        # Joined once: splicing span by span copies the whole text per span (quadratic on a long repetition).
        pieces: list[str] = []
        done = 0
        for start, end, template in spans:
            pieces += (text[done:start], _defuse(text[start:end], template))
            done = end
        text = "".join(pieces) + text[done:]
    # Only conceivable with odd caller-supplied tokens: never fail on candidate text, defuse all of it instead.
    return _defuse(text, template=True)


def control_strings(text: str, special_tokens: Iterable[str] = ()) -> list[str]:
    """The substrings of ``text`` that :func:`neutralize` would rewrite (empty for safe text)."""
    pattern = _pattern(_normalise_tokens(special_tokens))
    return [text[s:e] for s, e, _ in _spans(text, pattern)]


def neutralize_all(texts: Sequence[str], special_tokens: Iterable[str] = ()) -> list[str]:
    tokens = _normalise_tokens(special_tokens)
    return [neutralize(t, tokens) for t in texts]


# --- echo detection ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def echo_key(text: str) -> str:
    """Canonical form for "did the judge copy this from untrusted text?" comparisons.

    NFKC, invisible characters dropped, neutralisation substitutes mapped back (the judge saw the neutralised
    text, the caller may pass the original), case-folded, and all whitespace removed, so that re-indenting a
    copied JSON object or re-wrapping a copied paragraph does not hide the copy. Cached: one best-of-N checks
    every verdict against the same candidates again and again.
    """
    s = unicodedata.normalize("NFKC", text)
    s = "".join(c for c in s if not _is_invisible(c)).translate(_UNSUBSTITUTE).casefold()
    return "".join(s.split())


#: Non-whitespace characters of the judge's own text kept before a verdict when checking for echoes. Long enough
#: that a candidate cannot match it by chance, short enough that a judge copying a forged block verbatim is caught.
ECHO_CONTEXT_CHARS = 48


def echo_context(text_before: str) -> str:
    """The last :data:`ECHO_CONTEXT_CHARS` characters before a verdict, in :func:`echo_key` form."""
    return echo_key(text_before[-8 * ECHO_CONTEXT_CHARS :])[-ECHO_CONTEXT_CHARS:]


def occurs_in_untrusted(snippet: str, untrusted: Iterable[str]) -> bool:
    """True when ``snippet`` (compared via :func:`echo_key`) appears verbatim inside any untrusted text."""
    key = echo_key(snippet)
    if not key:
        return False
    return any(key in echo_key(u) for u in untrusted)
