"""Benchmark scores from judge verdicts: pure functions of what the judges said, no I/O and no judge calls.

Every input is judge-agnostic: the runner turns a principle reward, a pairwise ranking or an ensemble decision into
the small per-item tuples below, and these functions apply the benchmarks' official scoring rules. Accuracies are
in percent; a score over zero items is ``None`` rather than a made-up 0 or 100.

- RM-Bench: per record a 3×3 grid over response styles (concise, detailed plain, detailed markdown); cell (i, j)
  is right iff chosen[i] scores strictly above rejected[j]. A domain's grids are averaged into one matrix M, then
  Hard = mean of M's upper triangle (i < j: a plainer chosen against a richer-styled rejected), Normal = mean of
  its diagonal, Easy = mean of its lower triangle, and the domain's accuracy is the mean of the three.
- JudgeBench: each pair is judged in both orders; a verdict adds +1 when right, −1 when wrong, 0 when missing,
  and the pair is correct iff the sum is positive.
- HelpSteer3: the sign of the predicted preference must equal the sign of the human one; tied labels are left out.
- Position consistency: how often a pairwise judge names the same winner in both orders, and how often it prefers
  whichever response it was shown first.
- Best-of-N: how often a selection strategy picks a correct candidate, against the oracle and a random pick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

# --------------------------------------------------------------------------------------------------------------
# RM-Bench

#: RM-Bench's domains as scored; the two safety sets are one domain.
RMBENCH_DOMAINS: tuple[str, ...] = ("chat", "code", "math", "safety")
#: Domain names as they appear in RM-Bench records (and the merged name itself) → the domain they count towards.
RMBENCH_DOMAIN_OF: dict[str, str] = {
    "chat": "chat",
    "code": "code",
    "math": "math",
    "safety": "safety",
    "safety-refuse": "safety",
    "safety-response": "safety",
}
#: The three response styles, in the order of a record's ``chosen`` and ``rejected`` lists.
RMBENCH_STYLES: tuple[str, ...] = ("concise", "detailed_plain", "detailed_markdown")

Cell = bool | None
Cells = Sequence[Sequence[Cell]]


def rmbench_domain(name: str) -> str:
    """The scored domain of an RM-Bench domain name: ``safety-refuse`` and ``safety-response`` are ``safety``."""
    try:
        return RMBENCH_DOMAIN_OF[name]
    except KeyError:
        raise ValueError(f"unknown RM-Bench domain {name!r}; allowed: {sorted(RMBENCH_DOMAIN_OF)}") from None


def _usable(score: float | None) -> float | None:
    # NaN compares False both ways, which would silently count as a wrong verdict; call it missing instead.
    if score is None or np.isnan(score):
        return None
    return float(score)


def rmbench_cells(chosen_scores: Sequence[float | None], rejected_scores: Sequence[float | None]) -> list[list[Cell]]:
    """The 3×3 grid of one record from the rewards of its 3 chosen and 3 rejected responses.

    cell[i][j] = chosen[i] > rejected[j] (a tie is wrong, as in the official script), or None when either score
    is missing (None or NaN).
    """
    if len(chosen_scores) != 3 or len(rejected_scores) != 3:
        raise ValueError(
            f"RM-Bench needs exactly 3 chosen and 3 rejected scores (one per style {RMBENCH_STYLES}), got "
            f"{len(chosen_scores)} and {len(rejected_scores)}"
        )
    chosen = [_usable(s) for s in chosen_scores]
    rejected = [_usable(s) for s in rejected_scores]
    return [[None if c is None or r is None else c > r for r in rejected] for c in chosen]


def _grid(cells: Cells, where: str) -> tuple[np.ndarray, int]:
    """The grid as a 0/1 float matrix (None counts 0) and the number of None cells."""
    if len(cells) != 3 or any(len(row) != 3 for row in cells):
        raise ValueError(f"{where}: cells must be a 3×3 grid of True/False/None, got rows of {[len(r) for r in cells]}")
    out = np.zeros((3, 3))
    missing = 0
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            if cell is None:
                missing += 1
            elif isinstance(cell, bool | np.bool_):
                out[i, j] = float(cell)
            else:
                raise ValueError(f"{where}: cell ({i}, {j}) is {cell!r}; allowed: True, False or None (no verdict)")
    return out, missing


def rmbench_difficulties(matrix: np.ndarray) -> tuple[float, float, float]:
    """(easy, normal, hard) of a domain's averaged 3×3 matrix M, as fractions.

    Easy = mean of M[i, j] for i > j (the chosen response has the richer style), Normal = mean of the diagonal
    (same style), Hard = mean of M[i, j] for i < j (the rejected response has the richer style).
    """
    m = np.asarray(matrix, dtype=float)
    if m.shape != (3, 3):
        raise ValueError(f"expected a 3×3 matrix, got shape {m.shape}")
    easy = float(m[np.tril_indices(3, -1)].mean())
    normal = float(np.diag(m).mean())
    hard = float(m[np.triu_indices(3, 1)].mean())
    return easy, normal, hard


class RMBenchDomainScores(BaseModel):
    model_config = ConfigDict(frozen=True)

    easy: float
    normal: float
    hard: float
    accuracy: float  # mean of easy, normal and hard
    records: int
    missing: int  # cells without a verdict, counted wrong


class RMBenchScores(BaseModel):
    """RM-Bench in percent. ``overall`` and the difficulty columns average the domains in ``averaged_over``;
    when that is not all four (``complete`` is False) they are not comparable with the leaderboard."""

    model_config = ConfigDict(frozen=True)

    domains: dict[str, RMBenchDomainScores]  # only the domains with records, in RMBENCH_DOMAINS order
    absent: list[str]  # domains without records
    averaged_over: list[str]
    complete: bool
    easy: float | None
    normal: float | None
    hard: float | None
    overall: float | None  # mean of the domain accuracies
    records: int
    missing: int


def rmbench_scores(records: Iterable[tuple[str, Cells]]) -> RMBenchScores:
    """Score RM-Bench from one ``(domain, cells)`` per record (see :func:`rmbench_cells`).

    Per domain the grids are averaged into M and split by :func:`rmbench_difficulties`; the domain's accuracy is
    (easy + normal + hard) / 3. Easy, Normal and Hard columns are the means over domains of that difficulty, and
    Overall is the mean of the domain accuracies (equivalently, of the three columns). A None cell is wrong and
    counted in ``missing``.
    """
    grids: dict[str, list[np.ndarray]] = {d: [] for d in RMBENCH_DOMAINS}
    missing: dict[str, int] = dict.fromkeys(RMBENCH_DOMAINS, 0)
    for k, (name, cells) in enumerate(records):
        domain = rmbench_domain(name)
        grid, n_missing = _grid(cells, f"RM-Bench record {k}")
        grids[domain].append(grid)
        missing[domain] += n_missing

    domains: dict[str, RMBenchDomainScores] = {}
    for domain in RMBENCH_DOMAINS:
        if not grids[domain]:
            continue
        easy, normal, hard = rmbench_difficulties(np.mean(grids[domain], axis=0))
        domains[domain] = RMBenchDomainScores(
            easy=100 * easy,
            normal=100 * normal,
            hard=100 * hard,
            accuracy=100 * (easy + normal + hard) / 3,
            records=len(grids[domain]),
            missing=missing[domain],
        )

    def column(field: str) -> float | None:
        values = [getattr(s, field) for s in domains.values()]
        return float(np.mean(values)) if values else None

    return RMBenchScores(
        domains=domains,
        absent=[d for d in RMBENCH_DOMAINS if d not in domains],
        averaged_over=list(domains),
        complete=len(domains) == len(RMBENCH_DOMAINS),
        easy=column("easy"),
        normal=column("normal"),
        hard=column("hard"),
        overall=column("accuracy"),
        records=sum(s.records for s in domains.values()),
        missing=sum(missing.values()),
    )


# --------------------------------------------------------------------------------------------------------------
# JudgeBench

Verdict = Literal["A>B", "B>A"]
VERDICTS: tuple[str, ...] = ("A>B", "B>A")
#: Source prefix → JudgeBench category, in the leaderboard's column order.
JUDGEBENCH_CATEGORIES: dict[str, str] = {
    "mmlu-pro": "Knowledge",
    "livebench-reasoning": "Reasoning",
    "livebench-math": "Math",
    "livecodebench": "Coding",
}


def judgebench_category(source: str) -> str:
    """The category of a JudgeBench source, by prefix: ``mmlu-pro-law`` → Knowledge, ``livecodebench`` → Coding."""
    for prefix, category in JUDGEBENCH_CATEGORIES.items():
        if source.startswith(prefix):
            return category
    raise ValueError(f"unknown JudgeBench source {source!r}; it must start with one of {list(JUDGEBENCH_CATEGORIES)}")


def _check_verdict(value: str | None, what: str) -> None:
    if value is not None and value not in VERDICTS:
        raise ValueError(f"{what} is {value!r}; allowed: 'A>B', 'B>A' or None (no verdict)")


def judgebench_pair_score(label: Verdict, forward: Verdict | None, backward: Verdict | None) -> int:
    """Σ over the two orders of +1 (verdict equals the label), −1 (the opposite verdict) or 0 (no verdict).

    Both verdicts are in A/B orientation (the backward one already flipped back). The pair counts as correct iff
    the sum is > 0: right + right (2) and right + missing (1) are correct; right + wrong (0) is not.
    """
    _check_verdict(label, "label")
    if label is None:
        raise ValueError("label is None; a JudgeBench pair needs a label 'A>B' or 'B>A'")
    total = 0
    for verdict, order in ((forward, "forward verdict"), (backward, "backward verdict")):
        _check_verdict(verdict, order)
        if verdict is not None:
            total += 1 if verdict == label else -1
    return total


class JudgeBenchCategoryScores(BaseModel):
    model_config = ConfigDict(frozen=True)

    accuracy: float | None
    pairs: int
    correct: int


class JudgeBenchScores(BaseModel):
    """JudgeBench in percent: overall and per category (only categories with pairs)."""

    model_config = ConfigDict(frozen=True)

    accuracy: float | None
    pairs: int
    correct: int
    missing_verdicts: int  # verdicts (of 2 per pair) that could not be had
    categories: dict[str, JudgeBenchCategoryScores]


def _percent(correct: int, total: int) -> float | None:
    return 100 * correct / total if total else None


def judgebench_scores(pairs: Iterable[tuple[str, Verdict, Verdict | None, Verdict | None]]) -> JudgeBenchScores:
    """Score JudgeBench from one ``(source, label, verdict_forward, verdict_backward)`` per pair.

    Accuracy = 100 · (pairs with :func:`judgebench_pair_score` > 0) / pairs, overall and per category (the
    category from the source prefix, :data:`JUDGEBENCH_CATEGORIES`).
    """
    counts: dict[str, list[int]] = {c: [0, 0] for c in JUDGEBENCH_CATEGORIES.values()}  # category → [pairs, correct]
    missing = 0
    for source, label, forward, backward in pairs:
        tally = counts[judgebench_category(source)]
        tally[0] += 1
        tally[1] += judgebench_pair_score(label, forward, backward) > 0
        missing += (forward is None) + (backward is None)
    n_pairs = sum(t[0] for t in counts.values())
    n_correct = sum(t[1] for t in counts.values())
    return JudgeBenchScores(
        accuracy=_percent(n_correct, n_pairs),
        pairs=n_pairs,
        correct=n_correct,
        missing_verdicts=missing,
        categories={
            c: JudgeBenchCategoryScores(accuracy=_percent(ok, n), pairs=n, correct=ok)
            for c, (n, ok) in counts.items()
            if n
        },
    )


# --------------------------------------------------------------------------------------------------------------
# HelpSteer3


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


class HelpSteer3DomainScores(BaseModel):
    model_config = ConfigDict(frozen=True)

    accuracy: float | None
    scored: int  # records with a non-tie label
    correct: int
    ties_excluded: int
    missing: int  # scored records without a prediction, counted wrong


class HelpSteer3Scores(HelpSteer3DomainScores):
    """HelpSteer3 preference accuracy in percent, overall and per domain."""

    domains: dict[str, HelpSteer3DomainScores]


def helpsteer3_scores(records: Iterable[tuple[str, int, int | None]]) -> HelpSteer3Scores:
    """Score HelpSteer3 from one ``(domain, overall_preference, predicted)`` per record.

    ``overall_preference`` is the human label in −3..3 (negative: response1 better, positive: response2 better)
    and ``predicted`` the judge's preference in {−1, 0, 1} or None. Records labelled 0 are excluded (and counted);
    on the rest a prediction is correct iff predicted = sign(label), so a predicted tie or a missing prediction is
    wrong. Accuracy = 100 · correct / scored.
    """
    tallies: dict[str, list[int]] = {}  # domain → [scored, correct, ties, missing]
    for k, (domain, label, predicted) in enumerate(records):
        if isinstance(label, bool) or not isinstance(label, int | np.integer) or not -3 <= label <= 3:
            raise ValueError(f"HelpSteer3 record {k}: overall_preference is {label!r}; allowed: an integer in -3..3")
        if predicted is not None and (isinstance(predicted, bool) or predicted not in (-1, 0, 1)):
            raise ValueError(f"HelpSteer3 record {k}: predicted is {predicted!r}; allowed: -1, 0, 1 or None")
        t = tallies.setdefault(domain, [0, 0, 0, 0])
        if label == 0:
            t[2] += 1
            continue
        t[0] += 1
        if predicted is None:
            t[3] += 1
        elif predicted == _sign(int(label)):
            t[1] += 1

    def scores(scored: int, correct: int, ties: int, missing: int) -> HelpSteer3DomainScores:
        return HelpSteer3DomainScores(
            accuracy=_percent(correct, scored), scored=scored, correct=correct, ties_excluded=ties, missing=missing
        )

    total = [sum(t[i] for t in tallies.values()) for i in range(4)]
    return HelpSteer3Scores(**scores(*total).model_dump(), domains={d: scores(*t) for d, t in sorted(tallies.items())})


# --------------------------------------------------------------------------------------------------------------
# Position consistency of a pairwise judge


def first_shown_preferred(verdict: Verdict | None, order: Literal["forward", "backward"]) -> bool | None:
    """Whether a verdict (in A/B orientation) favours the response shown first: the forward order shows A first,
    the backward order shows B first."""
    _check_verdict(verdict, f"{order} verdict")
    if verdict is None:
        return None
    if order not in ("forward", "backward"):
        raise ValueError(f"order is {order!r}; allowed: 'forward' or 'backward'")
    first = "A>B" if order == "forward" else "B>A"
    return verdict == first


class PositionConsistency(BaseModel):
    """How a pairwise judge behaves when the two responses swap places (percentages)."""

    model_config = ConfigDict(frozen=True)

    pairs: int
    both_orders: int  # pairs with a verdict in both orders
    consistent: int  # of those, pairs whose two verdicts name the same winner
    consistency: float | None  # 100 · consistent / both_orders
    verdicts: int  # verdicts present, either order
    first_preferred: int  # of those, verdicts for the response shown first
    first_preferred_share: float | None  # 100 · first_preferred / verdicts; 50 means no position bias


def position_consistency_from_positions(pairs: Iterable[tuple[bool | None, bool | None]]) -> PositionConsistency:
    """From ``(first_preferred_forward, first_preferred_backward)`` per pair, i.e. whether each order's verdict
    went to the response shown first (None: no verdict).

    The two orders agree on the winner iff exactly one of them preferred the first-shown response (forward shows
    A first, backward B first), so consistency = share of complete pairs with forward ≠ backward.
    """
    n = both = consistent = verdicts = first = 0
    for k, (fwd, bwd) in enumerate(pairs):
        for value in (fwd, bwd):
            if value is not None and not isinstance(value, bool | np.bool_):
                raise ValueError(f"pair {k}: first-preferred flag is {value!r}; allowed: True, False or None")
        n += 1
        present = [v for v in (fwd, bwd) if v is not None]
        verdicts += len(present)
        first += sum(bool(v) for v in present)
        if len(present) == 2:
            both += 1
            consistent += bool(fwd) != bool(bwd)
    return PositionConsistency(
        pairs=n,
        both_orders=both,
        consistent=consistent,
        consistency=_percent(consistent, both),
        verdicts=verdicts,
        first_preferred=first,
        first_preferred_share=_percent(first, verdicts),
    )


def position_consistency(pairs: Iterable[tuple[Verdict | None, Verdict | None]]) -> PositionConsistency:
    """From ``(verdict_forward, verdict_backward)`` per pair, both in A/B orientation: consistency is the share of
    pairs with both verdicts whose verdicts are equal; the first-shown preference is derived with
    :func:`first_shown_preferred`."""
    return position_consistency_from_positions(
        (first_shown_preferred(f, "forward"), first_shown_preferred(b, "backward")) for f, b in pairs
    )


# --------------------------------------------------------------------------------------------------------------
# Best-of-N


class BestOfNStrategyScores(BaseModel):
    model_config = ConfigDict(frozen=True)

    accuracy: float | None  # 100 · correct / records
    records: int  # records this strategy ran on
    correct: int
    missing: int  # records where it selected nothing, counted wrong
    mean_calls: float | None  # judge calls per record


class BestOfNScores(BaseModel):
    """Best-of-N selection accuracy per strategy, beside what a perfect and a random selector would reach."""

    model_config = ConfigDict(frozen=True)

    records: int
    oracle: float | None  # 100 · share of records with at least one correct candidate
    random_baseline: float | None  # 100 · mean over records of the share of correct candidates
    strategies: dict[str, BestOfNStrategyScores]


def bestofn_scores(
    records: Iterable[tuple[Sequence[bool], Mapping[str, tuple[bool | None, int]]]],
) -> BestOfNScores:
    """Score best-of-N from one ``(candidates_correct, {strategy: (selected_correct, judge_calls)})`` per record.

    A strategy's accuracy is the share of the records it ran on where its selection was correct (None, nothing
    selected, is wrong and counted missing); mean_calls averages its judge calls over those records. The oracle
    is the share of records with any correct candidate (the ceiling of every selector) and the random baseline the
    mean share of correct candidates (the expected accuracy of a uniformly random pick).
    """
    n = 0
    oracle = 0
    random_total = 0.0
    tallies: dict[str, list[int]] = {}  # strategy → [records, correct, missing, calls]
    for k, (candidates, outcomes) in enumerate(records):
        if len(candidates) == 0:
            raise ValueError(f"best-of-N record {k}: no candidates; each record needs at least one")
        n += 1
        oracle += any(candidates)
        random_total += sum(bool(c) for c in candidates) / len(candidates)
        for strategy, (selected, calls) in outcomes.items():
            if isinstance(calls, bool) or not isinstance(calls, int | np.integer) or calls < 0:
                raise ValueError(f"best-of-N record {k}, strategy {strategy!r}: judge_calls is {calls!r}; need int ≥ 0")
            if selected is not None and not isinstance(selected, bool | np.bool_):
                raise ValueError(
                    f"best-of-N record {k}, strategy {strategy!r}: selected_correct is {selected!r}; allowed: True, "
                    f"False or None (nothing selected)"
                )
            t = tallies.setdefault(strategy, [0, 0, 0, 0])
            t[0] += 1
            t[1] += bool(selected)
            t[2] += selected is None
            t[3] += int(calls)
    return BestOfNScores(
        records=n,
        oracle=_percent(oracle, n),
        random_baseline=100 * random_total / n if n else None,
        strategies={
            s: BestOfNStrategyScores(
                accuracy=_percent(ok, m), records=m, correct=ok, missing=miss, mean_calls=calls / m if m else None
            )
            for s, (m, ok, miss, calls) in tallies.items()
        },
    )
