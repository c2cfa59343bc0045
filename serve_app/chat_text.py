"""Chat-template text back into a conversation and a response, for trainers that send decoded token text.

OpenRLHF sends each rollout as ``prompt + response`` decoded with the policy's tokenizer, special tokens kept; its
``prompts[i]`` is the prompt part. LLaMA-Factory sends only the whole decoded text; slime may send a templated
prompt string. The judges need messages, so the text is read back:

* **Turn formats.** ChatML (``<|im_start|>role\\n…<|im_end|>``: Qwen, SmolLM, many others), and the same shape with
  other markers: Llama 3 (``<|start_header_id|>role<|end_header_id|>\\n\\n…<|eot_id|>``) and Gemma
  (``<start_of_turn>role\\n…<end_of_turn>``, role ``model``). The policy's tokenizer folder, when configured, names
  the format (from its chat template) and its BOS/EOS/PAD tokens; without it the format is recognised per text.
* **Prompt.** Its turns become messages; the open assistant header at its end (the generation prompt, with any
  prefill such as Qwen3's empty ``<think></think>``) is dropped. Roles other than system/user/assistant (tool
  output, a later system turn) become user turns labelled with their role. A prompt in no known format, or one
  whose turns do not end with a user turn, is judged as one user turn holding the whole prompt text.
* **Response.** ``query[len(prompt):]`` when the query starts with its prompt (after stripping padding at the start
  of both); otherwise, and for full texts, whatever follows the last assistant header. Trailing turn-end, EOS and
  padding tokens are stripped, and with ``strip_reasoning`` the reasoning up to the last ``</think>`` is dropped (the
  judges rate the answer). An empty result becomes :data:`EMPTY_RESPONSE`, so an empty rollout gets a (low) reward
  instead of failing its group.

The judges neutralise control tokens in every text, so what a policy writes cannot forge turns in the judge's
prompt; here a forged marker can only change how its own rollout's text is split.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from deployments.chat import ChatMessage, validate_history
from deployments.text_safety import THINK_CLOSE, THINK_OPEN

#: what the judges see for a rollout with no answer text (only reasoning, cut off, or nothing at all)
EMPTY_RESPONSE = "(empty response)"

#: BOS/EOS/PAD tokens of common tokenizers, stripped at the edges of texts (a tokenizer folder adds its own)
COMMON_EDGE_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_end|>",
    "<s>",
    "</s>",
    "<pad>",
    "<unk>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|finetune_right_pad_id|>",
    "<bos>",
    "<eos>",
    "<end_of_turn>",
    "<|pad|>",
)


class TextSplitError(ValueError):
    """The text cannot be read as a prompt and a response; the message says why and what is expected."""


@dataclasses.dataclass(frozen=True)
class TurnFormat:
    """A chat template family: ``start`` role ``header_end`` content ``end`` per turn."""

    name: str
    start: str
    header_end: str
    end: str
    assistant_roles: tuple[str, ...] = ("assistant",)

    def role(self, raw: str) -> str:
        role = raw.strip().lower()
        return "assistant" if role in self.assistant_roles else role


CHATML = TurnFormat("chatml", "<|im_start|>", "\n", "<|im_end|>")
LLAMA3 = TurnFormat("llama3", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
GEMMA = TurnFormat("gemma", "<start_of_turn>", "\n", "<end_of_turn>", ("model", "assistant"))
TURN_FORMATS: tuple[TurnFormat, ...] = (CHATML, LLAMA3, GEMMA)


def _strip_leading(text: str, tokens: Sequence[str]) -> str:
    """Whitespace and any of ``tokens`` (padding, BOS) removed from the start, repeatedly."""
    while True:
        stripped = text.lstrip()
        for token in tokens:
            if stripped.startswith(token):
                stripped = stripped[len(token) :]
                break
        else:
            return stripped
        text = stripped


def _strip_trailing(text: str, tokens: Sequence[str]) -> str:
    while True:
        stripped = text.rstrip()
        for token in tokens:
            if stripped.endswith(token):
                stripped = stripped[: -len(token)]
                break
        else:
            return stripped
        text = stripped


def _label(role: str, content: str) -> str:
    return f"[{role}]\n{content}"


def content_text(content: Any) -> str:
    """A message's content: a string, or the text of its parts (``input_text``/``output_text``/``text``); parts
    without text (images, files) are left out."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"] for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def to_conversation(turns: Iterable[tuple[str, str]]) -> list[ChatMessage]:
    """(role, content) turns as the judges' conversation: leading system turns merged into one system message,
    user and assistant kept, any other role (tool output, a later system turn) a user turn labelled with its
    role. Raises ``ValueError`` (from :func:`~deployments.chat.validate_history`) unless it ends with a user turn."""
    messages: list[ChatMessage] = []
    system: list[str] = []
    for k, (role, content) in enumerate(turns):
        if role in ("system", "developer") and not messages:
            system.append(content)
            continue
        try:
            if role in ("user", "assistant"):
                messages.append(ChatMessage(role=role, content=content))
            else:
                messages.append(ChatMessage(role="user", content=_label(role, content)))
        except ValidationError as exc:  # its message, never the text (pydantic's own string echoes the input)
            raise ValueError(f"turn {k}: {exc.errors()[0]['msg']}") from None
    if system:
        try:
            messages.insert(0, ChatMessage(role="system", content="\n\n".join(system)))
        except ValidationError as exc:
            raise ValueError(f"system turn: {exc.errors()[0]['msg']}") from None
    return validate_history(messages)


@dataclasses.dataclass(frozen=True)
class PolicyText:
    """How one policy's templated text is read back (see the module docstring)."""

    #: the formats to recognise, in order; empty: the policy's template is of no known format (plain text)
    formats: tuple[TurnFormat, ...] = TURN_FORMATS
    edge_tokens: tuple[str, ...] = COMMON_EDGE_TOKENS
    strip_reasoning: bool = True

    # ---- building --------------------------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, folder: str | Path, *, strip_reasoning: bool = True) -> PolicyText:
        """From a local tokenizer folder (``tokenizer_config.json``, and ``chat_template.jinja`` when the template
        lives there): the template's format and the BOS/EOS/PAD tokens. Raises ``ValueError`` saying what is
        missing."""
        path = Path(folder).expanduser()
        config_file = path / "tokenizer_config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(
                f"cannot read {config_file} ({exc.strerror or exc}); name a local folder holding the policy's "
                f"tokenizer (tokenizer_config.json)"
            ) from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{config_file} is not JSON: {exc}") from None
        template = _template_text(config.get("chat_template"))
        jinja = path / "chat_template.jinja"
        if not template and jinja.is_file():
            template = jinja.read_text(encoding="utf-8")
        if not template:
            raise ValueError(
                f"{path} has no chat template (tokenizer_config.json 'chat_template' or chat_template.jinja); "
                f"without one the policy's text format is unknown"
            )
        specials = _token_texts(config, ("bos_token", "eos_token", "pad_token", "unk_token"))
        specials_map = path / "special_tokens_map.json"
        if specials_map.is_file():
            with contextlib.suppress(json.JSONDecodeError):  # tokenizer_config.json named them already
                specials += _token_texts(
                    json.loads(specials_map.read_text(encoding="utf-8")), ("bos_token", "eos_token", "pad_token")
                )
        formats = tuple(f for f in TURN_FORMATS if f.start in template)
        # Some tokenizers name their turn marker as BOS (SmolLM2: bos_token <|im_start|>): it must stay in the text.
        starts = {f.start for f in TURN_FORMATS}
        specials = [t for t in specials if t not in starts]
        edges = tuple(dict.fromkeys([*specials, *(f.end for f in formats), *COMMON_EDGE_TOKENS]))
        return cls(formats=formats[:1], edge_tokens=edges, strip_reasoning=strip_reasoning)

    # ---- reading ---------------------------------------------------------------------------------------------

    def _format_of(self, text: str) -> TurnFormat | None:
        return next((f for f in self.formats if f.start in text), None)

    def _turns(self, text: str, fmt: TurnFormat) -> list[tuple[str, str]] | None:
        """The closed turns of a templated prompt, the open generation header at its end dropped; None when the
        text is not a sequence of turns of ``fmt``."""
        body = _strip_leading(text, self.edge_tokens)
        if not body.startswith(fmt.start):
            return None
        pieces = body.split(fmt.start)[1:]
        turns: list[tuple[str, str]] = []
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            header, found, rest = piece.partition(fmt.header_end)
            role = fmt.role(header)
            if not found or fmt.end not in rest:
                # Only the generation prompt may be open: an assistant header, perhaps with a prefill after it.
                if last and role == "assistant":
                    break
                return None
            content, _, tail = rest.rpartition(fmt.end)
            if _strip_leading(tail, self.edge_tokens):
                return None  # text between turns: not this format
            turns.append((role, content.strip()))
        return turns

    def conversation(self, prompt: str) -> list[ChatMessage]:
        """The conversation a templated prompt holds (see the module docstring); raises :class:`TextSplitError`
        only for a prompt with no text at all."""
        fmt = self._format_of(prompt)
        if fmt is not None:
            turns = self._turns(prompt, fmt)
            if turns:
                try:
                    return to_conversation(turns)
                except ValueError:
                    pass  # e.g. it ends with an assistant turn: judged as plain text below
        plain = _strip_trailing(_strip_leading(prompt, self.edge_tokens), self.edge_tokens)
        if not plain:
            raise TextSplitError("the prompt is empty (nothing but whitespace and special tokens)")
        return [ChatMessage(role="user", content=plain)]

    def response(self, text: str) -> str:
        """A generated text as the judges should see it: end, EOS and padding tokens stripped, reasoning dropped
        (``strip_reasoning``), :data:`EMPTY_RESPONSE` when nothing is left."""
        ends = tuple(dict.fromkeys([*(f.end for f in self.formats), *self.edge_tokens]))
        answer = _strip_trailing(text, ends)
        if self.strip_reasoning:
            if THINK_CLOSE in answer:
                answer = answer.rpartition(THINK_CLOSE)[2]
            elif answer.lstrip().startswith(THINK_OPEN):
                answer = ""  # cut off while thinking: there is no answer
        answer = _strip_leading(answer, self.edge_tokens).strip()
        return answer or EMPTY_RESPONSE

    def split(self, text: str) -> tuple[list[ChatMessage], str]:
        """A full decoded text (prompt and response) split at its last assistant header; raises
        :class:`TextSplitError` when no known format's assistant header is in it."""
        fmt = self._format_of(text)
        if fmt is not None:
            cut = -1
            for role in fmt.assistant_roles:
                header = f"{fmt.start}{role}{fmt.header_end}"
                at = text.rfind(header)
                if at >= 0 and at + len(header) > cut:
                    cut = at + len(header)
            if cut >= 0:
                return self.conversation(text[:cut]), self.response(text[cut:])
        known = ", ".join(f"{f.name} ({f.start}{f.assistant_roles[0]}{f.header_end.strip()})" for f in self.formats)
        raise TextSplitError(
            "cannot tell where the response starts: the text has no assistant turn header of "
            + (
                f"a known chat format ({known})"
                if known
                else "the policy's format (its template is of no known family)"
            )
            + "; send the prompt separately, or use a policy with a ChatML, Llama 3 or Gemma template"
        )

    def split_query(self, query: str, prompt: str | None) -> tuple[list[ChatMessage], str]:
        """OpenRLHF's ``query`` (prompt + response) and ``prompts[i]``: the response is what follows the prompt,
        else what follows the query's last assistant header."""
        if prompt is not None:
            for q, p in (
                (query, prompt),
                (_strip_leading(query, self.edge_tokens), _strip_leading(prompt, self.edge_tokens)),
            ):
                if p and q.startswith(p):
                    return self.conversation(p), self.response(q[len(p) :])
        try:
            return self.split(query)
        except TextSplitError as exc:
            if prompt is None:
                raise
            raise TextSplitError(f"the query does not start with its prompt, and {exc}") from None


def _template_text(value: Any) -> str:
    """tokenizer_config.json's chat_template: a string, or a list of named templates (the default one first)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {t.get("name"): t.get("template", "") for t in value if isinstance(t, Mapping)}
        return str(named.get("default") or next(iter(named.values()), ""))
    return ""


def _token_texts(config: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    out = []
    for key in keys:
        value = config.get(key)
        if isinstance(value, Mapping):
            value = value.get("content")
        if isinstance(value, str) and value:
            out.append(value)
    return out


@functools.lru_cache(maxsize=8)
def policy_text(folder: str | None, strip_reasoning: bool = True) -> PolicyText:
    """The reader for a configured tokenizer folder (read once per process), or the format-detecting default."""
    if folder is None:
        return PolicyText(strip_reasoning=strip_reasoning)
    return PolicyText.from_folder(folder, strip_reasoning=strip_reasoning)
