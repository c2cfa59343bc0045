"""The HTTP schema is a contract: the schema a replica serves at /openapi.json must equal the committed
docs/openapi.json. A change that alters it regenerates the file in the same commit:
``GENRM_WRITE_OPENAPI=1 python -m pytest tests -k served_schema``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stand_in_judges import QualityPrinciple, run_app

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SCHEMA = ROOT / "docs" / "openapi.json"


def _served() -> dict:
    async def go(http):
        response = await http.get("/openapi.json")
        assert response.status_code == 200
        return response.json()

    return run_app(go, principle=QualityPrinciple())


def test_served_schema_matches_committed() -> None:
    served = _served()
    if os.environ.get("GENRM_WRITE_OPENAPI"):
        SCHEMA.write_text(json.dumps(served, indent=1, sort_keys=True) + "\n")
    committed = json.loads(SCHEMA.read_text())
    changed = sorted(
        {*served.get("paths", {}), *committed.get("paths", {})}
        - {p for p in served.get("paths", {}) if served["paths"].get(p) == committed.get("paths", {}).get(p)}
    )
    assert served == committed, (
        f"the served OpenAPI schema differs from docs/openapi.json (paths changed: {changed or 'none; components'}); "
        "regenerate it with GENRM_WRITE_OPENAPI=1 in the commit that changes the schema"
    )
