"""The README's Python example runs and prints what its comment says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
PROMISE = re.compile(r"print\(.*\)\s+#\s*(.+)")


def test_readme_example_prints_what_it_promises() -> None:
    """Every Python block that promises its output (``print(...)  # output``) runs offline and prints it; the
    blocks that need a running service (the client, the trainers) promise nothing."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if PROMISE.search(b)]
    assert blocks, "README has no self-contained python example"
    for code in blocks:
        promised = PROMISE.search(code)
        assert promised is not None
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        assert out.getvalue().strip() == promised.group(1).strip()


def test_readme_commands_and_curl_example_match_the_project() -> None:
    """The two commands use the project's extras and the CI uses the README's test command; the curl body is a
    valid request for the documented route."""
    import json

    from serve_app.protocols.genrm_api import BestOfNRequest

    text = README.read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*?)\n```", text)
    assert len(commands) == 2 and commands[0].endswith("serve run config.yaml")
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci, "CI must run the README's test command verbatim"
    curl = re.search(r"curl -s localhost:8000(/v1/\w+) .*?-d '(.*?)'\n", text, re.S)
    assert curl is not None and curl.group(1) == "/v1/best_of_n"
    BestOfNRequest.model_validate(json.loads(curl.group(2)))
