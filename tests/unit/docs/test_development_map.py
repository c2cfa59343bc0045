"""docs/development.md maps behaviours to the one module that holds each: every named symbol imports from the
module the page names."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
ROW = re.compile(r"^\| (?P<what>[^|]+) \| `(?P<module>[\w.]+)` \| `(?P<symbol>\w+)` \|$", re.M)


def test_every_named_symbol_lives_where_the_page_says() -> None:
    rows = ROW.findall((ROOT / "docs" / "development.md").read_text())
    assert len(rows) >= 15
    missing = [
        f"{module}.{symbol} ({what.strip()})"
        for what, module, symbol in rows
        if not hasattr(importlib.import_module(module), symbol)
    ]
    assert not missing, missing
