"""How the principle judge's answer is read.

The judge reasons, then ends with ``Final Judgement: Yes`` or ``Final Judgement: No``. The reward is
logprob(Yes) - logprob(No) at the position that emitted that Yes/No token, each side clipped at
:data:`~policies.verdicts.LOGPROB_FLOOR` when the engine did not return it. Since both logprobs come from the same
softmax, this equals the logit difference the model card uses.

Input is the OpenAI-compatible ``choices[0].logprobs.content`` list. Ask vLLM for
:attr:`VerdictTokens.logprob_token_ids` (``logprob_token_ids``) so the Yes/No logprobs are present at every position.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deployments.text_safety import echo_context, occurs_in_untrusted
from policies.verdicts import LOGPROB_FLOOR, PrincipleResult

Answer = Literal["Yes", "No"]

# Only used to check a Qwen3 tokenizer against the model card, never to look tokens up.
QWEN3_IM_START_ID = 151644
QWEN3_YES_SPACE_ID = 7414
QWEN3_NO_SPACE_ID = 2308

COPIED_FAILURE = "verdict copied from untrusted text"

# "Final Judgement:" / "Final Judgment:", tolerant of whitespace and markdown emphasis ("**Final Judgement:**").
_JUDGEMENT = r"final\s+judge?ment\s*[*_]*\s*:\s*[*_]*\s*"
_JUDGEMENT_AT_END = re.compile(_JUDGEMENT + r"\Z", re.IGNORECASE)
_JUDGEMENT_WITH_ANSWER = re.compile(_JUDGEMENT + r"(yes|no)(?![a-z])", re.IGNORECASE)
_TOKEN_ID = re.compile(r"token_id:(\d+)\Z")


class TokenizerLike(Protocol):
    """The one method used: HF ``transformers`` tokenizers return ``list[int]``, ``tokenizers.Tokenizer`` an
    ``Encoding`` with ``.ids``; :func:`encode_ids` accepts both."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> Any: ...


def encode_ids(tokenizer: TokenizerLike, text: str) -> list[int]:
    encoded = tokenizer.encode(text, add_special_tokens=False)
    return [int(i) for i in getattr(encoded, "ids", encoded)]


def _looks_like_qwen3(tokenizer: TokenizerLike) -> bool:
    # <|im_start|> = 151644 only exists in vocabularies of Qwen2/3 size, so this also implies vocab >= 151643.
    try:
        return encode_ids(tokenizer, "<|im_start|>") == [QWEN3_IM_START_ID]
    except Exception:
        return False


class VerdictTokens(BaseModel):
    """Token ids of the four answer variants, looked up from the judge's tokenizer at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: field name -> the text that must encode to exactly one token
    VARIANTS: ClassVar[dict[str, str]] = {"yes_space": " Yes", "no_space": " No", "yes": "Yes", "no": "No"}

    yes_space: int
    no_space: int
    yes: int
    no: int

    @model_validator(mode="after")
    def _yes_and_no_differ(self) -> VerdictTokens:
        if {self.yes_space, self.yes} & {self.no_space, self.no}:
            raise ValueError(f"a Yes variant and a No variant share a token id: {self.model_dump()}")
        return self

    @classmethod
    def from_tokenizer(
        cls, tokenizer: TokenizerLike, *, family: Literal["auto", "qwen3", "other"] = "auto"
    ) -> VerdictTokens:
        """Look the variants up; for Qwen3 tokenizers (detected, or ``family="qwen3"``) check the card's ids."""
        ids: dict[str, int] = {}
        for field, text in cls.VARIANTS.items():
            encoded = encode_ids(tokenizer, text)
            if len(encoded) != 1:
                raise ValueError(
                    f"{text!r} encodes to {len(encoded)} tokens {encoded}; the principle judge reads the logprob of "
                    f"a single answer token, so this tokenizer cannot be used (expected a byte-level BPE tokenizer "
                    f"with a leading-space variant, such as Qwen3's)"
                )
            ids[field] = encoded[0]
        tokens = cls(**ids)
        if family == "qwen3" or (family == "auto" and _looks_like_qwen3(tokenizer)):
            expected = (QWEN3_YES_SPACE_ID, QWEN3_NO_SPACE_ID)
            if (tokens.yes_space, tokens.no_space) != expected:
                raise ValueError(
                    f"Qwen3 tokenizer gives ' Yes' = {tokens.yes_space} and ' No' = {tokens.no_space}, but the GenRM "
                    f"model card reads ids {expected[0]} and {expected[1]}. Load the judge checkpoint's own "
                    f"tokenizer (same folder as the weights); if this vocabulary is deliberately different, pass "
                    f"family='other'."
                )
        return tokens

    @property
    def logprob_token_ids(self) -> list[int]:
        """Ids to request with vLLM's ``logprob_token_ids`` (all variants, deduplicated, stable order)."""
        return list(dict.fromkeys([self.yes_space, self.no_space, self.yes, self.no]))

    def id_of_text(self, text: str) -> int | None:
        for field, variant in self.VARIANTS.items():
            if text == variant:
                return getattr(self, field)
        return None

    def text_of_id(self, token_id: int) -> str | None:
        for field, variant in self.VARIANTS.items():
            if getattr(self, field) == token_id:
                return variant
        return None

    def classify(self, token_id: int) -> tuple[Answer, bool] | None:
        """(answer, has leading space) for a variant id, else None."""
        if token_id == self.yes_space:
            return "Yes", True
        if token_id == self.no_space:
            return "No", True
        if token_id == self.yes:
            return "Yes", False
        if token_id == self.no:
            return "No", False
        return None

    def pair(self, spaced: bool) -> tuple[int, int]:
        """(Yes id, No id) of the variant family the judge actually generated."""
        return (self.yes_space, self.no_space) if spaced else (self.yes, self.no)


class TopLogprob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token: str
    logprob: float


class TokenLogprob(BaseModel):
    """One generated position of ``choices[0].logprobs.content``."""

    model_config = ConfigDict(extra="ignore")

    token: str
    logprob: float
    top_logprobs: list[TopLogprob] = Field(default_factory=list)

    @field_validator("top_logprobs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


Detokenize = Callable[[int], str]


def _token_id(token: str, tokens: VerdictTokens) -> int | None:
    """Id of a logprob token given as ``token_id:N``, or as text when it is one of the answer variants."""
    m = _TOKEN_ID.match(token)
    return tokens.id_of_text(token) if m is None else int(m.group(1))


def _resolve(token: str, tokens: VerdictTokens, detokenize: Detokenize | None) -> tuple[int | None, str | None]:
    """(id, text) of a generated token; either is None where it cannot be known."""
    token_id = _token_id(token, tokens)
    if _TOKEN_ID.match(token) is None:
        return token_id, token
    assert token_id is not None
    piece = tokens.text_of_id(token_id)
    if piece is None and detokenize is not None:
        try:
            piece = detokenize(token_id)
        except Exception:  # an id the caller's tokenizer does not know: treat its text as unknown
            piece = None
    return token_id, piece


def _clip(logprob: float | None) -> float:
    if logprob is None or math.isnan(logprob):
        return LOGPROB_FLOOR
    return min(max(logprob, LOGPROB_FLOOR), 0.0)


def judgement_snippet(text_before: str, judgement_start: int, verdict: str) -> str:
    """What must not appear in untrusted text for a verdict to count as the judge's own.

    The judgement line (from its start through the Yes/No) plus the last :data:`ECHO_CONTEXT_CHARS` characters
    before it, in :func:`~deployments.text_safety.echo_key` form. A candidate that merely contains
    "Final Judgement: Yes" does not match a judge that reasoned before its verdict; a judge that copied a forged
    block (context included) does.
    """
    line_start = text_before.rfind("\n", 0, judgement_start) + 1
    return f"{echo_context(text_before[:line_start])} {text_before[line_start:]}{verdict}"


def _text_judgement_copied(text: str | None, untrusted: Sequence[str]) -> bool:
    """The echo guard on the completion text as well: vLLM reports each generated token decoded on its own, so
    characters spread over several byte-level tokens (the neutraliser's substitutes among them) come back as
    U+FFFD in the joined pieces, and a copy of a neutralised candidate would not match there."""
    if not text or not untrusted:
        return False
    tm = _last_text_judgement(text)
    if tm is None:
        return False
    return occurs_in_untrusted(judgement_snippet(text[: tm.start(1)], tm.start(), tm.group(1)), untrusted)


def _last_text_judgement(text: str) -> re.Match[str] | None:
    matches = list(_JUDGEMENT_WITH_ANSWER.finditer(text))
    return matches[-1] if matches else None


def _text_answer(m: re.Match[str]) -> Answer:
    return "Yes" if m.group(1).lower() == "yes" else "No"


def parse_principle_text(
    text: str | None,
    *,
    principle: str,
    untrusted: Iterable[str] = (),
    reason: str = "no logprobs returned",
) -> PrincipleResult:
    """Read the answer from text alone (the engine returned no logprobs).

    Without logprobs there is no reward, so the result is always a failure (``reason``); ``answer`` is still set
    when the text holds a judgement, for callers that want a coarse fallback.
    """
    raw = text or ""
    m = _last_text_judgement(raw)
    if m is None:
        return PrincipleResult(
            principle=principle, raw_text=raw, failure=f"{reason}; no 'Final Judgement: Yes/No' in the judge output"
        )
    answer = _text_answer(m)
    if occurs_in_untrusted(judgement_snippet(raw[: m.start(1)], m.start(), m.group(1)), untrusted):
        return PrincipleResult(principle=principle, answer=answer, raw_text=raw, failure=COPIED_FAILURE)
    return PrincipleResult(principle=principle, answer=answer, raw_text=raw, failure=f"{reason} (text answer only)")


def parse_principle_logprobs(
    content: Sequence[Mapping[str, Any] | TokenLogprob] | None,
    *,
    principle: str,
    tokens: VerdictTokens,
    text: str | None = None,
    untrusted: Iterable[str] = (),
    detokenize: Detokenize | None = None,
) -> PrincipleResult:
    """Reward from the last Yes/No token that directly follows "Final Judgement:" in the generated tokens.

    ``content`` is ``choices[0].logprobs.content`` (dicts or :class:`TokenLogprob`); tokens may be text or
    ``token_id:N``. ``text`` is the generated text (kept as ``raw_text``; the tokens are joined when omitted).
    With ``token_id:N`` tokens the text before a position is only known when ``detokenize`` (id -> text) is given;
    otherwise the last Yes/No token is accepted if ``text`` ends its last judgement with the same answer.
    ``untrusted`` are the conversation/response texts for the echo guard. Never raises on model output.
    """
    untrusted = list(untrusted)
    if not content:
        return parse_principle_text(text, principle=principle, untrusted=untrusted)
    try:
        entries = [e if isinstance(e, TokenLogprob) else TokenLogprob.model_validate(e) for e in content]
    except (ValidationError, TypeError) as exc:  # e.g. a dict or a number instead of a list of positions
        return PrincipleResult(principle=principle, raw_text=text or "", failure=f"malformed logprobs: {exc}")

    resolved = [_resolve(e.token, tokens, detokenize) for e in entries]
    # Text is known for a prefix of the positions; offsets[i] = length of the generated text before position i.
    offsets = [0]
    for _, piece in resolved:
        if piece is None:
            break
        offsets.append(offsets[-1] + len(piece))
    known_text = "".join(piece or "" for _, piece in resolved[: len(offsets) - 1])
    raw = text if text is not None else known_text

    for i in range(len(entries) - 1, -1, -1):
        token_id, piece = resolved[i]
        if token_id is None or (kind := tokens.classify(token_id)) is None:
            continue
        answer, spaced = kind
        verdict_text = piece if piece is not None else answer
        if i < len(offsets):
            before = known_text[: offsets[i]]
            window_start = max(0, len(before) - 256)  # the judgement phrase is short; don't regex the whole trace
            m = _JUDGEMENT_AT_END.search(before, window_start)
            if m is None:
                continue
            snippet = judgement_snippet(before, m.start(), verdict_text)
        else:
            # token_id form without a detokenizer: only the text can confirm what precedes the last answer token.
            tm = _last_text_judgement(raw)
            if tm is None or _text_answer(tm) != answer:
                return PrincipleResult(
                    principle=principle,
                    raw_text=raw,
                    failure="cannot confirm the Yes/No token follows 'Final Judgement:' (token ids without a "
                    "detokenizer, and the text's last judgement does not match)",
                )
            snippet = judgement_snippet(raw[: tm.start(1)], tm.start(), tm.group(1))
        if occurs_in_untrusted(snippet, untrusted) or _text_judgement_copied(text, untrusted):
            return PrincipleResult(principle=principle, answer=answer, raw_text=raw, failure=COPIED_FAILURE)
        return _reward(entries[i], token_id, tokens, spaced, answer, principle, raw)

    split = _split_answer(entries, offsets, known_text, tokens, principle, raw, text, untrusted)
    if split is not None:
        return split
    tm = _last_text_judgement(raw)
    if tm is not None:
        return PrincipleResult(
            principle=principle,
            answer=_text_answer(tm),
            raw_text=raw,
            failure="the text has a judgement but no generated Yes/No token follows 'Final Judgement:'",
        )
    return PrincipleResult(
        principle=principle, raw_text=raw, failure="no 'Final Judgement: Yes/No' in the judge output"
    )


_ANSWER_AHEAD = re.compile(r"(\s?)(yes|no)(?![a-z])", re.IGNORECASE)


def _split_answer(
    entries: Sequence[TokenLogprob],
    offsets: Sequence[int],
    known_text: str,
    tokens: VerdictTokens,
    principle: str,
    raw: str,
    text: str | None,
    untrusted: Sequence[str],
) -> PrincipleResult | None:
    """The answer word came out in pieces (" N" + "o": a grammar-constrained decoder can force such splits), so no
    generated token is a Yes/No variant. The position right after the last "Final Judgement:" still holds the
    engine's logprobs of every variant (``logprob_token_ids``): that distribution is the judge's belief, read as
    usual. None when the text after that position is not a plain Yes/No."""
    for i in range(min(len(entries), len(offsets) - 1) - 1, -1, -1):
        before = known_text[: offsets[i]]
        m = _JUDGEMENT_AT_END.search(before, max(0, len(before) - 256))
        if m is None:
            continue
        ahead = _ANSWER_AHEAD.match(known_text, offsets[i])
        if ahead is None:
            return None
        answer: Answer = "Yes" if ahead.group(2).lower() == "yes" else "No"
        snippet = judgement_snippet(before, m.start(), ahead.group(2))
        if occurs_in_untrusted(snippet, untrusted) or _text_judgement_copied(text, untrusted):
            return PrincipleResult(principle=principle, answer=answer, raw_text=raw, failure=COPIED_FAILURE)
        # the variant family the judge was writing: a leading space or not; -1: the sampled piece is no variant
        return _reward(entries[i], -1, tokens, bool(ahead.group(1)), answer, principle, raw)
    return None


def _reward(
    entry: TokenLogprob,
    token_id: int,
    tokens: VerdictTokens,
    spaced: bool,
    answer: Answer,
    principle: str,
    raw: str,
) -> PrincipleResult:
    yes_id, no_id = tokens.pair(spaced)
    # The generated token's own logprob counts too: top_logprobs need not list the sampled token.
    candidates = [(token_id, entry.logprob)] + [(_token_id(a.token, tokens), a.logprob) for a in entry.top_logprobs]
    found: dict[int, float] = {}
    for alt_id, logprob in candidates:
        if alt_id in (yes_id, no_id) and not math.isnan(logprob):
            found[alt_id] = max(found.get(alt_id, -math.inf), logprob)
    yes_lp, no_lp = _clip(found.get(yes_id)), _clip(found.get(no_id))
    return PrincipleResult(
        principle=principle,
        reward=yes_lp - no_lp,
        yes_logprob=yes_lp,
        no_logprob=no_lp,
        answer=answer,
        raw_text=raw,
    )
