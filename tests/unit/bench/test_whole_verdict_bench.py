"""The whole-verdict benchmark: our judge's real both-order verdicts read in the right orientation, each form's
probability for the labelled winner, and targets judged by the whole interval."""

from __future__ import annotations

import asyncio

import pytest

from bench import judge_fit as jf
from bench import whole_verdict as wv
from policies.verdicts import PairVerdict

A_BETTER = PairVerdict(score_1=5, score_2=2, ranking=1)  # shown first, judged much better
B_BETTER_SHOWN_FIRST = PairVerdict(score_1=5, score_2=2, ranking=1)  # B shown first, judged much better


def test_a_form_gives_the_labelled_winner_its_probability_from_both_orders() -> None:
    for form in wv.FORMS.values():
        p_a = wv.p_winner(A_BETTER, PairVerdict(score_1=2, score_2=5, ranking=6), True, form)
        assert p_a > 0.9  # both calls say A
        assert wv.p_winner(A_BETTER, PairVerdict(score_1=2, score_2=5, ranking=6), False, form) == pytest.approx(
            1 - p_a
        )
        # One call for each side, the same strength of verdict: the orders cancel and only h is learnt.
        assert wv.p_winner(A_BETTER, B_BETTER_SHOWN_FIRST, True, form) == pytest.approx(0.5, abs=1e-6)


@pytest.mark.skipif(not jf.OWN["cpu_quality_qwen_1_5b"][1].is_file(), reason="JudgeBench is not beside the project")
def test_our_judges_real_verdicts_are_read_pair_by_pair() -> None:
    pairs = wv.real_pairs(*jf.OWN["cpu_quality_qwen_1_5b"])
    assert len(pairs) == 60 and all(f is not None and b is not None for f, b, _ in pairs)
    table = wv.real_table(pairs, seed=0)
    assert len(table) == 2 + len(wv.FORMS) and all(name in "".join(table) for name in wv.FORMS)


@pytest.mark.parametrize(
    ("difference", "half", "expected"),
    [(0.07, 0.01, "**met**"), (0.055, 0.01, "not shown"), (0.03, 0.01, "missed by 0.020"), (-0.01, 0.005, "**met**")],
)
def test_a_target_is_met_only_when_the_whole_interval_reaches_it(difference: float, half: float, expected: str) -> None:
    target = -0.02 if difference < 0 else 0.05
    assert wv._verdict_on(difference, half, target).startswith(expected)


def test_the_simulated_table_has_every_design_with_its_budget() -> None:
    lines = asyncio.run(wv.simulated("base", 6, 4, 0))
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(wv.simulated_designs())
    assert all(row.split("|")[2].strip() in {"N", "2N", "3N–4N"} for row in rows)
