"""The structure a checkpoint's chat template writes around untrusted text, derived at start-up.

In the native format the checkpoint's own template renders the judge's roles. The 235B GenRM's template writes
section headers (``#### Evaluation Plan ####``), response delimiters (``[The End of Response 1]``) and one
``User: ...`` / ``Assistant: ...`` line per history turn, and escapes nothing: a candidate that writes these
strings adds them to the prompt, indistinguishable from the template's own. Which strings a template uses is only
known from the template, so they are read off it rather than listed by hand:

1. render the template with *sentinel* messages, one unique random-looking string per slot (system, user and
   assistant turns, principle, response_1, response_2), in the message shapes both judges send;
2. split the rendering on the sentinels: what is left is text the template itself contributes;
3. keep the parts of it that read as structure (the rule below) and hand them to
   :func:`deployments.text_safety.neutralize` with the tokenizer's special tokens.

Rule, per line of the template's own text (stripped; at most :data:`MAX_MARKER_WORDS` words and
:data:`MAX_MARKER_CHARS` characters, with a letter or digit in it):

- a *delimiter* is a line that starts with ``#`` (a markdown heading), ``[`` or ``<`` (a bracketed tag or a control
  token line such as ``<|im_start|>user``), or is framed by a decoration run (``=== X ===``, ``**X**``). It is
  defused wherever it appears in untrusted text.
- a *line prefix* is what starts the line a slot's content is written on (or the label line right above it), when it
  is one to four words ending in a colon (``User:``, ``Assistant:``, ``Response 1:``). It is defused only at the
  start of a line: elsewhere "User:" is an ordinary word.
- everything else is left alone: prose (the judge preamble, the scoring scale), code fences and JSON examples.
  Repeating such a line changes no section boundary, and defusing it would alter benign candidates.

Pure: no Ray or vLLM; ``jinja2`` is imported only when a bare template string has to be rendered.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from deployments.text_safety import line_start

MAX_MARKER_WORDS = 12
MAX_MARKER_CHARS = 100

#: Message slots the probes fill; each gets its own sentinel.
SLOTS: tuple[str, ...] = (
    "system",
    "user_1",
    "assistant_1",
    "user_2",
    "principle",
    "response_1",
    "response_2",
    "response",
)


def _sentinel(slot: str) -> str:
    # Letters and digits only, so no template filter (trim, split on </think>, escaping) can change it, and long
    # enough that no template text contains it by chance.
    digest = hashlib.sha256(f"genrm-template-probe:{slot}".encode()).hexdigest()[:20]
    return f"Zq{digest}Xj"


SENTINELS: dict[str, str] = {slot: _sentinel(slot) for slot in SLOTS}


def probe_conversations() -> list[list[dict[str, str]]]:
    """The message shapes both judges send in the native format, every content a sentinel. With and without a
    system turn and a principle, since a template may write different fixed text for each (a default evaluation
    plan, a default system prompt)."""
    s = SENTINELS

    def msg(role: str, slot: str) -> dict[str, str]:
        return {"role": role, "content": s[slot]}

    system = [msg("system", "system")]
    history = [msg("user", "user_1"), msg("assistant", "assistant_1"), msg("user", "user_2")]
    responses = [msg("response_1", "response_1"), msg("response_2", "response_2")]
    principle = [msg("principle", "principle")]
    judged = [msg("assistant", "response")]
    return [
        [*system, *history, *principle, *responses],  # pairwise judge with a principle
        [*history, *responses],  # pairwise judge, the template's default plan
        [*system, *history, *judged, *principle],  # principle judge
        [*history, *judged, *principle],
    ]


@dataclass(frozen=True)
class TemplateMarkers:
    """The structural strings of one chat template (sorted, unique)."""

    delimiters: tuple[str, ...] = ()
    line_prefixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "delimiters", tuple(sorted(set(self.delimiters))))
        object.__setattr__(self, "line_prefixes", tuple(sorted(set(self.line_prefixes))))

    def protected(self) -> tuple[str, ...]:
        """The form :func:`deployments.text_safety.neutralize` takes them in (with the special tokens)."""
        return (*self.delimiters, *(line_start(p) for p in self.line_prefixes))

    def __bool__(self) -> bool:
        return bool(self.delimiters or self.line_prefixes)


NO_MARKERS = TemplateMarkers()

_FRAMED = re.compile(r"([*=~\-])\1+.*[*=~\-]")
_LABEL = re.compile(r"[^\W\d_][^\W_]*(?: [^\W_]+){0,3}:")


def is_delimiter(line: str) -> bool:
    if not _marker_sized(line):
        return False
    return line[0] in "#[<" or _FRAMED.fullmatch(line) is not None


def is_line_prefix(line: str) -> bool:
    return _marker_sized(line) and _LABEL.fullmatch(line) is not None


def _marker_sized(line: str) -> bool:
    return (
        0 < len(line) <= MAX_MARKER_CHARS and len(line.split()) <= MAX_MARKER_WORDS and any(c.isalnum() for c in line)
    )


def fixed_lines(rendered: str, sentinels: Iterable[str]) -> Iterator[tuple[str, bool]]:
    """``(line, labels_a_slot)`` for each line of the template's own text in ``rendered``, stripped.

    ``labels_a_slot``: the line starts a line and is the last non-blank text before a sentinel, i.e. it is what
    the template writes in front of untrusted content (``User: `` or ``[The Start of Response 1]``).
    """
    parts = re.split("|".join(map(re.escape, sentinels)), rendered)
    for i, part in enumerate(parts):
        lines = part.split("\n")
        yield from ((line.strip(), False) for line in lines)
        if i == len(parts) - 1:
            continue
        nonblank = [j for j, line in enumerate(lines) if line.strip()]
        # Line 0 of a later part continues the previous sentinel's line, so it does not start a line.
        if nonblank and (nonblank[-1] > 0 or i == 0):
            yield lines[nonblank[-1]].strip(), True


def markers_of(renderings: Iterable[str], sentinels: Iterable[str] = SENTINELS.values()) -> TemplateMarkers:
    """Apply the rule (module docstring) to renderings of sentinel messages."""
    sentinels = tuple(sentinels)
    delimiters: set[str] = set()
    prefixes: set[str] = set()
    for rendered in renderings:
        for line, labels_a_slot in fixed_lines(rendered, sentinels):
            if is_delimiter(line):
                delimiters.add(line)
            elif labels_a_slot and is_line_prefix(line):
                prefixes.add(line)
    return TemplateMarkers(tuple(delimiters), tuple(prefixes))


def render_chat_template(
    source: Any, messages: Sequence[Mapping[str, str]], template_kwargs: Mapping[str, Any] | None = None
) -> str:
    """``messages`` rendered with a generation prompt, as the engine renders them: through the tokenizer's own
    ``apply_chat_template`` when it has one, else a bare template string (or a ``chat_template`` attribute) in a
    sandboxed jinja2 environment configured as Hugging Face configures it."""
    kwargs = dict(template_kwargs or {})
    if not isinstance(source, str) and hasattr(source, "apply_chat_template"):
        return str(source.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True, **kwargs))
    template = source if isinstance(source, str) else getattr(source, "chat_template", None)
    if not isinstance(template, str) or not template:
        raise ValueError("no chat template to render")
    if not isinstance(source, str):
        for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
            kwargs.setdefault(name, getattr(source, name, None))
    return _jinja(template).render(messages=list(messages), add_generation_prompt=True, **kwargs)


def _jinja(template: str) -> Any:
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **kw: Any) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, **kw)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def derive_template_markers(source: Any, template_kwargs: Mapping[str, Any] | None = None) -> TemplateMarkers:
    """The structural markers of ``source``'s chat template (a tokenizer, or a template string).

    Probe shapes the template refuses (``raise_exception``) or renders without their contents are skipped; a
    template that renders none of them cannot serve the native format, which is an error at start-up rather than a
    silent gap.
    """
    renderings: list[str] = []
    errors: list[str] = []
    for messages in probe_conversations():
        try:
            rendered = render_chat_template(source, messages, template_kwargs)
        except Exception as exc:  # a template may reject a shape: the other shapes still show its structure
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if any(s in rendered for s in SENTINELS.values()):
            renderings.append(rendered)
        else:
            errors.append("a rendering without any of the messages")
    if not renderings:
        raise ValueError(
            f"the chat template rendered none of the judge's native message shapes ({'; '.join(errors)}); the "
            f"native prompt format needs the checkpoint's own template"
        )
    return markers_of(renderings)


class PromptSettings(Protocol):
    """What of a judge's settings (``deployments.judge.JudgeSettings``) decides its markers; a protocol, so this
    module need not import the judge module, which imports it."""

    prompt_format: str
    chat_template_kwargs: dict[str, Any] | None


def native_template_markers(tokenizer: Any, settings: PromptSettings) -> TemplateMarkers:
    """What a judge neutralises on top of the special tokens: its template's markers in the native format, nothing
    in the rendered one (the project's own markers are covered by the neutraliser already)."""
    if settings.prompt_format != "native":
        return NO_MARKERS
    return derive_template_markers(tokenizer, settings.chat_template_kwargs)
