"""Benchmark records: their models, loading from .json / .jsonl / .parquet, stable ids and the math answer checker.

Formats (extra fields are ignored):

- ``rmbench`` (RM-Bench): ``{id, prompt, chosen: [3], rejected: [3], domain}``; the styles are ordered concise,
  detailed plain, detailed markdown; the domain is chat, code, math, safety-refuse or safety-response. The
  per-domain files (``chat_filtered.json``, ...) carry no ``domain``: it comes from the file name, or from the
  ``rmbench_domain`` argument (``--rmbench-domain``); only ``total_dataset.json`` has it in every record.
- ``judgebench`` (JudgeBench): ``{pair_id, original_id, source, question, response_model, response_A, response_B,
  label}`` with label ``A>B`` or ``B>A`` and a source whose prefix names the category; ``original_id`` is a
  number, a string or null in the published splits.
- ``helpsteer3`` (HelpSteer3 preference): ``{domain, language, context: [{role, content}], response1, response2,
  overall_preference}``; overall_preference in −3..3, negative when response1 is better.
- ``bestofn`` (this project's): ``{id, conversation: [{role, content}] or prompt, candidates: [...], answer and/or
  correct: [bool per candidate]}``; ``correct`` wins over checking ``answer``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deployments.chat import validate_history
from serve_app.evaluation.metrics import RMBENCH_DOMAIN_OF, RMBENCH_STYLES, judgebench_category, rmbench_domain

Benchmark = Literal["rmbench", "judgebench", "helpsteer3", "bestofn"]
BENCHMARKS: tuple[str, ...] = ("rmbench", "judgebench", "helpsteer3", "bestofn")
#: File endings load_records reads (a ``.gz`` on top of the JSON ones is decompressed).
SUFFIXES: tuple[str, ...] = (".json", ".jsonl", ".parquet", ".json.gz", ".jsonl.gz")


class RecordError(ValueError):
    """A benchmark file that cannot be read, or a record in it that does not fit its format."""


# --------------------------------------------------------------------------------------------------------------
# Record models


class _Record(BaseModel):
    # Ids and answers are often numbers in the published files; they are compared as text.
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)


class Message(_Record):
    role: Literal["system", "user", "assistant"]
    content: str


def _check_conversation(messages: list[Message]) -> list[Message]:
    """The judges' own rule (:func:`deployments.chat.validate_history`), so a record the service would refuse
    fails at load time instead of mid-run."""
    validate_history([m.model_dump() for m in messages])
    return messages


class RMBenchRecord(_Record):
    id: str
    prompt: str
    chosen: list[str]  # ordered as RMBENCH_STYLES
    rejected: list[str]
    domain: str  # as in the file: safety-refuse / safety-response stay apart here

    @field_validator("chosen", "rejected")
    @classmethod
    def _three_styles(cls, value: list[str]) -> list[str]:
        if len(value) != 3:
            raise ValueError(f"must hold exactly 3 responses, one per style {RMBENCH_STYLES}; got {len(value)}")
        return value

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, value: str) -> str:
        rmbench_domain(value)
        return value

    @property
    def scored_domain(self) -> str:
        """The domain this record counts towards: both safety sets are ``safety``."""
        return rmbench_domain(self.domain)


class JudgeBenchRecord(_Record):
    pair_id: str
    original_id: str | None = None  # null in 196 of the GPT-4o split's 350 pairs; unused in scoring
    source: str
    question: str
    response_model: str | None = None
    response_A: str
    response_B: str
    label: Literal["A>B", "B>A"]

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        judgebench_category(value)
        return value

    @property
    def category(self) -> str:
        return judgebench_category(self.source)


class HelpSteer3Record(_Record):
    domain: str = Field(min_length=1)
    language: str | None = None
    context: list[Message]
    response1: str
    response2: str
    overall_preference: int = Field(ge=-3, le=3)  # < 0: response1 better, 0: tie, > 0: response2 better
    individual_preference: list[Any] | None = None

    @field_validator("context")
    @classmethod
    def _conversation(cls, value: list[Message]) -> list[Message]:
        return _check_conversation(value)


class BestOfNRecord(_Record):
    id: str
    conversation: list[Message] | None = None
    prompt: str | None = None
    candidates: list[str] = Field(min_length=1)
    answer: str | None = None
    correct: list[bool] | None = None

    @field_validator("conversation")
    @classmethod
    def _conversation(cls, value: list[Message] | None) -> list[Message] | None:
        return value if value is None else _check_conversation(value)

    @model_validator(mode="after")
    def _complete(self) -> BestOfNRecord:
        if (self.conversation is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'conversation' (a list of messages) or 'prompt' (a string)")
        if self.answer is None and self.correct is None:
            raise ValueError("give 'answer' (the correct final answer) or 'correct' (one bool per candidate), or both")
        if self.correct is not None and len(self.correct) != len(self.candidates):
            raise ValueError(
                f"'correct' has {len(self.correct)} entries for {len(self.candidates)} candidates; give one bool per "
                f"candidate"
            )
        return self

    @property
    def messages(self) -> list[Message]:
        """The conversation the candidates answer (a bare prompt is one user turn)."""
        if self.conversation is not None:
            return self.conversation
        return [Message(role="user", content=self.prompt or "")]

    def candidates_correct(self) -> list[bool]:
        """Per candidate: ``correct`` when given, else whether its final answer equals ``answer``."""
        if self.correct is not None:
            return list(self.correct)
        assert self.answer is not None  # the validator requires one of the two
        return [is_correct(c, self.answer) for c in self.candidates]


Record = RMBenchRecord | JudgeBenchRecord | HelpSteer3Record | BestOfNRecord
RECORD_TYPES: dict[str, type[_Record]] = {
    "rmbench": RMBenchRecord,
    "judgebench": JudgeBenchRecord,
    "helpsteer3": HelpSteer3Record,
    "bestofn": BestOfNRecord,
}


def item_id(record: Record) -> str:
    """A stable id for resuming runs: RM-Bench ``id``, JudgeBench ``pair_id``, best-of-N ``id``; HelpSteer3 has
    none, so ``hs3-`` plus the first 16 hex digits of the SHA-256 of its context and two responses (canonical
    JSON), which survives reordering and re-exporting the file."""
    if isinstance(record, RMBenchRecord | BestOfNRecord):
        return record.id
    if isinstance(record, JudgeBenchRecord):
        return record.pair_id
    if isinstance(record, HelpSteer3Record):
        payload = {
            "context": [[m.role, m.content] for m in record.context],
            "response1": record.response1,
            "response2": record.response2,
        }
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return "hs3-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    raise TypeError(f"item_id needs a benchmark record ({', '.join(t.__name__ for t in RECORD_TYPES.values())})")


def duplicate_item_ids(records: Iterable[Record]) -> list[str]:
    """Item ids that occur more than once, in order of their second occurrence; a resumed run would take such
    records for one item, so a runner should refuse (or de-duplicate) them."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for record in records:
        key = item_id(record)
        if key in seen and key not in duplicates:
            duplicates.append(key)
        seen.add(key)
    return duplicates


# --------------------------------------------------------------------------------------------------------------
# Loading


def _plain(value: Any) -> Any:
    """Python values for what parquet/pandas/datasets hand back: numpy arrays become lists, numpy scalars numbers."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"field '{where}': {msg}" if where else msg)
    return "; ".join(parts)


#: Turns a row (a dict) into what the record model validates, or raises RecordError; gets the row's location.
RowHook = Callable[[dict[str, Any], str], dict[str, Any]]

_DOMAIN_OPTION = (
    "name the file <domain>_filtered.json as RM-Bench names its per-domain files, or give the domain "
    "(--rmbench-domain on the evaluate command, rmbench_domain= in load_records)"
)


def rmbench_domain_of_file(path: str | Path) -> str | None:
    """The RM-Bench domain a file name states: the part before ``_filtered`` (``code_filtered.json`` → code, the
    names RM-Bench publishes) or the whole stem when it is a domain (``safety-refuse.jsonl``); None when the name
    states none (``total_dataset.json``)."""
    name = Path(path).name.lower()
    stem = next((name[: -len(s)] for s in sorted(SUFFIXES, key=len, reverse=True) if name.endswith(s)), name)
    stem = stem.removesuffix("_filtered")
    return stem if stem in RMBENCH_DOMAIN_OF else None


def _rmbench_hook(benchmark: str, given: str | None, from_name: str | None, source: str) -> RowHook | None:
    """For RM-Bench, a hook that gives records without a ``domain`` the given one, else the file name's."""
    if given is not None:
        if benchmark != "rmbench":
            raise RecordError(f"a domain was given for {benchmark} records; rmbench_domain applies to rmbench only")
        if given not in RMBENCH_DOMAIN_OF:
            raise RecordError(f"unknown RM-Bench domain {given!r} given; allowed: {', '.join(RMBENCH_DOMAIN_OF)}")
    if benchmark != "rmbench":
        return None

    def fill(row: dict[str, Any], where: str) -> dict[str, Any]:
        own = row.get("domain")
        if own is None:
            domain = given or from_name
            if domain is None:
                raise RecordError(
                    f"{where}: the record has no 'domain' and {source!r} names none; allowed domains: "
                    f"{', '.join(RMBENCH_DOMAIN_OF)}; {_DOMAIN_OPTION}"
                )
            return {**row, "domain": domain}
        # A record's own domain wins over the file name (a guess), but contradicting an explicit one is an error.
        if given is not None and own != given:
            raise RecordError(
                f"{where}: the record's domain is {own!r} but {given!r} was given; give no domain for files whose "
                f"records carry their own (e.g. total_dataset.json)"
            )
        return row

    return fill


@overload
def parse_records(
    rows: Iterable[Any], benchmark: Literal["rmbench"], source: str = ..., *, rmbench_domain: str | None = ...
) -> list[RMBenchRecord]: ...
@overload
def parse_records(
    rows: Iterable[Any], benchmark: Literal["judgebench"], source: str = ..., *, rmbench_domain: str | None = ...
) -> list[JudgeBenchRecord]: ...
@overload
def parse_records(
    rows: Iterable[Any], benchmark: Literal["helpsteer3"], source: str = ..., *, rmbench_domain: str | None = ...
) -> list[HelpSteer3Record]: ...
@overload
def parse_records(
    rows: Iterable[Any], benchmark: Literal["bestofn"], source: str = ..., *, rmbench_domain: str | None = ...
) -> list[BestOfNRecord]: ...
def parse_records(
    rows: Iterable[Any], benchmark: Benchmark, source: str = "records", *, rmbench_domain: str | None = None
) -> list[Any]:
    """Validate rows already in memory (dicts, e.g. from ``datasets``); errors name ``source`` and the record
    number (1-based). ``rmbench_domain`` is the domain of RM-Bench rows that carry none."""
    model = _record_type(benchmark)
    hook = _rmbench_hook(benchmark, rmbench_domain, None, source)
    return [validate_row(model, row, benchmark, f"{source}: record {n}", hook) for n, row in enumerate(rows, start=1)]


def _record_type(benchmark: str) -> type[_Record]:
    try:
        return RECORD_TYPES[benchmark]
    except KeyError:
        raise RecordError(f"unknown benchmark {benchmark!r}; allowed: {', '.join(BENCHMARKS)}") from None


def validate_row(model: type[BaseModel], row: Any, what: str, where: str, hook: RowHook | None = None) -> Any:
    """One row (numpy values made plain, then passed through ``hook``) as ``model``, or a :class:`RecordError`
    naming ``where`` the row is, the format (``what``) and the field at fault. Loaders of other record types use it
    over :func:`read_rows`."""
    row = _plain(row)
    if not isinstance(row, dict):
        raise RecordError(f"{where}: expected a JSON object ({what} record), got {type(row).__name__}")
    if hook is not None:
        row = hook(row, where)
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        raise RecordError(f"{where}: not a valid {what} record: {_describe(exc)}") from None


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise RecordError(f"{path}: unsupported file type; allowed endings: {', '.join(SUFFIXES)}")


def _read_text(path: Path, compressed: bool) -> str:
    opener = gzip.open if compressed else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read()


def read_rows(path: str | Path) -> list[tuple[str, Any]]:
    """The raw rows of a ``.json`` (a list), ``.jsonl`` (one per line; blank lines skipped), either gzipped, or
    ``.parquet`` file, each with its location for error messages ("FILE: record N (line L)"). Raises
    :class:`RecordError` for a file that cannot be read or parsed."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such file")

    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise RecordError(f"{path}: reading .parquet needs pyarrow (pip install pyarrow)") from None
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:
            raise RecordError(f"{path}: not a readable parquet file: {exc}") from None
        return [(f"{path}: record {n}", row) for n, row in enumerate(rows, start=1)]

    compressed = suffix.endswith(".gz")
    try:
        text = _read_text(path, compressed)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise RecordError(f"{path}: cannot read as UTF-8{' gzip' if compressed else ''} text: {exc}") from None

    if suffix.startswith(".jsonl"):
        located = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}: record {len(located) + 1} (line {line_no})"
            try:
                located.append((where, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise RecordError(f"{where}: invalid JSON: {exc.msg} at column {exc.colno}") from None
        return located

    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "; a file with one record per line must end in .jsonl" if exc.msg == "Extra data" else ""
        raise RecordError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}") from None
    if not isinstance(rows, list):
        raise RecordError(f"{path}: a .json file must hold a list of records, got a {type(rows).__name__}")
    return [(f"{path}: record {n}", row) for n, row in enumerate(rows, start=1)]


@overload
def load_records(
    path: str | Path, benchmark: Literal["rmbench"], *, rmbench_domain: str | None = ...
) -> list[RMBenchRecord]: ...
@overload
def load_records(
    path: str | Path, benchmark: Literal["judgebench"], *, rmbench_domain: str | None = ...
) -> list[JudgeBenchRecord]: ...
@overload
def load_records(
    path: str | Path, benchmark: Literal["helpsteer3"], *, rmbench_domain: str | None = ...
) -> list[HelpSteer3Record]: ...
@overload
def load_records(
    path: str | Path, benchmark: Literal["bestofn"], *, rmbench_domain: str | None = ...
) -> list[BestOfNRecord]: ...
def load_records(path: str | Path, benchmark: Benchmark, *, rmbench_domain: str | None = None) -> list[Any]:
    """Read and validate one benchmark file (the formats of :func:`read_rows`). Raises :class:`RecordError`
    naming the file, the record (and its line in JSONL) and the field at fault.

    RM-Bench records without a ``domain`` get ``rmbench_domain`` when given, else the domain the file name states
    (:func:`rmbench_domain_of_file`); a record with its own domain keeps it, and must agree with ``rmbench_domain``.
    """
    path = Path(path)
    model = _record_type(benchmark)
    hook = _rmbench_hook(benchmark, rmbench_domain, rmbench_domain_of_file(path), path.name)
    return [validate_row(model, row, benchmark, where, hook) for where, row in read_rows(path)]


# --------------------------------------------------------------------------------------------------------------
# Math answer checker

_BOXED = "\\boxed"
# A LaTeX fraction of two plain numbers, e.g. \frac{3}{4} or \dfrac{-1}{2}.
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([-+]?[\d.,]+)\s*\}\s*\{\s*([-+]?[\d.,]+)\s*\}")
# A number as written in prose: optional sign (not a minus between two terms like "2-3"), thousands groups,
# decimals and an optional /denominator.
_NUMBER = re.compile(
    r"(?:(?<![\w)\]}])[-+])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|(?<!\d)[-+]?\.\d+"
)
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` whose braces balance (an unclosed one, e.g. a cut-off answer, is
    skipped)."""
    start = text.rfind(_BOXED)
    while start != -1:
        i = start + len(_BOXED)
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j].strip()
        start = text.rfind(_BOXED, 0, start)
    return None


def final_answer(text: str) -> str | None:
    """The final answer of a solution: the content of its last balanced ``\\boxed{...}``, else its last number
    (thousands separators, decimals, a sign and ``a/b`` fractions included; LaTeX ``\\frac{a}{b}`` read as a/b);
    None when there is neither."""
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(_LATEX_FRAC.sub(r"\1/\2", text))
    return numbers[-1].strip() if numbers else None


def normalize_answer(answer: str) -> str:
    """Canonical text of an answer: LaTeX fractions of numbers as a/b, LaTeX spacing (``\\,``, ``\\!``, ...), all
    whitespace and ``$`` (or ``\\$``) removed, trailing periods dropped, and thousands separators removed from a
    number written like ``1,000``."""
    s = _LATEX_FRAC.sub(r"\1/\2", answer)
    s = re.sub(r"\\[,;:! ]", "", s).replace("{,}", ",")
    s = "".join(s.split()).replace("\\$", "").replace("$", "").rstrip(".")
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    return s


def _as_number(s: str) -> Fraction | None:
    """An exact value for a normalised number ``x`` or fraction ``x/y`` (no exponents: "1e999999" stays text)."""
    num, slash, den = s.partition("/")
    if not _PLAIN_NUMBER.fullmatch(num) or (slash and not _PLAIN_NUMBER.fullmatch(den)):
        return None
    value = Fraction(num)
    if slash:
        d = Fraction(den)
        if d == 0:
            return None
        value /= d
    return value


def answers_match(a: str, b: str) -> bool:
    """Equal after :func:`normalize_answer`: numerically when both are numbers (3/4 = 0.75 = 0.750, 1,000 = 1000),
    otherwise as exact strings."""
    na, nb = normalize_answer(a), normalize_answer(b)
    va, vb = _as_number(na), _as_number(nb)
    if va is not None and vb is not None:
        return va == vb
    return na == nb


def is_correct(candidate: str, answer: str) -> bool:
    """Whether the candidate's :func:`final_answer` matches the reference ``answer`` (itself unwrapped from a
    ``\\boxed{}`` if it has one); a candidate without a final answer is wrong."""
    got = final_answer(candidate)
    if got is None:
        return False
    reference = _last_boxed(answer)
    return answers_match(got, reference if reference is not None else answer)
