"""Identical candidates are judged once.

A sampling policy often returns the same response more than once. Judging copies against each other wastes calls
(and a position-biased judge would split a tie it cannot see), so the selection runs over the distinct texts and
its result is mapped back: every copy gets its representative's scores and rank, and the chosen index is the
first occurrence.

Two candidates are copies when they are equal after Unicode NFC normalisation and stripping surrounding
whitespace; nothing else (case, inner spacing, invisible characters) is folded, so distinct texts are never merged.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from policies.selection import SelectionResult


def duplicate_key(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def group_duplicates(texts: Sequence[str]) -> list[list[int]]:
    """Original indices of each distinct text, in order of first occurrence; each group is ascending, so its first
    index is the representative."""
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        groups.setdefault(duplicate_key(text), []).append(i)
    return list(groups.values())


def expand_result(result: SelectionResult, groups: Sequence[Sequence[int]]) -> SelectionResult:
    """Map a selection over the distinct texts (index ``u`` = ``groups[u]``, ascending; the groups in any order)
    back to the original indices.

    Copies share their representative's rank (ties ranked alike), scores and principle results; comparisons name
    representatives (each group's first index). With groups [[0], [1], …] the result is returned unchanged."""
    if all(list(g) == [u] for u, g in enumerate(groups)):
        return result
    ranking = [i for u in result.ranking for i in groups[u]]
    candidates = sorted(
        (c.model_copy(update={"index": i}) for c in result.candidates for i in groups[c.index]),
        key=lambda c: c.index,
    )
    comparisons = [c.model_copy(update={"i": groups[c.i][0], "j": groups[c.j][0]}) for c in result.comparisons]
    by_original = {i: u for u, group in enumerate(groups) for i in group}
    principle_results = (
        [result.principle_results[by_original[i]] for i in range(len(by_original))] if result.principle_results else []
    )
    return result.model_copy(
        update={
            "best": groups[result.best][0],
            "ranking": ranking,
            "candidates": candidates,
            "comparisons": comparisons,
            "principle_results": principle_results,
        }
    )
