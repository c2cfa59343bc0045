"""Published JudgeBench judgment files (JudgeBench's ``outputs/*.jsonl``), scored with this project's JudgeBench rule.

Each record is a JudgeBench pair plus ``judgments``: the judge's answer with response A shown first, then (when the
pair was judged both ways) with B shown first. Each ``decision`` is "A>B", "B>A", "A=B" or null, and names the
positions as the judge saw them, so in the second judgment "A>B" prefers the response shown first, which is B: it
is flipped back to A/B orientation before scoring, as JudgeBench's own script flips it. A tie or a null decision
is no verdict and counts 0, the same as a missing one. Scoring goes through :func:`metrics.judgebench_scores`, the
function the evaluation report uses, so a published file's official numbers check that function.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_app.evaluation import metrics
from serve_app.evaluation.records import JudgeBenchRecord, read_rows, validate_row
from serve_app.evaluation.report import judgebench_source_table

Decision = Literal["A>B", "B>A", "A=B"]
# Decision → verdict in A/B orientation; a tie is absent (no verdict).
_AS_SHOWN: dict[str, metrics.Verdict] = {"A>B": "A>B", "B>A": "B>A"}
_FLIPPED: dict[str, metrics.Verdict] = {"A>B": "B>A", "B>A": "A>B"}


class _JudgeOutput(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    judge_model: str | None = None


class Judgment(BaseModel):
    """One order's answer: the decision, and of the raw judge output only the model's name."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    decision: Decision | None
    judgment: _JudgeOutput | None = None


class PublishedJudgment(JudgeBenchRecord):
    """A JudgeBench pair with a judge's published decisions: ``judgments[0]`` A first, ``judgments[1]`` B first."""

    judge_name: str | None = None
    judgments: list[Judgment] = Field(min_length=1, max_length=2)

    def verdicts(self) -> tuple[metrics.Verdict | None, metrics.Verdict | None]:
        """(forward, backward) in A/B orientation, as :func:`metrics.judgebench_scores` takes them; a tie, a null
        decision or an order not judged is None. With one judgment only the forward order counts, which scores as
        JudgeBench's single-order rule does (a pair is right iff that decision equals the label)."""
        forward = self.judgments[0].decision
        backward = self.judgments[1].decision if len(self.judgments) == 2 else None
        return _AS_SHOWN.get(forward or ""), _FLIPPED.get(backward or "")


class JudgmentFileScores(BaseModel):
    """A judgment file's JudgeBench scores, with how many decisions were ties or null (each counted 0)."""

    model_config = ConfigDict(frozen=True)

    judges: list[str]  # the judge_name values in the file (the prompt or kind of judge)
    models: list[str]  # the judge_model values in its judgments
    scores: metrics.JudgeBenchScores
    ties: int
    undecided: int  # null decisions
    single_order: int  # pairs judged in one order only


def load_judgebench_outputs(path: str | Path) -> list[PublishedJudgment]:
    """Read a published JudgeBench judgment file (``.jsonl``, ``.json`` or ``.parquet``); raises
    :class:`~serve_app.evaluation.records.RecordError` naming the record and field at fault."""
    return [validate_row(PublishedJudgment, row, "JudgeBench judgment", where) for where, row in read_rows(path)]


def score_judgebench_outputs(pairs: Iterable[PublishedJudgment]) -> JudgmentFileScores:
    """Score judged pairs with :func:`metrics.judgebench_scores` (both orders, ties and nulls count 0)."""
    pairs = list(pairs)
    decisions = [j.decision for p in pairs for j in p.judgments]
    return JudgmentFileScores(
        judges=sorted({p.judge_name for p in pairs if p.judge_name}),
        models=sorted(
            {j.judgment.judge_model for p in pairs for j in p.judgments if j.judgment and j.judgment.judge_model}
        ),
        scores=metrics.judgebench_scores((p.source, p.label, *p.verdicts()) for p in pairs),
        ties=decisions.count("A=B"),
        undecided=decisions.count(None),
        single_order=sum(len(p.judgments) == 1 for p in pairs),
    )


def judgment_file_table(name: str, result: JudgmentFileScores) -> list[str]:
    """Markdown lines: the file's accuracy overall and per source prefix, two decimals as JudgeBench prints them."""
    judges = f"judge {', '.join(result.judges) or 'not named'}, model {', '.join(result.models) or 'not named'}"
    notes = [f"{result.ties} ties and {result.undecided} null decisions, each counted 0"]
    if result.single_order:
        notes.append(f"{result.single_order} pairs judged in one order only")
    return [f"## {name} ({judges})", "", *judgebench_source_table(result.scores), "; ".join(notes) + ".", ""]


def score_files(paths: Sequence[str | Path]) -> list[str]:
    """The Markdown of :func:`judgment_file_table` for each file, in order."""
    lines: list[str] = []
    for path in paths:
        lines += judgment_file_table(Path(path).name, score_judgebench_outputs(load_judgebench_outputs(path)))
    return lines
