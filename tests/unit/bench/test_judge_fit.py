"""The judge fitted to real both-order verdicts: the files read in the right orientation, the model's joint
outcomes are what the simulator draws, the fit recovers known parameters, and the frozen variants are the fit of
the published data."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench import judge_fit as jf
from bench.simulated_judges import FITTED, JudgeModel, SimulatedJudges


def record(label: str, a_first: str | None, b_first: str | None) -> dict:
    return {"label": label, "judgments": [{"decision": a_first}, {"decision": b_first}]}


def test_both_judgments_are_read_from_the_winners_side() -> None:
    counts = jf.joint_outcomes(
        [
            record("A>B", "A>B", "B>A"),  # right in both orders (the second file entry is swapped: B shown first)
            record("B>A", "B>A", "A>B"),  # the same, with B the winner
            record("A>B", "A>B", "A>B"),  # the first shown won both times: right with A first, wrong with B first
            record("B>A", "A=B", "B>A"),  # a tie with A (the loser) first; wrong with B (the winner) first
            record("A>B", None, "B>A"),  # unreadable: left out
        ]
    )
    assert counts == Counter({("W", "W"): 2, ("W", "L"): 1, ("L", "T"): 1})


def test_our_own_verdicts_are_read_with_the_published_files_orientation(tmp_path: Path) -> None:
    """An evaluation's outputs: the forward call shows A first, the backward B first; rankings 1-3 prefer the first
    shown. Scored against the JudgeBench labels by pair id."""
    labels = tmp_path / "judgebench.jsonl"
    labels.write_text("\n".join(json.dumps({"pair_id": p, "label": lab}) for p, lab in [("x", "A>B"), ("y", "B>A")]))

    def item(pair_id: str, forward: int | None, backward: int) -> str:
        calls = {
            "forward": {"verdict": {"ranking": forward}} if forward is not None else {"verdict": None},
            "backward": {"verdict": {"ranking": backward}},
        }
        return json.dumps({"benchmark": "judgebench", "item": pair_id, "pairwise": {"A|B": calls}})

    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text("\n".join([item("x", 2, 5), item("y", 2, 2), item("z", 1, 1), item("x", None, 1)]))
    # x: A first says A (winner), B first says A (winner); y: A first says A (loser), B first says B (winner)
    assert jf.read_evaluation(outputs, labels) == Counter({("W", "W"): 1, ("W", "L"): 1})


def test_the_joint_outcomes_are_a_distribution() -> None:
    for params in [(0.7, 0.5, 0.0, 0.0), (0.4, -0.2, 0.3, 0.9), (1.5, 1.0, 0.1, 0.5)]:
        p = jf.cell_probabilities(*params)
        assert p.shape == (3, 3) and np.all(p > -1e-9) and p.sum() == pytest.approx(1.0, abs=1e-6)
    no_ties = jf.cell_probabilities(0.7, 0.5, 0.0, 0.3)
    assert no_ties[1, :].sum() + no_ties[:, 1].sum() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("model", [FITTED["judgebench_o1_mini"], JudgeModel(strength=0.5, bias=0.8, pair_noise=0.6)])
def test_the_simulator_draws_the_fitted_models_joint_outcomes(model: JudgeModel) -> None:
    """Both orders of many simulated pairs: the share of each joint outcome is the model's, within 3 standard
    errors. Without the pair's own noise, the two orders would agree far less often."""
    rng = np.random.default_rng(7)
    pairs = 6000
    quality = rng.normal(size=2 * pairs)
    judges = SimulatedJudges(quality, model, rng)

    async def both_orders() -> Counter[tuple[str, str]]:
        counts: Counter[tuple[str, str]] = Counter()
        for k in range(pairs):
            i, j = 2 * k, 2 * k + 1
            w, lo = (i, j) if quality[i] > quality[j] else (j, i)
            first = (await judges.pairwise(w, lo)).verdict
            second = (await judges.pairwise(lo, w)).verdict
            assert first is not None and second is not None
            counts[("W" if first.ranking <= 3 else "L", "L" if second.ranking <= 3 else "W")] += 1
        return counts

    counts = asyncio.run(both_orders())
    expected = jf.cell_probabilities(model.strength, model.bias, 0.0, model.pair_noise)
    for a, b in [("W", "W"), ("W", "L"), ("L", "W"), ("L", "L")]:
        p = expected[jf.OUTCOMES.index(a), jf.OUTCOMES.index(b)]
        assert counts[(a, b)] / pairs == pytest.approx(p, abs=3 * np.sqrt(p * (1 - p) / pairs)), (a, b)


def test_the_fit_recovers_the_parameters_that_made_the_outcomes() -> None:
    truth = (0.9, 0.35, 0.15, 0.4)
    p = jf.cell_probabilities(*truth)
    counts = Counter(
        {(a, b): round(p[i, j] * 200_000) for i, a in enumerate(jf.OUTCOMES) for j, b in enumerate(jf.OUTCOMES)}
    )
    fit = jf.fit(counts)
    assert (fit.strength, fit.bias, fit.tie_band, fit.pair_share) == pytest.approx(truth, abs=0.02)


@pytest.mark.skipif(not jf.DATA.is_dir(), reason="the published JudgeBench outputs are not beside the project")
@pytest.mark.parametrize("name", sorted([*jf.SOURCES, *jf.OWN]))
def test_the_frozen_variants_are_the_fit_of_the_real_verdicts(name: str) -> None:
    counts = jf.read(jf.DATA / jf.SOURCES[name]) if name in jf.SOURCES else jf.read_evaluation(*jf.OWN[name])
    assert sum(counts.values()) == (350 if name in jf.SOURCES else 60)
    fit = jf.fit(counts)
    frozen = FITTED[name]
    assert (fit.strength, fit.bias, fit.pair_share) == pytest.approx(
        (frozen.strength, frozen.bias, frozen.pair_noise), abs=0.005
    )
