"""Identical candidates: grouped, judged once, and mapped back onto every copy."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.duplicates import expand_result, group_duplicates
from policies.selection import SelectionConfig, select_best
from policies.verdicts import PairVerdict, PairwiseResult, PrincipleResult


def test_groups_keep_first_occurrence_order_and_fold_only_nfc_and_outer_space() -> None:
    texts = ["Paris.", "Lyon.", " Paris.\n", "paris.", "Cafe\u0301", "Caf\u00e9", "Pa ris."]
    assert group_duplicates(texts) == [[0, 2], [1], [3], [4, 5], [6]]


def _judges(quality: dict[str, float], texts: list[str]):
    async def pairwise(i: int, j: int) -> PairwiseResult:
        a, b = quality[texts[i].strip()], quality[texts[j].strip()]
        ranking = 1 if a > b else 6 if a < b else 3
        return PairwiseResult(verdict=PairVerdict(score_1=3, score_2=3, ranking=ranking))

    async def principle(k: int) -> list[PrincipleResult]:
        return [PrincipleResult(principle="p", reward=quality[texts[k].strip()], yes_logprob=0.0, no_logprob=0.0)]

    return pairwise, principle


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.sampled_from("abcde"), min_size=1, max_size=9),
    strategy=st.sampled_from(["knockout", "round_robin", "adaptive"]),
)
def test_selection_over_distinct_texts_maps_back_to_every_copy(picks: list[str], strategy: str) -> None:
    quality = {c: float(i) for i, c in enumerate("abcde")}
    texts = [c if k % 2 else f" {c} " for k, c in enumerate(picks)]  # copies differ in outer whitespace only
    groups = group_duplicates(texts)
    distinct = [texts[g[0]] for g in groups]
    pairwise, principle = _judges(quality, distinct)
    config = SelectionConfig(strategy=strategy, seed=1)
    result = expand_result(asyncio.run(select_best(len(distinct), pairwise, principle, config)), groups)

    n = len(texts)
    assert sorted(result.ranking) == list(range(n))
    assert [c.index for c in result.candidates] == list(range(n))
    best_text = texts[result.best].strip()
    assert result.best == min(i for i, t in enumerate(texts) if t.strip() == best_text)  # the first occurrence
    assert best_text == max(picks, key=quality.__getitem__)  # a noiseless judge finds the best distinct text
    for group in groups:
        scores = {(result.candidates[i].score, result.candidates[i].rank) for i in group}
        assert len(scores) == 1  # copies share their representative's score and rank
        positions = [result.ranking.index(i) for i in group]
        assert positions == list(range(positions[0], positions[0] + len(group)))  # adjacent in the ranking
    assert len(result.principle_results) == n
    for c in result.comparisons:
        assert c.i in {g[0] for g in groups} and c.j in {g[0] for g in groups}


def test_no_duplicates_leaves_the_result_unchanged() -> None:
    pairwise, principle = _judges({"a": 0.0, "b": 1.0}, ["a", "b"])
    result = asyncio.run(select_best(2, pairwise, principle, SelectionConfig(strategy="knockout")))
    assert expand_result(result, [[0], [1]]) is result


def test_groups_in_another_order_reindex_the_result() -> None:
    """Incremental judging sees candidates in arrival order; the groups then map them to the group's own order."""
    texts = ["b", "c", "a"]  # arrival order; the group's order is a, b, c
    quality = {"a": 0.0, "b": 1.0, "c": 2.0}
    pairwise, principle = _judges(quality, texts)
    result = asyncio.run(select_best(3, pairwise, principle, SelectionConfig(strategy="round_robin")))
    mapped = expand_result(result, [[1], [2], [0]])
    assert mapped.best == 2 and mapped.ranking == [2, 1, 0]
    assert [c.index for c in mapped.candidates] == [0, 1, 2]
    assert [r[0].reward for r in mapped.principle_results] == [0.0, 1.0, 2.0]
    assert {(c.i, c.j) for c in mapped.comparisons} == {(1, 2), (1, 0), (2, 0)}
    assert expand_result(result, [[0], [1], [2]]) is result
