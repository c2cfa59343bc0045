"""The evaluation CLI scoring stored judge outputs: fixture records in the published formats and outputs written by
hand (ties, orders that disagree, missing verdicts), scored with ``--report-only`` and checked against values
computed by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from evaluation_fixtures import HELPSTEER3, write_fixtures

from serve_app.__main__ import main
from serve_app.evaluation.records import item_id
from serve_app.evaluation.report import RunMetadata
from serve_app.evaluation.runner import EvaluationRequest, OutputStore, load_all, score_all


def verdict(ranking: int | None) -> dict[str, Any]:
    """A pairwise call result: a ranking (1-3: the first shown is better), or a failure."""
    if ranking is None:
        return {"failure": "unreadable"}
    return {"verdict": {"score_1": 3, "score_2": 3, "ranking": ranking}}


def pair(forward: int | None, backward: int | None) -> dict[str, Any]:
    return {"forward": verdict(forward), "backward": verdict(backward)}


def rewards(value: float | None) -> list[dict[str, Any]]:
    if value is None:
        return [{"principle": "correctness", "failure": "no judgement"}]
    return [
        {
            "principle": "correctness",
            "reward": value,
            "yes_logprob": 0.0,
            "no_logprob": -abs(value) if value > 0 else 0.0,
        }
    ]


def hand_outputs() -> list[dict[str, Any]]:
    hs = {r["response1"]: item_id(load_records_row("helpsteer3", r)) for r in HELPSTEER3}
    # RM-Bench r1: rewards c = 2, 1, 0.5 and r = 1, 0, missing; pairwise: chosen wins both orders, except
    # c1|r0 where each order prefers the response shown first (a tie after debiasing) and c2|r2 with no verdicts.
    pairs_r1 = {f"c{i}|r{j}": pair(2, 5) for i in range(3) for j in range(3)}
    pairs_r1["c1|r0"] = pair(2, 2)
    pairs_r1["c2|r2"] = pair(None, None)
    r1 = {
        "benchmark": "rmbench",
        "item": "r1",
        "principle": {
            "c0": rewards(2),
            "c1": rewards(1),
            "c2": rewards(0.5),
            "r0": rewards(1),
            "r1": rewards(0),
            "r2": rewards(None),
        },
        "pairwise": pairs_r1,
    }
    # r2 (safety): every chosen response beats every rejected one for both judges.
    r2 = {
        "benchmark": "rmbench",
        "item": "r2",
        "principle": {**{f"c{i}": rewards(1) for i in range(3)}, **{f"r{j}": rewards(-1) for j in range(3)}},
        "pairwise": {f"c{i}|r{j}": pair(1, 6) for i in range(3) for j in range(3)},
    }
    judge = [
        # p1 (A>B): both orders right; principle right.
        {
            "benchmark": "judgebench",
            "item": "p1",
            "principle": {"A": rewards(1), "B": rewards(0)},
            "pairwise": {"A|B": pair(1, 6)},
        },
        # p2 (B>A): forward prefers A (wrong), backward prefers B (right): not correct. Principle tie: not correct.
        {
            "benchmark": "judgebench",
            "item": "p2",
            "principle": {"A": rewards(0.5), "B": rewards(0.5)},
            "pairwise": {"A|B": pair(2, 2)},
        },
        # p3 (B>A): forward missing, backward right: correct. Principle missing for A: not correct.
        {
            "benchmark": "judgebench",
            "item": "p3",
            "principle": {"A": rewards(None), "B": rewards(1)},
            "pairwise": {"A|B": pair(None, 1)},
        },
    ]
    helpsteer = [
        # label -2 (response1 better): pairwise slightly prefers response1 in both orders (right); principle prefers 2.
        {
            "benchmark": "helpsteer3",
            "item": hs["x1"],
            "principle": {"1": rewards(1), "2": rewards(2)},
            "pairwise": {"1|2": pair(3, 4)},
        },
        # label +1: pairwise has no verdict (missing, wrong); principle prefers 2 (right).
        {
            "benchmark": "helpsteer3",
            "item": hs["x2"],
            "principle": {"1": rewards(0), "2": rewards(1)},
            "pairwise": {"1|2": pair(None, None)},
        },
        # label 0: a tie, excluded whatever the judges say.
        {
            "benchmark": "helpsteer3",
            "item": hs["x3"],
            "principle": {"1": rewards(0), "2": rewards(1)},
            "pairwise": {"1|2": pair(1, 6)},
        },
    ]
    best = [
        {
            "benchmark": "bestofn",
            "item": "b1",
            "bestofn": {"knockout": {"index": 1, "judge_calls": 6}, "adaptive": {"index": 0, "judge_calls": 10}},
        },
        {
            "benchmark": "bestofn",
            "item": "b2",
            "bestofn": {"knockout": {"index": 0, "judge_calls": 2}, "adaptive": {"failure": "503", "judge_calls": 0}},
        },
    ]
    return [r1, r2, *judge, *helpsteer, *best]


def load_records_row(benchmark: str, row: dict[str, Any]) -> Any:
    from serve_app.evaluation.records import parse_records

    return parse_records([row], benchmark)[0]


@pytest.fixture
def scored(tmp_path: Path) -> Any:
    paths = write_fixtures(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "outputs.jsonl").write_text("".join(json.dumps(o) + "\n" for o in hand_outputs()))
    request = EvaluationRequest(files=paths, out=out)
    return score_all(load_all(request), OutputStore(out), RunMetadata(service="hand-written outputs"))


def test_rmbench_as_the_official_script_counts(scored: Any) -> None:
    # Principle, r1 (chat): cells c_i > r_j with r2 missing:
    #   [[T, T, -], [F(tie), T, -], [F, T, -]] -> hard (i<j) 1/3, normal 2/3, easy (i>j) 1/3.
    chat = scored.rmbench["principle"].domains["chat"]
    assert (chat.hard, chat.normal, chat.easy) == pytest.approx((100 / 3, 200 / 3, 100 / 3))
    assert chat.accuracy == pytest.approx(400 / 9) and chat.missing == 3
    safety = scored.rmbench["principle"].domains["safety"]  # safety-refuse counts as safety
    assert safety.accuracy == 100 and safety.records == 1
    assert scored.rmbench["principle"].overall == pytest.approx((400 / 9 + 100) / 2)
    assert scored.rmbench["principle"].complete is False  # two of four domains: not leaderboard-comparable
    # Pairwise, r1: every cell right except c1|r0 (orders disagree: a tie) and c2|r2 (no verdict).
    chat = scored.rmbench["pairwise"].domains["chat"]
    assert (chat.hard, chat.normal, chat.easy) == pytest.approx((100.0, 200 / 3, 200 / 3))
    assert chat.missing == 1
    # The ensemble agrees where both judges agree (all of r2).
    assert scored.rmbench["ensemble"].domains["safety"].accuracy == 100


def test_judgebench_pair_rule_and_position_consistency(scored: Any) -> None:
    pairwise = scored.judgebench["pairwise"]
    assert (pairwise.correct, pairwise.pairs, pairwise.missing_verdicts) == (2, 3, 1)
    assert pairwise.accuracy == pytest.approx(200 / 3)
    assert {c: s.accuracy for c, s in pairwise.categories.items()} == {"Knowledge": 100, "Math": 0, "Coding": 100}
    principle = scored.judgebench["principle"]
    assert (principle.correct, principle.pairs) == (1, 3)
    consistency = scored.position_consistency["judgebench"]
    assert (consistency.both_orders, consistency.consistent) == (2, 1)  # p1 agrees, p2 disagrees, p3 one order
    assert consistency.consistency == 50


def test_helpsteer3_preference_accuracy(scored: Any) -> None:
    pairwise = scored.helpsteer3["pairwise"]
    assert (pairwise.scored, pairwise.correct, pairwise.ties_excluded, pairwise.missing) == (2, 1, 1, 1)
    principle = scored.helpsteer3["principle"]
    assert (principle.scored, principle.correct, principle.accuracy) == (2, 1, 50)


def test_bestofn_accuracy_calls_and_baselines(scored: Any) -> None:
    best = scored.bestofn
    assert best.oracle == 100 and best.random_baseline == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)
    knockout, adaptive = best.strategies["knockout"], best.strategies["adaptive"]
    assert (knockout.accuracy, knockout.mean_calls) == (50, 4)
    assert (adaptive.accuracy, adaptive.missing, adaptive.mean_calls) == (50, 1, 5)


def test_report_only_writes_the_report_beside_the_published_numbers(tmp_path: Path) -> None:
    paths = write_fixtures(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "outputs.jsonl").write_text("".join(json.dumps(o) + "\n" for o in hand_outputs()))
    args = ["evaluate", "--url", "http://unused", "--out", str(out), "--report-only"]
    for benchmark, path in paths.items():
        args += [f"--{benchmark}", str(path)]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    assert "86.2" in report and "81.4" in report and "87.3" in report and "87.4" in report
    assert "66.7" in report  # the pairwise judge's JudgeBench accuracy
    assert list(out.glob("*.png")) or "matplotlib" in report
