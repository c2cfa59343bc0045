"""The evaluation report: measured scores beside the published ones, as Markdown tables and PNG plots.

Plots need matplotlib (the ``bench`` extra); without it the Markdown is still written and says the plots are
missing. Benchmarks without results are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from serve_app.evaluation.metrics import (
    JUDGEBENCH_CATEGORIES,
    RMBENCH_DOMAINS,
    BestOfNScores,
    HelpSteer3Scores,
    JudgeBenchCategoryScores,
    JudgeBenchScores,
    PositionConsistency,
    RMBenchScores,
)

#: Judges in the order tables and plots show them; any other name follows, alphabetically.
JUDGE_ORDER: tuple[str, ...] = ("principle", "pairwise", "ensemble")
DIFFICULTIES: tuple[str, ...] = ("easy", "normal", "hard")
CATEGORIES: tuple[str, ...] = tuple(JUDGEBENCH_CATEGORIES.values())
#: The plots write_report can draw (file ``<name>.png``) and their titles.
PLOT_TITLES: dict[str, str] = {
    "rmbench_domains": "RM-Bench accuracy per domain",
    "rmbench_difficulty": "RM-Bench accuracy per difficulty",
    "judgebench": "JudgeBench accuracy per category",
    "position_consistency": "Pairwise judge: position consistency and first-shown preference",
}


class PublishedScores(BaseModel):
    """Scores a model card reports (percent). Keys: RM-Bench domains, difficulties and ``overall``; JudgeBench
    categories and ``overall``."""

    model_config = ConfigDict(frozen=True)

    model: str
    label: str  # short name for table headers and legends
    note: str = ""
    rmbench: dict[str, float] = Field(default_factory=dict)
    judgebench: dict[str, float] = Field(default_factory=dict)


#: Published numbers, keyed by the judge they are a reference for.
PUBLISHED: dict[str, PublishedScores] = {
    "principle": PublishedScores(
        model="nvidia/Qwen3-Nemotron-32B-GenRM-Principle",
        label="32B GenRM-Principle",
        rmbench={
            "chat": 80.4,
            "code": 77.0,
            "math": 92.0,
            "safety": 95.5,
            "easy": 88.9,
            "normal": 86.4,
            "hard": 83.4,
            "overall": 86.2,
        },
        judgebench={"Knowledge": 74.6, "Reasoning": 85.7, "Math": 85.7, "Coding": 90.5, "overall": 81.4},
    ),
    "pairwise": PublishedScores(
        model="nvidia/Qwen3-Nemotron-235B-A22B-GenRM",
        label="235B GenRM",
        note="the 235B GenRM family; only Overall is published",
        rmbench={"overall": 87.3},
        judgebench={"overall": 87.4},
    ),
}


class RunMetadata(BaseModel):
    """What was evaluated, against what, and when."""

    date: datetime = Field(default_factory=lambda: datetime.now(UTC))
    service: str | None = None  # the service URL, when judged over HTTP
    config: str | None = None  # the Serve config, when judged in-process
    models: dict[str, str] = Field(default_factory=dict)  # judge → model served
    items: dict[str, int] = Field(default_factory=dict)  # benchmark → items evaluated
    notes: list[str] = Field(default_factory=list)


class EvaluationResults(BaseModel):
    """Everything one evaluation run measured; each benchmark maps a judge name to its scores."""

    metadata: RunMetadata = Field(default_factory=RunMetadata)
    rmbench: dict[str, RMBenchScores] = Field(default_factory=dict)
    judgebench: dict[str, JudgeBenchScores] = Field(default_factory=dict)
    helpsteer3: dict[str, HelpSteer3Scores] = Field(default_factory=dict)
    #: Benchmark → position consistency of the pairwise judge on it.
    position_consistency: dict[str, PositionConsistency] = Field(default_factory=dict)
    bestofn: BestOfNScores | None = None


# --------------------------------------------------------------------------------------------------------------
# Markdown


def rmbench_value(scores: RMBenchScores, key: str) -> float | None:
    """A domain's accuracy, or the easy / normal / hard / overall column; None when the domain has no records."""
    if key in RMBENCH_DOMAINS:
        return scores.domains[key].accuracy if key in scores.domains else None
    if key in (*DIFFICULTIES, "overall"):
        return getattr(scores, key)
    raise KeyError(f"unknown RM-Bench column {key!r}; allowed: {[*RMBENCH_DOMAINS, *DIFFICULTIES, 'overall']}")


def judgebench_value(scores: JudgeBenchScores, key: str) -> float | None:
    """A category's accuracy or ``overall``; None when the category has no pairs."""
    if key == "overall":
        return scores.accuracy
    if key in CATEGORIES:
        return scores.categories[key].accuracy if key in scores.categories else None
    raise KeyError(f"unknown JudgeBench column {key!r}; allowed: {[*CATEGORIES, 'overall']}")


def _ordered(names: Iterable[str]) -> list[str]:
    names = list(names)
    return [j for j in JUDGE_ORDER if j in names] + sorted(n for n in names if n not in JUDGE_ORDER)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: bool = True) -> list[str]:
    """A Markdown table; with ``numeric`` every column after the first is right-aligned."""
    align = ["---"] + ["--:" if numeric else "---"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _references(benchmark: str) -> list[PublishedScores]:
    return [p for p in PUBLISHED.values() if getattr(p, benchmark)]


def _comparison_table(
    rows: Sequence[tuple[str, str]],
    judges: Sequence[str],
    measured: Callable[[str, str], float | None],
    benchmark: str,
) -> list[str]:
    """Rows (key, label) × one column per judge, then one per published reference."""
    references = _references(benchmark)
    header = ["", *judges, *(f"published: {p.label}" for p in references)]
    body = [
        [label, *(_pct(measured(j, key)) for j in judges), *(_pct(getattr(p, benchmark).get(key)) for p in references)]
        for key, label in rows
    ]
    return _table(header, body)


def _same_model(served: str | None, ref: PublishedScores | None) -> str:
    """Whether the published numbers are for the served model: "yes" when its name is the published one or extends
    it (a release of that family, e.g. a dated suffix), "no" otherwise, "—" when either is unknown."""
    if served is None or ref is None:
        return "—"
    return "yes" if served.lower().startswith(ref.model.lower()) else "no"


def _metadata_section(results: EvaluationResults) -> list[str]:
    meta = results.metadata
    lines = ["# Judge evaluation", "", f"- date: {meta.date.isoformat(timespec='seconds')}"]
    if meta.service:
        lines.append(f"- service: {meta.service}")
    if meta.config:
        lines.append(f"- config: {meta.config}")
    if meta.items:
        lines.append("- items: " + ", ".join(f"{b} {n}" for b, n in meta.items.items()))
    lines += [f"- {note}" for note in meta.notes]
    lines.append("")

    rows = []
    for judge in _ordered(set(meta.models) | set(PUBLISHED)):
        ref = PUBLISHED.get(judge)
        served = meta.models.get(judge)
        reference = "—" if ref is None else ref.model + (f" ({ref.note})" if ref.note else "")
        rows.append([judge, served or "—", reference, _same_model(served, ref)])
    lines += _table(["judge", "model served", "published numbers are for", "same model"], rows, numeric=False)
    lines += [
        "Published numbers come from the model cards; they are a yardstick only when the served model is the one "
        "they were measured on, with the same prompts.",
        "",
    ]
    return lines


def _rmbench_section(scores: dict[str, RMBenchScores], plots: dict[str, str]) -> list[str]:
    judges = _ordered(scores)
    rows = [(d, d.capitalize()) for d in RMBENCH_DOMAINS] + [(d, d.capitalize()) for d in DIFFICULTIES]
    rows.append(("overall", "Overall"))

    lines = [
        "## RM-Bench",
        "",
        "Accuracy (%) that the chosen response outscores the rejected one over all 3×3 style pairings; Easy, Normal "
        "and Hard are the lower triangle, diagonal and upper triangle of the averaged matrix, and Overall the mean "
        "of the domain accuracies. A judge without a verdict is counted wrong.",
        "",
        *_comparison_table(rows, judges, lambda j, key: rmbench_value(scores[j], key), "rmbench"),
    ]
    lines += _table(
        ["", *judges],
        [
            ["records", *(str(scores[j].records) for j in judges)],
            ["cells without a verdict", *(str(scores[j].missing) for j in judges)],
        ],
    )
    for judge in judges:
        s = scores[judge]
        if not s.complete:
            lines += [
                f"{judge}: Overall and the difficulty columns average only {', '.join(s.averaged_over) or 'nothing'} "
                f"(no records for {', '.join(s.absent)}), so they are not comparable with the published numbers.",
                "",
            ]
    return lines + _images(plots, ("rmbench_domains", "rmbench_difficulty"))


def _judgebench_section(scores: dict[str, JudgeBenchScores], plots: dict[str, str]) -> list[str]:
    judges = _ordered(scores)
    rows = [(c, c) for c in CATEGORIES] + [("overall", "Overall")]

    lines = [
        "## JudgeBench",
        "",
        "Accuracy (%) over pairs, each judged in both orders: a pair is correct when its right verdicts outnumber "
        "its wrong ones (right + missing counts, right + wrong does not).",
        "",
        *_comparison_table(rows, judges, lambda j, key: judgebench_value(scores[j], key), "judgebench"),
    ]
    lines += _table(
        ["", *judges],
        [
            ["pairs", *(str(scores[j].pairs) for j in judges)],
            ["missing verdicts", *(str(scores[j].missing_verdicts) for j in judges)],
        ],
    )
    return lines + _images(plots, ("judgebench",))


def judgebench_source_table(scores: JudgeBenchScores) -> list[str]:
    """One judge's JudgeBench accuracy overall and per source prefix (the columns of JudgeBench's own script),
    with two decimals so that it can be set against the published numbers digit for digit."""

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    rows = [["Overall", pct(scores.accuracy), str(scores.pairs), str(scores.correct)]]
    for prefix, category in JUDGEBENCH_CATEGORIES.items():
        c = scores.categories.get(category) or JudgeBenchCategoryScores(accuracy=None, pairs=0, correct=0)
        rows.append([f"{prefix} ({category})", pct(c.accuracy), str(c.pairs), str(c.correct)])
    return _table(["", "accuracy", "pairs", "correct"], rows)


def _helpsteer3_section(scores: dict[str, HelpSteer3Scores]) -> list[str]:
    judges = _ordered(scores)
    domains = sorted({d for s in scores.values() for d in s.domains})

    def domain_acc(judge: str, domain: str) -> str:
        d = scores[judge].domains.get(domain)
        return _pct(d.accuracy) if d else "—"

    rows = [["Overall", *(_pct(scores[j].accuracy) for j in judges)]]
    rows += [[d, *(domain_acc(j, d) for j in judges)] for d in domains]
    rows += [
        ["records scored", *(str(scores[j].scored) for j in judges)],
        ["tied labels excluded", *(str(scores[j].ties_excluded) for j in judges)],
        ["without a prediction", *(str(scores[j].missing) for j in judges)],
    ]
    return [
        "## HelpSteer3 preference",
        "",
        "Accuracy (%) that the judge prefers the response the annotators preferred; tied labels are excluded, a "
        "predicted tie or no prediction is wrong.",
        "",
        *_table(["", *judges], rows),
    ]


def _position_section(scores: dict[str, PositionConsistency], plots: dict[str, str]) -> list[str]:
    rows = [
        [
            benchmark,
            str(s.pairs),
            str(s.both_orders),
            _pct(s.consistency),
            _pct(s.first_preferred_share),
        ]
        for benchmark, s in scores.items()
    ]
    return [
        "## Position consistency of the pairwise judge",
        "",
        "Consistency: share (%) of pairs judged in both orders whose two verdicts name the same winner. First shown "
        "preferred: share (%) of verdicts for the response shown first; 50 means no position bias.",
        "",
        *_table(["benchmark", "pairs", "judged both ways", "consistency", "first shown preferred"], rows),
        *_images(plots, ("position_consistency",)),
    ]


def _bestofn_section(scores: BestOfNScores) -> list[str]:
    rows = [
        [name, _pct(s.accuracy), "—" if s.mean_calls is None else f"{s.mean_calls:.1f}", str(s.records), str(s.missing)]
        for name, s in scores.strategies.items()
    ]
    rows += [
        ["oracle (any candidate correct)", _pct(scores.oracle), "", str(scores.records), ""],
        ["random pick (expected)", _pct(scores.random_baseline), "0.0", str(scores.records), ""],
    ]
    return [
        "## Best-of-N",
        "",
        "Accuracy (%) of the selected candidate's final answer, per selection strategy.",
        "",
        *_table(["strategy", "accuracy", "judge calls per record", "records", "nothing selected"], rows),
    ]


def _images(plots: dict[str, str], names: Sequence[str]) -> list[str]:
    return [line for name in names if name in plots for line in (f"![{PLOT_TITLES[name]}]({plots[name]})", "")]


# --------------------------------------------------------------------------------------------------------------
# Plots


def _pyplot() -> ModuleType | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only; no display on a server
    import matplotlib.pyplot as plt

    return plt


_MARKERS = ("D", "*", "^", "s")


def _grouped_bars(
    plt: Any,
    path: Path,
    title: str,
    groups: Sequence[tuple[str, str]],  # (key, label)
    series: dict[str, Callable[[str], float | None]],  # bar series name (a judge) → value per key
    references: Sequence[tuple[str, str, dict[str, float]]] = (),  # (label, judge, key → published value)
    ylabel: str = "accuracy (%)",
    hline: float | None = None,
) -> None:
    """One group of bars per key, one bar per series; a published value is a marker over the bar of the judge it is
    a reference for (over the group's centre when that judge has no bars)."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) + 2), 4.8))
    width = 0.8 / max(len(series), 1)
    centres = list(range(len(groups)))
    offset = {name: -0.4 + width * (k + 0.5) for k, name in enumerate(series)}
    for name, value in series.items():
        ys = [value(key) for key, _ in groups]
        # A missing value is no bar (height 0) and no label, not a bar at 0 %.
        drawn = ax.bar([c + offset[name] for c in centres], [y or 0.0 for y in ys], width, label=name)
        for bar, y in zip(drawn, ys, strict=True):
            if y is not None:
                ax.annotate(f"{y:.0f}", (bar.get_x() + bar.get_width() / 2, y), ha="center", va="bottom", fontsize=7)
    for m, (label, judge, values) in enumerate(references):
        points = [(c + offset.get(judge, 0.0), values[key]) for c, (key, _) in enumerate(groups) if key in values]
        if points:
            xs, ys = zip(*points, strict=True)
            marker = _MARKERS[m % len(_MARKERS)]
            ax.scatter(xs, ys, marker=marker, s=45, color="black", zorder=3, label=f"published: {label}")
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(centres, [label for _, label in groups])
    ax.set_ylim(0, 108)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw_plots(plt: Any, results: EvaluationResults, out_dir: Path) -> dict[str, str]:
    """Draw every plot the results support; name → file name relative to out_dir."""
    plots: dict[str, str] = {}

    def bars(name: str, *args: Any, **kwargs: Any) -> None:
        _grouped_bars(plt, out_dir / f"{name}.png", PLOT_TITLES[name], *args, **kwargs)
        plots[name] = f"{name}.png"

    if results.rmbench:
        rm = {j: results.rmbench[j] for j in _ordered(results.rmbench)}
        refs = [(p.label, judge, p.rmbench) for judge, p in PUBLISHED.items() if p.rmbench]
        bars(
            "rmbench_domains",
            [(d, d.capitalize()) for d in RMBENCH_DOMAINS] + [("overall", "Overall")],
            {j: partial(rmbench_value, s) for j, s in rm.items()},
            refs,
        )
        bars(
            "rmbench_difficulty",
            [(d, d.capitalize()) for d in DIFFICULTIES],
            {j: partial(rmbench_value, s) for j, s in rm.items()},
            refs,
        )
    if results.judgebench:
        bars(
            "judgebench",
            [(c, c) for c in CATEGORIES] + [("overall", "Overall")],
            {j: partial(judgebench_value, results.judgebench[j]) for j in _ordered(results.judgebench)},
            [(p.label, judge, p.judgebench) for judge, p in PUBLISHED.items() if p.judgebench],
        )
    if results.position_consistency:
        pc = results.position_consistency
        bars(
            "position_consistency",
            [(b, b) for b in pc],
            {
                "consistent in both orders": lambda b: pc[b].consistency,
                "verdicts for the first shown": lambda b: pc[b].first_preferred_share,
            },
            ylabel="share (%)",
            hline=50.0,  # no position bias
        )
    return plots


# --------------------------------------------------------------------------------------------------------------


def write_report(results: EvaluationResults, out_dir: Path) -> Path:
    """Write ``report.md`` and its PNG plots into ``out_dir`` (created if needed); returns the report's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    has_plots = bool(results.rmbench or results.judgebench or results.position_consistency)
    plt = _pyplot() if has_plots else None
    plots = _draw_plots(plt, results, out_dir) if plt is not None else {}

    lines = _metadata_section(results)
    if has_plots and plt is None:
        lines += [
            "Plots were not drawn: matplotlib is not installed (`pip install matplotlib`, or the `bench` extra).",
            "",
        ]
    if results.rmbench:
        lines += _rmbench_section(results.rmbench, plots)
    if results.judgebench:
        lines += _judgebench_section(results.judgebench, plots)
    if results.helpsteer3:
        lines += _helpsteer3_section(results.helpsteer3)
    if results.position_consistency:
        lines += _position_section(results.position_consistency, plots)
    if results.bestofn is not None:
        lines += _bestofn_section(results.bestofn)
    if not (has_plots or results.helpsteer3 or results.bestofn is not None):
        lines += ["No benchmark results.", ""]

    path = out_dir / "report.md"
    path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    return path
