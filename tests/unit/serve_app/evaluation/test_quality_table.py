"""bench/quality_table.py's offline scoring, on hand-built stored outputs (no service, no data files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_data import SHARED_DATA, shared

from bench import quality_table as qt
from policies.verdicts import PairVerdict, PairwiseResult, PrincipleResult
from serve_app.evaluation.records import JudgeBenchRecord, RMBenchRecord
from serve_app.evaluation.runner import ItemOutputs, OutputStore, Pair, score_rmbench


def _call(ranking: int, probs: tuple[float, ...] | None = None) -> PairwiseResult:
    return PairwiseResult(verdict=PairVerdict(ranking=ranking, ranking_probs=probs))


def _reward(value: float) -> list[PrincipleResult]:
    return [PrincipleResult(principle="correctness", reward=value)]


def _judgebench(pair_id: str, label: str = "A>B") -> JudgeBenchRecord:
    return JudgeBenchRecord(
        pair_id=pair_id, source="mmlu-pro-math", question="q", response_A="a", response_B="bb", label=label
    )


def _store(tmp_path: Path, items: list[ItemOutputs]) -> OutputStore:
    store = OutputStore(tmp_path)
    for item in items:
        store.add(item)
    return store


def _jb_item(pair_id: str, forward: PairwiseResult, backward: PairwiseResult, a: float, b: float) -> ItemOutputs:
    return ItemOutputs(
        benchmark="judgebench",
        item=pair_id,
        principle={"A": _reward(a), "B": _reward(b)},
        pairwise={"A|B": Pair(forward=forward, backward=backward)},
    )


def test_a_judge_that_prefers_the_first_shown_is_right_in_one_order_and_inconsistent(tmp_path: Path) -> None:
    # A is better. Forward (A first) ranks 2: prefers A. Backward (B first) ranks 2: prefers B.
    selected = {"judgebench": [_judgebench("p1")]}
    store = _store(tmp_path, [_jb_item("p1", _call(2), _call(2), a=1.0, b=-1.0)])
    pairs = qt.stored_pairs(selected, store)
    prefs = qt.preferences(pairs)
    assert prefs.values["forward"] == [1.5]
    assert prefs.values["backward"] == [-1.5]
    assert prefs.values["sampled"] == [0.0]  # the bias cancels and nothing is left: a tie, no verdict
    assert qt.consistent(pairs[0], "sampled") is False
    scores = qt.score(pairs, prefs, draws=20)
    assert scores["forward"].judgebench.value == 100.0
    assert scores["random_order"].judgebench.value == 50.0
    assert scores["sampled"].judgebench.value == 0.0
    assert scores["two_verdicts"].judgebench.value == 0.0  # one right + one wrong is not correct
    assert scores["principle"].judgebench.value == 100.0
    assert scores["sampled"].consistency["judgebench"].value == 0.0


def test_the_label_decides_which_response_is_better(tmp_path: Path) -> None:
    # The same verdicts with B labelled better: forward (A first, prefers A) is now wrong.
    selected = {"judgebench": [_judgebench("p1", label="B>A")]}
    store = _store(tmp_path, [_jb_item("p1", _call(2), _call(5), a=1.0, b=-1.0)])
    prefs = qt.preferences(qt.stored_pairs(selected, store))
    assert prefs.values["forward"] == [-1.5]
    assert prefs.values["backward"] == [-1.5]  # backward shows B first and ranks 5: prefers A too
    assert prefs.values["sampled"] == [-1.5]
    assert prefs.values["principle"] == [-2.0]


def test_soft_and_sampled_differ_where_the_belief_says_so(tmp_path: Path) -> None:
    # Both sampled rankings lean to A (3 forward, 4 backward), but the beliefs lean to B or not at all.
    forward = _call(3, (0.0, 0.0, 0.4, 0.6, 0.0, 0.0))  # E[3.5 − r] = −0.1
    backward = _call(4, (0.0, 0.0, 0.5, 0.5, 0.0, 0.0))  # E = 0
    selected = {"judgebench": [_judgebench("p1")]}
    store = _store(tmp_path, [_jb_item("p1", forward, backward, a=0.0, b=0.0)])
    pairs = qt.stored_pairs(selected, store)
    prefs = qt.preferences(pairs)
    assert prefs.values["sampled"] == [pytest.approx(0.5)]
    assert prefs.values["soft"] == [pytest.approx(-0.05)]
    assert qt.consistent(pairs[0], "sampled") is True
    assert qt.consistent(pairs[0], "soft") is False
    scores = qt.score(pairs, prefs, draws=20)
    assert scores["sampled"].judgebench.value == 100.0
    assert scores["soft"].judgebench.value == 0.0
    assert scores["principle"].judgebench.value == 0.0  # equal rewards: a tie is no verdict


def _rmbench(record_id: str, chosen_first: bool) -> tuple[RMBenchRecord, ItemOutputs]:
    """A record whose judge always prefers the response shown first (or always the chosen one)."""
    record = RMBenchRecord(
        id=record_id,
        prompt="p",
        chosen=["c", "c c", "# c\n- c"],
        rejected=["r", "r r", "# r\n- r"],
        domain="chat",
    )
    backward = _call(2) if chosen_first else _call(5)  # 2: the first shown (rejected); 5: the second (chosen)
    pairwise = {f"c{i}|r{j}": Pair(forward=_call(2), backward=backward) for i in range(3) for j in range(3)}
    principle = {**{f"c{i}": _reward(1.0) for i in range(3)}, **{f"r{j}": _reward(0.0) for j in range(3)}}
    item = ItemOutputs(benchmark="rmbench", item=record_id, principle=principle, pairwise=pairwise)
    return record, item


def test_rmbench_readings_match_the_runner_and_split_the_orders(tmp_path: Path) -> None:
    biased, b_item = _rmbench("chat/1", chosen_first=True)
    fair, f_item = _rmbench("chat/2", chosen_first=False)
    selected = {"rmbench": [biased, fair]}
    store = _store(tmp_path, [b_item, f_item])
    pairs = qt.stored_pairs(selected, store)
    assert len(pairs) == 18
    prefs = qt.preferences(pairs)
    scores = qt.score(pairs, prefs, draws=50)
    runner = score_rmbench([biased, fair], store)
    for method, judge in (("sampled", "pairwise"), ("principle", "principle"), ("ensemble", "ensemble")):
        assert scores[method].rmbench["overall"].value == pytest.approx(runner[judge].overall)
    assert scores["forward"].rmbench["overall"].value == 100.0  # chosen is always shown first
    assert scores["random_order"].rmbench["overall"].value == 75.0  # backward: right on one record of two
    assert scores["sampled"].rmbench["overall"].value == 50.0  # the biased record's ties are wrong
    assert scores["sampled"].consistency["rmbench"].value == 50.0
    assert scores["sampled"].rmbench_vs_sampled.value == 0.0
    assert scores["forward"].rmbench_vs_sampled.value == 50.0


def test_removing_a_style_effect_breaks_ties_against_the_style_the_judge_likes() -> None:
    # The better response is the longer one and the judge favours length (offset > 0): a tie becomes wrong.
    assert qt.style_free(0.0, 1.0) < 0
    assert qt.style_free(0.0, -1.0) > 0
    assert qt.style_free(0.5, 0.0) == pytest.approx(0.1)
    assert qt.style_free(2.5, 10.0) > 0  # a unanimous verdict is never overturned
    assert qt.style_free(None, 1.0) is None


def test_the_sample_is_a_prefix_so_a_run_can_grow() -> None:
    records = [_judgebench(f"p{k}") for k in range(30)]
    small = qt.pick(records, 5, (0, 2), max_chars=10_000)
    large = qt.pick(records, 12, (0, 2), max_chars=10_000)
    assert large[:5] == small
    assert qt.pick(records, 5, (0, 2), max_chars=1) == []  # every record is over the cap


def test_the_report_renders_every_method(tmp_path: Path) -> None:
    record, item = _rmbench("chat/1", chosen_first=False)
    selected = {"rmbench": [record], "judgebench": [_judgebench("p1")]}
    _store(tmp_path, [item, _jb_item("p1", _call(2), _call(2), a=1.0, b=-1.0)])
    text, data = qt.report(["--out", str(tmp_path)], qt.RecordSample(), selected, tmp_path, draws=20)
    for _, label in qt.METHODS:
        assert label in text
    assert "`python -m bench.quality_table --out OUT`" in text
    assert data["records"] == {"rmbench": {"chat": 1, "safety": 0}, "judgebench": 1}


def test_the_sample_of_the_published_files_is_under_the_cap_with_distinct_ids() -> None:
    for name in (qt.JUDGEBENCH_FILE, *(f for files in qt.RMBENCH_FILES.values() for f in files)):
        shared(name)
    selected = qt.select(qt.RecordSample(chat=5, safety=20, judgebench=10), SHARED_DATA)
    rmbench = selected["rmbench"]
    assert len(rmbench) == 25 and len(selected["judgebench"]) == 10
    assert len({r.id for r in rmbench}) == 25  # the per-domain files reuse ids; the prefix keeps them apart
    assert all(qt.record_chars(r) <= qt.RecordSample.rmbench_max_chars for r in rmbench)
    assert all(qt.record_chars(r) <= qt.RecordSample.judgebench_max_chars for r in selected["judgebench"])
    assert {r.domain for r in rmbench[5:]} <= {"safety-refuse", "safety-response"}


def test_intervals_need_enough_records(tmp_path: Path) -> None:
    ids = [f"p{k}" for k in range(6)]
    items = [_jb_item(i, _call(2), _call(5 if k % 2 else 2), a=1.0, b=0.0) for k, i in enumerate(ids)]
    store = _store(tmp_path, items)
    few = qt.stored_pairs({"judgebench": [_judgebench(i) for i in ids[: qt.MIN_BOOTSTRAP - 1]]}, store)
    many = qt.stored_pairs({"judgebench": [_judgebench(i) for i in ids]}, store)
    scored_few = qt.score(few, qt.preferences(few), draws=50)
    scored_many = qt.score(many, qt.preferences(many), draws=50)
    assert scored_few["random_order"].judgebench.low is None  # a bootstrap of 4 pairs only replays them
    assert scored_many["random_order"].judgebench.value == 75.0
    assert scored_many["random_order"].judgebench.low is not None
    assert scored_few["sampled"].judgebench.low is not None  # Wilson holds at any n
