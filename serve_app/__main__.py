"""``python -m serve_app <command>``: the command line (:mod:`serve_app.cli`)."""

from __future__ import annotations

import sys

from serve_app.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
