"""The evaluation loaders and the JudgeBench scorer on the benchmarks' published files.

The files are third-party data kept outside the project, in ``../shared/data`` next to the repository (or where
GENRM_SHARED_DATA points); tests that need one are skipped, saying which, when it is absent. HelpSteer3 has no local
file: its records are written here in the published shape.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shared_data import shared

from serve_app.__main__ import main
from serve_app.evaluation import metrics
from serve_app.evaluation.published import PublishedJudgment, load_judgebench_outputs, score_judgebench_outputs
from serve_app.evaluation.records import (
    RecordError,
    duplicate_item_ids,
    item_id,
    load_records,
    parse_records,
    rmbench_domain_of_file,
)
from serve_app.evaluation.report import RunMetadata
from serve_app.evaluation.runner import EvaluationRequest, OutputStore, load_all, score_all

PREFIXES = tuple(metrics.JUDGEBENCH_CATEGORIES)  # mmlu-pro, livebench-reasoning, livebench-math, livecodebench


def raw_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line]


def prefix_of(source: str) -> str:
    return next(p for p in PREFIXES if source.startswith(p))


# --------------------------------------------------------------------------------------------------------------
# JudgeBench


@pytest.mark.parametrize(
    ("name", "pairs", "sources", "labels"),
    [
        (
            "judgebench_gpt-4o-2024-05-13.jsonl",
            350,
            {"mmlu-pro": 154, "livebench-reasoning": 98, "livebench-math": 56, "livecodebench": 42},
            {"A>B": 193, "B>A": 157},
        ),
        (
            "judgebench_claude-3-5-sonnet-20240620.jsonl",
            270,
            {"mmlu-pro": 154, "livebench-reasoning": 51, "livebench-math": 34, "livecodebench": 31},
            {"A>B": 143, "B>A": 127},
        ),
    ],
)
def test_judgebench_splits_load_whole(name: str, pairs: int, sources: dict[str, int], labels: dict[str, int]) -> None:
    path = shared(f"judgebench/{name}")
    records = load_records(path, "judgebench")
    assert len(records) == pairs
    assert Counter(prefix_of(r.source) for r in records) == sources
    assert Counter(r.label for r in records) == labels
    assert duplicate_item_ids(records) == []  # pair_id is a usable resume key

    # original_id is an integer or null as published; integers are kept as their text, null as None.
    raw = [row["original_id"] for row in raw_rows(path)]
    assert {type(v) for v in raw} == {int, type(None)}
    assert [r.original_id for r in records] == [None if v is None else str(v) for v in raw]


def test_judgebench_original_id_may_be_int_string_or_null(tmp_path: Path) -> None:
    base = {
        "source": "livebench-math",
        "question": "q",
        "response_model": "m",
        "response_A": "a",
        "response_B": "b",
        "label": "A>B",
    }
    rows = [base | {"pair_id": "p1", "original_id": 7}, base | {"pair_id": "p2", "original_id": None}]
    rows.append(base | {"pair_id": "p3", "original_id": "lb-7"})
    rows.append(base | {"pair_id": "p4"})  # absent altogether
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert [r.original_id for r in load_records(path, "judgebench")] == ["7", None, "lb-7", None]
    path.write_text(json.dumps(base | {"pair_id": "p5", "original_id": ["x"]}) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match="field 'original_id'"):
        load_records(path, "judgebench")


# The official numbers (JudgeBench's compute_final_metrics with reverse_order=True), per ../shared/data/README.md.
GOLDEN = {
    "gpt-4o_arena_hard_o1-mini.jsonl": {
        "overall": 65.71,
        "mmlu-pro": 58.44,
        "livebench-reasoning": 62.24,
        "livebench-math": 82.14,
        "livecodebench": 78.57,
    },
    "gpt-4o_reward_model_Skywork-Reward-Gemma-2-27B.jsonl": {
        "overall": 64.29,
        "mmlu-pro": 59.74,
        "livebench-reasoning": 66.33,
        "livebench-math": 83.93,
        "livecodebench": 50.00,
    },
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_published_judgments_score_the_official_numbers(name: str) -> None:
    pairs = load_judgebench_outputs(shared(f"judgebench/outputs/{name}"))
    assert len(pairs) == 350 and all(len(p.judgments) == 2 for p in pairs)
    scores = score_judgebench_outputs(pairs).scores
    measured = {"overall": scores.accuracy}
    for prefix, category in metrics.JUDGEBENCH_CATEGORIES.items():
        measured[prefix] = scores.categories[category].accuracy
    assert {k: round(v, 2) for k, v in measured.items() if v is not None} == GOLDEN[name]
    assert {p: scores.categories[c].pairs for p, c in metrics.JUDGEBENCH_CATEGORIES.items()} == {
        "mmlu-pro": 154,
        "livebench-reasoning": 98,
        "livebench-math": 56,
        "livecodebench": 42,
    }


def test_score_judgebench_command_prints_the_official_table(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared("judgebench/outputs/gpt-4o_arena_hard_o1-mini.jsonl")
    assert main(["score-judgebench", str(path)]) == 0
    out = capsys.readouterr().out
    assert "model o1-mini-2024-09-12" in out
    for row in (
        "| Overall | 65.71 | 350 | 230 |",
        "| mmlu-pro (Knowledge) | 58.44 | 154 | 90 |",
        "| livecodebench (Coding) | 78.57 | 42 | 33 |",
    ):
        assert row in out
    assert "44 ties and 0 null decisions, each counted 0" in out


def judged(label: str, *decisions: str | None) -> PublishedJudgment:
    row = {
        "pair_id": "p",
        "source": "mmlu-pro-law",
        "question": "q",
        "response_A": "a",
        "response_B": "b",
        "label": label,
        "judgments": [{"judgment": {"judge_model": "m"}, "decision": d} for d in decisions],
    }
    return PublishedJudgment.model_validate(row)


@pytest.mark.parametrize(
    ("label", "decisions", "verdicts", "correct"),
    [
        # The B-first judgment names positions as shown: its "B>A" prefers the second shown, which is A, so
        # A-first "A>B" with B-first "B>A" are two votes for A.
        ("A>B", ("A>B", "B>A"), ("A>B", "A>B"), True),
        ("A>B", ("A>B", "A>B"), ("A>B", "B>A"), False),  # always the first shown: right + wrong
        ("B>A", ("B>A", "A>B"), ("B>A", "B>A"), True),
        ("B>A", ("A=B", "A>B"), (None, "B>A"), True),  # tie 0 + right 1
        ("A>B", (None, "A>B"), (None, "B>A"), False),  # null 0 + wrong −1
        ("A>B", ("A=B", "A=B"), (None, None), False),  # 0 + 0
        ("A>B", ("A>B",), ("A>B", None), True),  # one order only: its decision decides
        ("B>A", ("A>B",), ("A>B", None), False),
    ],
)
def test_judgment_orientation_and_ties(
    label: str, decisions: tuple[str | None, ...], verdicts: tuple[str | None, str | None], correct: bool
) -> None:
    pair = judged(label, *decisions)
    assert pair.verdicts() == verdicts
    result = score_judgebench_outputs([pair])
    assert result.scores.correct == int(correct)
    assert result.ties == decisions.count("A=B") and result.undecided == decisions.count(None)


def test_bad_judgment_files_say_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = judged("A>B", "A>B", "B>A").model_dump()
    path = tmp_path / "judged.jsonl"
    path.write_text(json.dumps(pair | {"judgments": [{"decision": "A>>B"}, {"decision": "B>A"}]}) + "\n")
    with pytest.raises(RecordError, match=r"record 1 \(line 1\).*field 'judgments\.0\.decision'"):
        load_judgebench_outputs(path)
    path.write_text(json.dumps(pair | {"judgments": [pair["judgments"][0]] * 3}) + "\n")
    with pytest.raises(RecordError, match="field 'judgments'"):
        load_judgebench_outputs(path)
    # A pairs file without judgments is refused, not scored as all-missing.
    path.write_text(json.dumps({k: v for k, v in pair.items() if k != "judgments"}) + "\n")
    assert main(["score-judgebench", str(path)]) == 1
    assert "field 'judgments': Field required" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------------
# RM-Bench

RMBENCH_FILES = {"chat": 129, "code": 228, "safety-refuse": 284, "safety-response": 157}


@pytest.mark.parametrize(("domain", "count"), sorted(RMBENCH_FILES.items()))
def test_rmbench_domain_files_load_with_their_domain(domain: str, count: int) -> None:
    path = shared(f"rmbench/{domain}_filtered.json")
    raw = raw_rows(path)
    assert all("domain" not in row for row in raw)  # as published: the file name is the domain
    records = load_records(path, "rmbench")
    assert len(records) == count
    assert {r.domain for r in records} == {domain}
    assert {r.scored_domain for r in records} == {metrics.rmbench_domain(domain)}
    assert {type(row["id"]) for row in raw} == {int}
    assert [r.id for r in records] == [str(row["id"]) for row in raw]
    assert duplicate_item_ids(records) == []
    assert all(len(r.chosen) == len(r.rejected) == 3 for r in records)


def test_all_rmbench_files_together() -> None:
    records = [r for d in RMBENCH_FILES for r in load_records(shared(f"rmbench/{d}_filtered.json"), "rmbench")]
    assert len(records) == 798
    assert Counter(r.scored_domain for r in records) == {"chat": 129, "code": 228, "safety": 284 + 157}


def test_rmbench_domain_option_overrides_the_file_name() -> None:
    path = shared("rmbench/chat_filtered.json")
    records = load_records(path, "rmbench", rmbench_domain="math")
    assert len(records) == 129 and {r.domain for r in records} == {"math"}


def rmbench_rows(domain: str | None = None) -> list[dict[str, Any]]:
    row: dict[str, Any] = {"id": 5, "prompt": "p", "chosen": ["a", "b", "c"], "rejected": ["d", "e", "f"]}
    return [row | ({"domain": domain} if domain else {})]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chat_filtered.json", "chat"),
        ("safety-response_filtered.jsonl.gz", "safety-response"),
        ("Code.parquet", "code"),
        ("math.json", "math"),
        ("total_dataset.json", None),
        ("chatty_filtered.json", None),
        ("filtered.json", None),
    ],
)
def test_domain_from_file_name(name: str, expected: str | None) -> None:
    assert rmbench_domain_of_file(Path("some/folder") / name) == expected


def test_rmbench_records_with_domain_and_without(tmp_path: Path) -> None:
    total = tmp_path / "total_dataset.json"
    total.write_text(json.dumps(rmbench_rows("safety-refuse") + rmbench_rows("code")), encoding="utf-8")
    assert [r.domain for r in load_records(total, "rmbench")] == ["safety-refuse", "code"]
    # A record's own domain wins over the file name.
    named = tmp_path / "chat_filtered.json"
    named.write_text(json.dumps(rmbench_rows("code")), encoding="utf-8")
    assert [r.domain for r in load_records(named, "rmbench")] == ["code"]
    # An explicit domain that contradicts a record's own is an error, not a silent relabel.
    with pytest.raises(RecordError, match="record 1: the record's domain is 'code' but 'chat' was given"):
        load_records(named, "rmbench", rmbench_domain="chat")

    # Nothing says the domain: the error lists the domains and both ways to give one.
    total.write_text(json.dumps(rmbench_rows()), encoding="utf-8")
    with pytest.raises(RecordError) as exc:
        load_records(total, "rmbench")
    message = str(exc.value)
    assert "record 1: the record has no 'domain' and 'total_dataset.json' names none" in message
    assert "chat, code, math, safety, safety-refuse, safety-response" in message
    assert "--rmbench-domain" in message and "<domain>_filtered.json" in message
    assert [r.domain for r in load_records(total, "rmbench", rmbench_domain="safety")] == ["safety"]
    assert [r.domain for r in parse_records(rmbench_rows(), "rmbench", rmbench_domain="code")] == ["code"]
    with pytest.raises(RecordError, match="no 'domain'"):
        parse_records(rmbench_rows(), "rmbench")

    with pytest.raises(RecordError, match=r"unknown RM-Bench domain 'safety-other' given; allowed: chat, code"):
        load_records(total, "rmbench", rmbench_domain="safety-other")
    with pytest.raises(RecordError, match="applies to rmbench only"):
        load_records(total, "judgebench", rmbench_domain="chat")


def test_rmbench_domain_reaches_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--rmbench-domain`` on the evaluate command: records without a domain count towards it in the report."""
    records = tmp_path / "records.json"
    records.write_text(json.dumps(rmbench_rows()), encoding="utf-8")
    out = tmp_path / "run"
    out.mkdir()
    reward = [{"principle": "correctness", "reward": 1.0}]
    item = {
        "benchmark": "rmbench",
        "item": "5",
        "principle": {k: reward for k in ("c0", "c1", "c2", "r0", "r1", "r2")},
        "pairwise": {f"c{i}|r{j}": None for i in range(3) for j in range(3)},
    }
    (out / "outputs.jsonl").write_text(json.dumps(item) + "\n", encoding="utf-8")
    command = ["evaluate", "--url", "http://127.0.0.1:9", "--report-only", "--rmbench", str(records)]
    command += ["--out", str(out)]

    assert main(command) == 1
    assert "--rmbench-domain" in capsys.readouterr().err
    assert main([*command, "--rmbench-domain", "math"]) == 0
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "average only math (no records for chat, code, safety)" in report
    without_rmbench = ["evaluate", "--url", "http://x", "--judgebench", str(records), "--out", str(out)]
    assert main([*without_rmbench, "--rmbench-domain", "math"]) == 2


def test_rmbench_domain_from_file_name_in_scores(tmp_path: Path) -> None:
    """A real per-domain file scored through the runner counts towards the domain its name states."""
    path = shared("rmbench/safety-response_filtered.json")
    loaded = load_all(EvaluationRequest(files={"rmbench": path}, out=tmp_path, limit=2))
    assert [r.domain for r in loaded["rmbench"]] == ["safety-response", "safety-response"]
    # Chosen rewarded above rejected: right in every cell.
    rewards = {f"c{i}": [{"principle": "correctness", "reward": 1.0}] for i in range(3)}
    rewards |= {f"r{j}": [{"principle": "correctness", "reward": 0.0}] for j in range(3)}
    pairs = {f"c{i}|r{j}": None for i in range(3) for j in range(3)}
    lines = [
        {"benchmark": "rmbench", "item": item_id(r), "principle": rewards, "pairwise": pairs} for r in loaded["rmbench"]
    ]
    (tmp_path / "outputs.jsonl").write_text("".join(json.dumps(o) + "\n" for o in lines), encoding="utf-8")
    principle = score_all(loaded, OutputStore(tmp_path), RunMetadata()).rmbench["principle"]
    assert list(principle.domains) == ["safety"] and principle.absent == ["chat", "code", "math"]
    assert principle.domains["safety"].records == 2 and principle.domains["safety"].accuracy == 100


# --------------------------------------------------------------------------------------------------------------
# HelpSteer3 (no local file: records in the published shape)


def helpsteer3_published() -> list[dict[str, Any]]:
    def opinion(score: int) -> dict[str, Any]:
        return {"score": score, "reasoning": "r", "feedback1": "f1", "feedback2": "f2"}

    return [
        {
            "domain": "code",
            "language": "python",
            "context": [
                {"role": "user", "content": "Write a sort."},
                {"role": "assistant", "content": "def s(x): return sorted(x)"},
                {"role": "user", "content": "In place, please."},
                {"role": "assistant", "content": "x.sort()"},
                {"role": "user", "content": "And descending?"},
            ],
            "response1": "x.sort(reverse=True)",
            "response2": "sorted(x)[::-1]",
            "overall_preference": -2,
            "individual_preference": [opinion(-2), opinion(-3), opinion(-1)],
        },
        {
            "domain": "general",
            "language": "english",
            "context": [{"role": "user", "content": "Hi"}],
            "response1": "Hello!",
            "response2": "Hi there.",
            "overall_preference": 0,  # a tie
            "individual_preference": [opinion(1), opinion(-1)],
        },
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_helpsteer3_ties_and_multi_turn_context(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"helpsteer3_validation{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(helpsteer3_published()), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in helpsteer3_published()), encoding="utf-8")
    multi, tie = load_records(path, "helpsteer3")
    assert [m.role for m in multi.context] == ["user", "assistant", "user", "assistant", "user"]
    assert multi.context[-1].content == "And descending?" and multi.overall_preference == -2
    assert tie.overall_preference == 0 and len(tie.individual_preference or []) == 2

    # Scored: the tie is excluded, the other record's label says response1.
    scores = metrics.helpsteer3_scores([(r.domain, r.overall_preference, -1) for r in (multi, tie)])
    assert (scores.scored, scores.correct, scores.ties_excluded) == (1, 1, 1)

    bad = helpsteer3_published()[0]
    bad["context"] = bad["context"][:-1]  # ends with the assistant: nothing left for the responses to answer
    with pytest.raises(RecordError, match=r"record 1: .*must end with a user turn"):
        parse_records([bad], "helpsteer3")


def test_helpsteer3_ties_through_the_runner(tmp_path: Path) -> None:
    path = tmp_path / "hs3.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in helpsteer3_published()), encoding="utf-8")
    out = tmp_path / "run"
    out.mkdir()
    request = EvaluationRequest(files={"helpsteer3": path}, out=out)
    loaded = load_all(request)
    lines = []
    for record in loaded["helpsteer3"]:
        rewards = {
            "1": [{"principle": "correctness", "reward": 2.0}],
            "2": [{"principle": "correctness", "reward": 0.5}],
        }
        lines.append({"benchmark": "helpsteer3", "item": item_id(record), "principle": rewards, "pairwise": {}})
    (out / "outputs.jsonl").write_text("".join(json.dumps(o) + "\n" for o in lines), encoding="utf-8")
    results = score_all(loaded, OutputStore(out), RunMetadata())
    principle = results.helpsteer3["principle"]
    assert (principle.scored, principle.correct, principle.ties_excluded) == (1, 1, 1)
    assert principle.domains["code"].accuracy == 100 and principle.domains["general"].scored == 0
