"""Benchmark records, scoring rules and the report, against hand-computed values."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from serve_app.evaluation.metrics import (
    bestofn_scores,
    first_shown_preferred,
    helpsteer3_scores,
    judgebench_category,
    judgebench_pair_score,
    judgebench_scores,
    position_consistency,
    position_consistency_from_positions,
    rmbench_cells,
    rmbench_difficulties,
    rmbench_scores,
)
from serve_app.evaluation.records import (
    BestOfNRecord,
    RecordError,
    answers_match,
    duplicate_item_ids,
    final_answer,
    is_correct,
    item_id,
    load_records,
    parse_records,
)
from serve_app.evaluation.report import PUBLISHED, EvaluationResults, RunMetadata, write_report

T, F, N = True, False, None
ALL_RIGHT = [[T, T, T], [T, T, T], [T, T, T]]

# --------------------------------------------------------------------------------------------------------------
# Fixture files


def rmbench_rows() -> list[dict]:
    return [
        {"id": 7, "prompt": "p1", "chosen": ["a", "b", "c"], "rejected": ["d", "e", "f"], "domain": "chat"},
        {
            "id": "s-1",
            "prompt": "p2",
            "chosen": ["a", "b", "c"],
            "rejected": ["d", "e", "f"],
            "domain": "safety-refuse",
            "extra": "ignored",
        },
    ]


def helpsteer3_rows() -> list[dict]:
    return [
        {
            "domain": "code",
            "language": "python",
            "context": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "sort a list"},
            ],
            "response1": "sorted(x)",
            "response2": "x.sort()",
            "overall_preference": -2,
            "individual_preference": [{"score": -2, "reasoning": "shorter"}],
        },
        {
            "domain": "general",
            "language": "english",
            "context": [{"role": "user", "content": "hello"}],
            "response1": "Hi!",
            "response2": "Hello there.",
            "overall_preference": 0,
            "individual_preference": [{"score": 0, "reasoning": "same"}],
        },
    ]


def write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --------------------------------------------------------------------------------------------------------------
# Loading


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_rmbench_round_trip(tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        rows = [{k: v for k, v in r.items() if k != "extra"} | {"id": str(r["id"])} for r in rmbench_rows()]
    else:
        rows = rmbench_rows()
    records = load_records(write(tmp_path / f"rm{suffix}", rows), "rmbench")
    assert [r.id for r in records] == ["7", "s-1"]  # a numeric id is read as text
    assert records[0].chosen == ["a", "b", "c"] and records[1].rejected == ["d", "e", "f"]
    assert [r.scored_domain for r in records] == ["chat", "safety"]
    assert [item_id(r) for r in records] == ["7", "s-1"]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_helpsteer3_round_trip_and_stable_ids(tmp_path: Path, suffix: str) -> None:
    records = load_records(write(tmp_path / f"hs{suffix}", helpsteer3_rows()), "helpsteer3")
    assert [r.overall_preference for r in records] == [-2, 0]
    assert [m.role for m in records[0].context] == ["user", "assistant", "user"]
    ids = [item_id(r) for r in records]
    assert ids[0] != ids[1] and all(i.startswith("hs3-") and len(i) == 20 for i in ids)

    # The id depends on the content only: the same in every format, blind to labels and metadata.
    reference = parse_records(helpsteer3_rows(), "helpsteer3")
    assert ids == [item_id(r) for r in reference]
    relabelled = parse_records([helpsteer3_rows()[0] | {"overall_preference": 3, "domain": "stem"}], "helpsteer3")
    assert item_id(relabelled[0]) == ids[0]
    edited = parse_records([helpsteer3_rows()[0] | {"response2": "x.sort() "}], "helpsteer3")
    assert item_id(edited[0]) != ids[0]
    assert duplicate_item_ids([*records, *relabelled, *edited]) == [ids[0]]


def test_parse_records_accepts_numpy_columns() -> None:
    # pandas / datasets hand list columns back as numpy arrays and integers as numpy scalars.
    row = {
        "id": np.int64(3),
        "prompt": "p",
        "chosen": np.array(["a", "b", "c"], dtype=object),
        "rejected": np.array(["d", "e", "f"]),
        "domain": "math",
    }
    (record,) = parse_records([row], "rmbench")
    assert record.id == "3" and record.rejected == ["d", "e", "f"]
    bare_numbers = {"id": "n", "prompt": "p", "candidates": np.array([10, 20]), "correct": np.array([True, False])}
    (record,) = parse_records([bare_numbers], "bestofn")
    assert record.candidates == ["10", "20"] and record.candidates_correct() == [True, False]


def test_judgebench_and_bestofn_load(tmp_path: Path) -> None:
    pair = {
        "pair_id": "p1",
        "original_id": 11,
        "source": "mmlu-pro-law",
        "question": "q",
        "response_model": "gpt-4o",
        "response_A": "a",
        "response_B": "b",
        "label": "B>A",
    }
    (record,) = load_records(write(tmp_path / "jb.jsonl", [pair]), "judgebench")
    assert (item_id(record), record.category, record.original_id) == ("p1", "Knowledge", "11")

    items = [
        {"id": "m1", "prompt": "2+2?", "candidates": ["\\boxed{4}", "5", "It is four: 4."], "answer": 4},
        {
            "id": "m2",
            "conversation": [{"role": "user", "content": "2+3?"}],
            "candidates": ["5", "5"],
            "answer": "5",
            "correct": [False, True],  # given labels win over the checker
        },
    ]
    first, second = load_records(write(tmp_path / "bon.json", items), "bestofn")
    assert first.answer == "4" and first.candidates_correct() == [True, False, True]
    assert first.messages[0].role == "user" and first.messages[0].content == "2+2?"
    assert second.candidates_correct() == [False, True]


def test_bad_record_names_file_record_line_and_field(tmp_path: Path) -> None:
    rows = rmbench_rows()
    rows[1]["chosen"] = ["only", "two"]
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as exc:
        load_records(path, "rmbench")
    message = str(exc.value)
    assert str(path) in message and "record 2 (line 3)" in message
    assert "field 'chosen'" in message and "exactly 3" in message and "got 2" in message


@pytest.mark.parametrize(
    ("benchmark", "row", "expected"),
    [
        ("rmbench", rmbench_rows()[0] | {"domain": "safety-other"}, "unknown RM-Bench domain 'safety-other'"),
        ("judgebench", {"pair_id": "x", "label": "A=B"}, "field 'label'"),
        ("helpsteer3", helpsteer3_rows()[0] | {"overall_preference": 4}, "field 'overall_preference'"),
        (
            "helpsteer3",
            helpsteer3_rows()[0]
            | {"context": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            "must end with a user turn",
        ),
        (
            "bestofn",
            {"id": "b", "prompt": "p", "conversation": [{"role": "user", "content": "p"}], "candidates": ["1"]},
            "exactly one of 'conversation'",
        ),
        ("bestofn", {"id": "b", "prompt": "p", "candidates": ["1"]}, "give 'answer'"),
        ("bestofn", {"id": "b", "prompt": "p", "candidates": ["1", "2"], "correct": [True]}, "one bool per candidate"),
    ],
)
def test_invalid_records_say_what_is_wrong(tmp_path: Path, benchmark: str, row: dict, expected: str) -> None:
    path = write(tmp_path / "one.json", [row])
    with pytest.raises(RecordError, match="record 1") as exc:
        load_records(path, benchmark)  # type: ignore[call-overload]
    assert expected in str(exc.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"unsupported file type; allowed endings: \.json, \.jsonl, \.parquet"):
        load_records(tmp_path / "data.csv", "rmbench")
    lines = tmp_path / "lines.json"
    lines.write_text('{"id": 1}\n{"id": 2}\n', encoding="utf-8")
    with pytest.raises(RecordError, match=r"must end in \.jsonl"):
        load_records(lines, "rmbench")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(rmbench_rows()[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"record 2 \(line 2\): invalid JSON"):
        load_records(broken, "rmbench")
    with pytest.raises(RecordError, match="unknown benchmark 'rewardbench'"):
        load_records(broken, "rewardbench")  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------------------------------
# Math checker


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so the answer is \\boxed{\\frac{3}{4}}.", "\\frac{3}{4}"),
        ("first \\boxed{3}, finally \\boxed{x^{2} + \\{1\\}}", "x^{2} + \\{1\\}"),
        ("\\boxed{7} and a cut-off \\boxed{8", "7"),  # an unclosed box is not an answer
        ("The total is 1,000 dollars.", "1,000"),
        ("First 12, then 7.", "7"),
        ("so x = 3/4", "3/4"),
        ("it drops to -4 degrees", "-4"),
        ("no digits here", None),
    ],
)
def test_final_answer(text: str, expected: str | None) -> None:
    assert final_answer(text) == expected


@pytest.mark.parametrize(
    ("candidate", "answer", "expected"),
    [
        ("\\boxed{\\frac{3}{4}}", "0.75", True),
        ("so x = 6/8.", "3/4", True),
        ("\\boxed{0.50}", "\\frac{1}{2}", True),
        ("The total is 1,000.", "1000", True),
        ("\\boxed{1,000,000}", "1000000", True),
        ("costs $12$.", "12", True),
        ("\\boxed{x + 1}", "x+1", True),
        ("\\boxed{x+1}", "x+2", False),
        ("\\boxed{4}", "5", False),
        ("it is -4", "4", False),
        ("no idea", "4", False),
        ("\\boxed{5}", "\\boxed{5}", True),
    ],
)
def test_is_correct(candidate: str, answer: str, expected: bool) -> None:
    assert is_correct(candidate, answer) is expected


def test_answers_match_is_exact_not_approximate() -> None:
    assert not answers_match("0.333", "1/3")
    assert not answers_match("1,2", "12")  # not a thousands group: a list stays text
    assert answers_match("1/0", "1/0") and not answers_match("1/0", "0")  # no division by zero


def test_bestofn_record_uses_checker_without_labels() -> None:
    record = BestOfNRecord(id="x", prompt="p", candidates=["\\boxed{3/4}", "0.7", "so 0.75"], answer="0.75")
    assert record.candidates_correct() == [True, False, True]


# --------------------------------------------------------------------------------------------------------------
# RM-Bench


def test_rmbench_cells_ties_and_missing_scores() -> None:
    assert rmbench_cells([3, 2, 1], [2, 2, 0]) == [[T, T, T], [F, F, T], [F, F, T]]  # 2 vs 2 is a tie: wrong
    assert rmbench_cells([None, 1, float("nan")], [0, 0, 0]) == [[N, N, N], [T, T, T], [N, N, N]]
    with pytest.raises(ValueError, match="exactly 3 chosen and 3 rejected"):
        rmbench_cells([1, 2], [1, 2, 3])


def test_rmbench_difficulties_are_triangles() -> None:
    m = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    easy, normal, hard = rmbench_difficulties(m)
    assert easy == pytest.approx((0.4 + 0.7 + 0.8) / 3)
    assert normal == pytest.approx((0.1 + 0.5 + 0.9) / 3)
    assert hard == pytest.approx((0.2 + 0.3 + 0.6) / 3)


def rmbench_fixture() -> list[tuple[str, list[list[bool | None]]]]:
    return [
        ("chat", rmbench_cells([3, 2, 1], [2, 2, 0])),
        ("chat", ALL_RIGHT),
        ("safety-refuse", ALL_RIGHT),
        ("safety-refuse", ALL_RIGHT),
        ("safety-response", rmbench_cells([None, 1, 1], [0, 0, 0])),
    ]


def test_rmbench_scores_by_hand() -> None:
    scores = rmbench_scores(rmbench_fixture())
    # chat: M = [[1, 1, 1], [.5, .5, 1], [.5, .5, 1]] → easy .5, normal 2.5/3, hard 1.
    chat = scores.domains["chat"]
    assert (chat.easy, chat.normal, chat.hard) == pytest.approx((50.0, 250 / 3, 100.0))
    assert chat.accuracy == pytest.approx(700 / 9)
    # safety: the two sets are one domain of 3 records, M = [[2/3] * 3, [1] * 3, [1] * 3] → easy 1, normal 8/9,
    # hard 7/9, accuracy 8/9. Averaging the two sets as separate domains would give (100 + 66.7) / 2 instead.
    safety = scores.domains["safety"]
    assert (safety.easy, safety.normal, safety.hard) == pytest.approx((100.0, 800 / 9, 700 / 9))
    assert safety.accuracy == pytest.approx(800 / 9)
    assert (safety.records, safety.missing, chat.missing) == (3, 3, 0)

    assert list(scores.domains) == ["chat", "safety"] and scores.absent == ["code", "math"]
    assert not scores.complete and scores.averaged_over == ["chat", "safety"]
    assert scores.overall == pytest.approx((700 / 9 + 800 / 9) / 2)
    assert (scores.easy, scores.normal, scores.hard) == pytest.approx((75.0, (250 / 3 + 800 / 9) / 2, 800 / 9))
    assert (scores.records, scores.missing) == (5, 3)


def test_rmbench_overall_is_mean_of_four_domains() -> None:
    hard_wrong = rmbench_cells([1, 2, 3], [0.5, 1.5, 2.5])  # only chosen[i] > rejected[j] for j ≤ i
    assert hard_wrong == [[T, F, F], [T, T, F], [T, T, T]]
    records = [*rmbench_fixture(), ("code", [[F] * 3] * 3), ("math", hard_wrong)]
    scores = rmbench_scores(records)
    assert scores.complete and scores.absent == []
    assert scores.domains["code"].accuracy == 0.0
    assert scores.domains["math"].accuracy == pytest.approx(200 / 3)  # easy 1, normal 1, hard 0
    assert scores.overall == pytest.approx((7 / 9 + 8 / 9 + 0 + 2 / 3) / 4 * 100)
    assert scores.overall == pytest.approx(np.mean([scores.easy, scores.normal, scores.hard]))


def test_rmbench_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown RM-Bench domain 'safety-other'"):
        rmbench_scores([("safety-other", ALL_RIGHT)])
    with pytest.raises(ValueError, match=r"cell \(1, 2\) is 1; allowed: True, False or None"):
        rmbench_scores([("chat", [[T, T, T], [T, T, 1], [T, T, T]])])
    with pytest.raises(ValueError, match="3×3"):
        rmbench_scores([("chat", [[T, T], [T, T]])])
    empty = rmbench_scores([])
    assert empty.overall is None and empty.records == 0 and empty.absent == ["chat", "code", "math", "safety"]


# --------------------------------------------------------------------------------------------------------------
# JudgeBench


def test_judgebench_pair_score() -> None:
    assert judgebench_pair_score("A>B", "A>B", "A>B") == 2
    assert judgebench_pair_score("A>B", "A>B", None) == 1  # right + missing: correct
    assert judgebench_pair_score("A>B", "A>B", "B>A") == 0  # right + wrong: not correct
    assert judgebench_pair_score("B>A", None, None) == 0
    assert judgebench_pair_score("B>A", "A>B", None) == -1
    with pytest.raises(ValueError, match="backward verdict is 'A=B'"):
        judgebench_pair_score("A>B", "A>B", "A=B")  # type: ignore[arg-type]


def test_judgebench_categories_by_prefix() -> None:
    assert judgebench_category("mmlu-pro-math") == "Knowledge"  # MMLU-Pro's math questions are Knowledge
    assert judgebench_category("livebench-math") == "Math"
    assert judgebench_category("livebench-reasoning") == "Reasoning"
    assert judgebench_category("livecodebench") == "Coding"
    with pytest.raises(ValueError, match="unknown JudgeBench source 'gsm8k'"):
        judgebench_category("gsm8k")


def test_judgebench_scores_by_hand() -> None:
    scores = judgebench_scores(
        [
            ("mmlu-pro-law", "A>B", "A>B", "A>B"),  # +2 correct
            ("mmlu-pro-math", "B>A", "B>A", "A>B"),  # 0: the orders disagree
            ("livebench-reasoning", "A>B", "A>B", None),  # +1 correct
            ("livebench-math", "B>A", None, None),  # 0
            ("livebench-math", "A>B", None, "A>B"),  # +1 correct
            ("livecodebench", "A>B", "B>A", "B>A"),  # -2
        ]
    )
    assert (scores.pairs, scores.correct, scores.accuracy, scores.missing_verdicts) == (6, 3, 50.0, 4)
    assert {c: s.accuracy for c, s in scores.categories.items()} == {
        "Knowledge": 50.0,
        "Reasoning": 100.0,
        "Math": 50.0,
        "Coding": 0.0,
    }
    assert scores.categories["Knowledge"].pairs == 2
    assert judgebench_scores([]).accuracy is None


# --------------------------------------------------------------------------------------------------------------
# HelpSteer3


def test_helpsteer3_scores_by_hand() -> None:
    scores = helpsteer3_scores(
        [
            ("general", -2, -1),  # right
            ("general", 3, 1),  # right
            ("general", 1, -1),  # wrong
            ("general", 0, 0),  # tied label: excluded even when "right"
            ("general", 0, 1),  # tied label: excluded
            ("stem", -1, 0),  # a predicted tie is wrong
            ("stem", 2, None),  # missing: wrong
            ("stem", -3, -1),  # right
            ("code", 0, -1),  # only a tie: nothing to score
        ]
    )
    assert (scores.scored, scores.correct, scores.ties_excluded, scores.missing) == (6, 3, 3, 1)
    assert scores.accuracy == 50.0
    assert scores.domains["general"].accuracy == pytest.approx(200 / 3)
    assert scores.domains["stem"].accuracy == pytest.approx(100 / 3)
    assert scores.domains["code"].accuracy is None and scores.domains["code"].ties_excluded == 1
    with pytest.raises(ValueError, match="predicted is 2; allowed: -1, 0, 1 or None"):
        helpsteer3_scores([("general", 1, 2)])
    with pytest.raises(ValueError, match="overall_preference is 4"):
        helpsteer3_scores([("general", 4, 1)])


# --------------------------------------------------------------------------------------------------------------
# Position consistency


def test_position_consistency_by_hand() -> None:
    assert first_shown_preferred("A>B", "forward") is True
    assert first_shown_preferred("A>B", "backward") is False  # backward shows B first
    assert first_shown_preferred(None, "backward") is None

    pairs = [
        ("A>B", "A>B"),  # consistent; first shown preferred forward only
        ("B>A", "B>A"),  # consistent; first shown preferred backward only
        ("A>B", "B>A"),  # inconsistent: the first-shown response wins both times
        ("A>B", None),  # one verdict: not judged both ways
        (None, None),
    ]
    scores = position_consistency(pairs)
    assert (scores.pairs, scores.both_orders, scores.consistent) == (5, 3, 2)
    assert scores.consistency == pytest.approx(200 / 3)
    assert (scores.verdicts, scores.first_preferred) == (7, 5)
    assert scores.first_preferred_share == pytest.approx(500 / 7)

    raw = [(T, F), (F, T), (T, T), (T, N), (N, N)]
    assert position_consistency_from_positions(raw) == scores


# --------------------------------------------------------------------------------------------------------------
# Best-of-N


def test_bestofn_scores_by_hand() -> None:
    scores = bestofn_scores(
        [
            ([T, F, F, F], {"knockout": (T, 3), "principle": (F, 4)}),
            ([F, F], {"knockout": (F, 1), "principle": (N, 2)}),
            ([T, T, F, T], {"knockout": (T, 3), "principle": (T, 4)}),
        ]
    )
    assert scores.records == 3
    assert scores.oracle == pytest.approx(200 / 3)
    assert scores.random_baseline == pytest.approx((0.25 + 0 + 0.75) / 3 * 100)
    knockout, principle = scores.strategies["knockout"], scores.strategies["principle"]
    assert (knockout.accuracy, knockout.mean_calls, knockout.missing) == pytest.approx((200 / 3, 7 / 3, 0))
    assert (principle.accuracy, principle.mean_calls, principle.missing) == pytest.approx((100 / 3, 10 / 3, 1))
    with pytest.raises(ValueError, match="no candidates"):
        bestofn_scores([([], {})])
    with pytest.raises(ValueError, match="judge_calls is -1"):
        bestofn_scores([([T], {"knockout": (T, -1)})])


# --------------------------------------------------------------------------------------------------------------
# Published numbers and the report


def test_published_numbers_are_self_consistent() -> None:
    principle = PUBLISHED["principle"].rmbench
    domains = np.mean([principle[d] for d in ("chat", "code", "math", "safety")])
    difficulties = np.mean([principle[d] for d in ("easy", "normal", "hard")])
    assert abs(domains - principle["overall"]) < 0.1 and abs(difficulties - principle["overall"]) < 0.1


def results() -> EvaluationResults:
    rm = rmbench_scores(rmbench_fixture())
    jb = judgebench_scores([("mmlu-pro-law", "A>B", "A>B", "A>B"), ("livecodebench", "A>B", "B>A", None)])
    return EvaluationResults(
        metadata=RunMetadata(
            service="http://127.0.0.1:8000",
            models={"principle": "nvidia/Qwen3-Nemotron-32B-GenRM-Principle", "pairwise": "smollm2-135m-pairwise"},
            items={"rmbench": 5, "judgebench": 2},
        ),
        rmbench={"ensemble": rm, "principle": rm},
        judgebench={"pairwise": jb},
        position_consistency={"judgebench": position_consistency([("A>B", "A>B"), ("B>A", None)])},
    )


def test_report_sets_measured_beside_published(tmp_path: Path) -> None:
    path = write_report(results(), tmp_path / "out")
    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / "out" / "report.md"
    for published in ("80.4", "92.0", "77.0", "95.5", "88.9", "86.4", "83.4", "86.2", "87.3", "74.6", "81.4", "87.4"):
        assert published in text
    assert "nvidia/Qwen3-Nemotron-235B-A22B-GenRM" in text
    assert "| Chat | 77.8 | 77.8 | 80.4 |" in text  # principle before ensemble, then the published column
    assert "| Safety | 88.9 | 88.9 | 95.5 |" in text
    assert "| Coding | 0.0 |" in text  # right + wrong is not correct
    assert "not comparable with the published numbers" in text  # only 2 of 4 RM-Bench domains
    assert "| pairwise | smollm2-135m-pairwise | nvidia/Qwen3-Nemotron-235B-A22B-GenRM" in text
    assert "## HelpSteer3" not in text and "## Best-of-N" not in text  # absent benchmarks are left out

    pytest.importorskip("matplotlib")
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs == ["judgebench.png", "position_consistency.png", "rmbench_difficulty.png", "rmbench_domains.png"]
    for name in pngs:
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text


def test_report_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    text = write_report(results(), tmp_path).read_text(encoding="utf-8")
    assert "matplotlib is not installed" in text and "86.2" in text
    assert not list(tmp_path.glob("*.png")) and ".png)" not in text
