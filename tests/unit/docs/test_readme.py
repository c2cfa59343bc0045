"""The README is the five-minute path: short, in its fixed order, with the project's real commands and request, and
a table that links every page of docs/. Python examples that promise their output (in the README or docs/) run
offline and print it."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
PROMISE = re.compile(r"print\(.*\)\s+#\s*(.+)")
MAX_LINES = 250
SECTIONS = [
    "Requirements",
    "The two commands",
    "The first request",
    "I want to…",
    "Call it from Python",
    "Train with TRL (GRPO)",
    "Configurations",
    "Limitations",
    "Documentation",
]


def test_examples_print_what_they_promise() -> None:
    """Every Python block that promises its output (``print(...)  # output``) runs offline and prints it; the
    blocks that need a running service (the client, the trainers) promise nothing."""
    blocks = [
        (page, code)
        for page in PAGES
        for code in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
        if PROMISE.search(code)
    ]
    assert blocks, "no self-contained python example in README.md or docs/"
    for page, code in blocks:
        promised = PROMISE.search(code)
        assert promised is not None
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(page.relative_to(ROOT)), "exec"), {})
        assert out.getvalue().strip() == promised.group(1).strip()


def test_readme_commands_and_curl_example_match_the_project() -> None:
    """The two commands use the project's extras and the CI uses the README's test command; the curl body is a
    valid request for the documented route."""
    from serve_app.protocols.genrm_api import BestOfNRequest

    text = README.read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*?)\n```", text)
    assert len(commands) == 2 and commands[0].endswith("serve run config.yaml")
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci, "CI must run the README's test command verbatim"
    curl = re.search(r"curl -s localhost:8000(/v1/\w+) .*?-d '(.*?)'\n", text, re.S)
    assert curl is not None and curl.group(1) == "/v1/best_of_n"
    BestOfNRequest.model_validate(json.loads(curl.group(2)))


def test_readme_is_the_five_minute_path() -> None:
    """At most 250 lines, its sections in the agreed order, and a way to stop what the first command starts."""
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"README.md has {len(text.splitlines())} lines; at most {MAX_LINES}"
    sections = re.findall(r"^## (.+)$", text, re.M)
    assert sections == SECTIONS, sections
    two_commands = text[text.index("## The two commands") : text.index("## The first request")]
    assert "Ctrl-C" in two_commands, "the README says how to stop the service"


def test_readme_links_every_docs_page() -> None:
    """The documentation table names every page of docs/, the schema included."""
    table = README.read_text().split("## Documentation", 1)[1]
    linked = set(re.findall(r"\]\(docs/([^)#]+)\)", table))
    pages = {p.name for p in (ROOT / "docs").iterdir() if p.suffix in (".md", ".json")}
    assert pages <= linked, f"not linked from the README's documentation table: {sorted(pages - linked)}"
