"""Real items against the CPU default: every published JudgeBench pair and RM-Bench record fits the judges' context
(measured in SmolLM2's own tokens, as the router measures); a fixed sample; progress that reports failures and a
believable time left."""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_data import shared

from policies.verdicts import PairwiseResult, PrincipleResult
from serve_app.__main__ import main
from serve_app.evaluation.fit import budgets_from_serve_config, check_fit
from serve_app.evaluation.records import item_id, load_records
from serve_app.evaluation.runner import EvaluationRequest, ItemOutputs, Pair, Progress, item_failures, load_all

pytest.importorskip("transformers")
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
JUDGEBENCH = "judgebench/judgebench_gpt-4o-2024-05-13.jsonl"
RMBENCH = [f"rmbench/{d}_filtered.json" for d in ("chat", "code", "safety-refuse", "safety-response")]


@pytest.fixture(scope="module")
def cpu_budgets():  # type: ignore[no-untyped-def]
    return budgets_from_serve_config(str(ROOT / "config.yaml"))


def test_every_published_item_fits_the_cpu_default(cpu_budgets) -> None:  # type: ignore[no-untyped-def]
    """All 350 JudgeBench pairs and all 798 RM-Bench records: no item is refused under config.yaml's policy."""
    config, budgets = cpu_budgets
    assert set(budgets) == {"principle", "pairwise"}
    report = check_fit("judgebench", load_records(shared(JUDGEBENCH), "judgebench"), budgets)
    assert report.items == 350 and report.refused == 0, report.lines()
    pairwise = next(j for j in report.judges if j.judge == "pairwise")
    assert pairwise.calls == 350 and pairwise.longest_response_tokens > 1000  # real items are long
    records = [r for path in RMBENCH for r in load_records(shared(path), "rmbench")]
    report = check_fit("rmbench", records, budgets, policy=config.router.overlong)
    assert report.items == 798 and report.refused == 0, report.lines()
    assert next(j for j in report.judges if j.judge == "pairwise").calls == 9 * 798


def test_an_item_over_the_context_is_refused_or_truncated_by_policy(cpu_budgets) -> None:  # type: ignore[no-untyped-def]
    _, budgets = cpu_budgets
    (record,) = load_records(shared(JUDGEBENCH), "judgebench")[:1]
    long = record.model_copy(update={"response_B": "word " * 9000})
    rejected = check_fit("judgebench", [record, long], budgets, policy="reject")
    assert rejected.refused == 1
    assert all(j.items_over == 1 for j in rejected.judges)
    truncated = check_fit("judgebench", [record, long], budgets, policy="truncate")
    assert truncated.refused == 0 and truncated.judges[0].responses_over == 1
    no_room = record.model_copy(update={"question": "why " * 9000})
    assert check_fit("judgebench", [no_room], budgets, policy="truncate").refused == 1


def test_check_fit_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-fit", str(ROOT / "config.yaml"), "--rmbench", str(shared(RMBENCH[0]))]) == 0
    out = capsys.readouterr().out
    assert "129 items" in out and "0 items would be refused" in out


def test_a_sample_is_fixed_and_spread_over_the_file() -> None:
    path = shared(JUDGEBENCH)
    request = EvaluationRequest(files={"judgebench": path}, out=Path("unused"), sample=50, seed=0)
    first = [item_id(r) for r in load_all(request)["judgebench"]]
    again = [item_id(r) for r in load_all(request)["judgebench"]]
    assert first == again and len(set(first)) == 50
    everything = [item_id(r) for r in load_records(path, "judgebench")]
    assert first != everything[:50]  # not simply the head of the file
    sources = {r.category for r in load_all(request)["judgebench"]}
    assert len(sources) == 4
    other = EvaluationRequest(files={"judgebench": path}, out=Path("unused"), sample=50, seed=1)
    assert [item_id(r) for r in load_all(other)["judgebench"]] != first


def _pairwise_item(*pairs: Pair | None) -> ItemOutputs:
    return ItemOutputs(benchmark="judgebench", item="x", pairwise={f"p{k}": p for k, p in enumerate(pairs)})


def test_item_failures_count_failed_calls_and_timeouts() -> None:
    ok = PairwiseResult(verdict={"score_1": 4, "score_2": 2, "ranking": 2})
    timed_out = PairwiseResult(failure="pairwise judge call timed out: the judge answered no call for 300 s")
    item = _pairwise_item(Pair(forward=ok, backward=timed_out), None)
    item.principle = {
        "A": [PrincipleResult(principle="correctness", reward=1.0)],
        "B": [PrincipleResult(principle="correctness", failure="answer cut off at max_tokens")],
        "C": None,
    }
    assert item_failures(item) == (1 + 2 + 1 + 1, 1)
    assert item_failures(_pairwise_item(Pair(forward=ok, backward=ok))) == (0, 0)


def test_progress_rates_recent_items_not_the_whole_run() -> None:
    """Four items in flight finish late, then steadily: the time left follows the recent pace."""
    progress = Progress("judgebench", total=40, already=0)
    progress.t0 = 0.0
    progress.finished = [100.0, 100.5, 101.0, 101.5] + [101.5 + 10 * k for k in range(1, 11)]
    progress.done = len(progress.finished)
    now = progress.finished[-1]
    # the last 10 items took 100 s: 6/min, 26 items left ≈ 4.3 min (a whole-run average would say ~9 min)
    assert progress.rate(now) * 60 == pytest.approx(6.0, rel=0.01)
    line = progress.line(now)
    assert "14/40 items" in line and "~4 min left" in line and "0 failed judge calls (0 timeouts)" in line
