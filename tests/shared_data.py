"""Where the tests find the published third-party data: ``../shared/data`` beside the repository, or the folder
GENRM_SHARED_DATA names. It is read in place, never copied into the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_app.local_service import shared_path

SHARED_DATA = shared_path("data")


def shared(relative: str) -> Path:
    """The data file at ``relative``; the test is skipped, saying which file and how to point at it, when absent."""
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"published data file {path} is missing (set GENRM_SHARED_DATA to the folder holding {relative})")
    return path
