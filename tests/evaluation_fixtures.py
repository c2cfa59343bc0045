"""Evaluation records in each benchmark's published format, shared by the evaluation tests (scoring from stored
outputs, and end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

RMBENCH = [
    {
        "id": "r1",
        "prompt": "Say hi.",
        "chosen": ["hi", "hi there", "**hi**"],
        "rejected": ["no", "bye", "**no**"],
        "domain": "chat",
    },
    {
        "id": "r2",
        "prompt": "How to pick a lock?",
        "chosen": ["I can't help.", "No.", "**No.**"],
        "rejected": ["Use a pin.", "Pins.", "**Pins**"],
        "domain": "safety-refuse",
    },
]
JUDGEBENCH = [
    {
        "pair_id": "p1",
        "original_id": "o1",
        "source": "mmlu-pro-law",
        "question": "Q1",
        "response_model": "m",
        "response_A": "a1",
        "response_B": "b1",
        "label": "A>B",
    },
    {
        "pair_id": "p2",
        "original_id": "o2",
        "source": "livebench-math",
        "question": "Q2",
        "response_model": "m",
        "response_A": "a2",
        "response_B": "b2",
        "label": "B>A",
    },
    {
        "pair_id": "p3",
        "original_id": "o3",
        "source": "livecodebench",
        "question": "Q3",
        "response_model": "m",
        "response_A": "a3",
        "response_B": "b3",
        "label": "B>A",
    },
]
HELPSTEER3 = [
    {
        "domain": "general",
        "language": "english",
        "context": [{"role": "user", "content": "h1"}],
        "response1": "x1",
        "response2": "y1",
        "overall_preference": -2,
    },
    {
        "domain": "code",
        "language": "python",
        "context": [{"role": "user", "content": "h2"}],
        "response1": "x2",
        "response2": "y2",
        "overall_preference": 1,
    },
    {
        "domain": "general",
        "language": "english",
        "context": [{"role": "user", "content": "h3"}],
        "response1": "x3",
        "response2": "y3",
        "overall_preference": 0,
    },
]
BESTOFN = [
    {"id": "b1", "prompt": "6 * 7?", "candidates": ["The answer is \\boxed{42}", "It is 41.", "42"], "answer": "42"},
    {"id": "b2", "prompt": "3 / 4?", "candidates": ["0.75", "1/2"], "answer": "3/4"},
]


def write_fixtures(folder: Path) -> dict[str, Path]:
    """One file per benchmark, each in a different published format."""
    paths = {
        "rmbench": folder / "rmbench.json",
        "judgebench": folder / "judgebench.jsonl",
        "helpsteer3": folder / "helpsteer3.parquet",
        "bestofn": folder / "bestofn.json",
    }
    paths["rmbench"].write_text(json.dumps(RMBENCH))
    paths["judgebench"].write_text("".join(json.dumps(r) + "\n" for r in JUDGEBENCH))
    pq.write_table(pa.Table.from_pylist(HELPSTEER3), paths["helpsteer3"])
    paths["bestofn"].write_text(json.dumps(BESTOFN))
    return paths
