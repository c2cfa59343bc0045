"""Every fenced code block of README.md and docs/*.md is checked here, or says visibly why not.

What a block gets, by its language:

* ``python``: compiled; every name it imports from the project's packages must exist there. Blocks that promise
  their output (``print(...)  # output``) are also run, by test_readme.py.
* ``json``: parsed.
* ``yaml``: parsed; a Serve config's application args, or a fragment of them (top-level keys ``principle``,
  ``pairwise``, ``router``), validated by the project's configuration models.
* ``bash``: every command must be one this test can check: ``python -m serve_app <subcommand>`` with options that
  subcommand has, ``python -m bench.<module>`` of an existing module, ``pip install`` of the project's extras,
  ``serve run <config>`` and Serve's other subcommands, ``curl`` to a route of docs/openapi.json with a JSON body
  that matches the route's request schema. Files of the repository it names must exist.
* anything else (``text``: diagrams) is not checked.

A block that is not checked, or calls a command this test cannot check, carries the visible note
``*Not run: <reason>.*`` as the nearest non-blank line above its opening fence; such blocks are listed, one test each
with the reason in its id (``pytest -v``). A block with neither fails, naming its file and line.

Fast and offline: no Ray cluster, no network.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<lang>[\w+-]*)[^\n]*$")
NOT_RUN = re.compile(r"^\s*\*Not run: (?P<reason>.+?)\.?\*\s*$")
PROJECT_PACKAGES = ("serve_app", "policies", "deployments", "bench")
CHECKED = {"python", "py", "json", "yaml", "yml", "bash", "sh", "shell"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None  # the reason of a *Not run: ...* note, if the block carries one

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = next(
            (
                j
                for j in range(i + 1, len(lines))
                if lines[j].strip().startswith(fence) and not lines[j].strip()[len(fence) :].strip()
            ),
            None,
        )
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: a code block that is never closed"
        body = "\n".join(line[indent:] if line[:indent].strip() == "" else line for line in lines[i + 1 : end])
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        note = NOT_RUN.match(above)
        found.append(Block(page, i + 1, opening["lang"].lower(), body + "\n", note["reason"] if note else None))
        i = end + 1
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


# ---- python ------------------------------------------------------------------------------------------------------


def check_python(code: str, where: str) -> None:
    compile(code, where, "exec")
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT_PACKAGES:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or _is_submodule(node.module, alias.name), (
                    f"{where}: {node.module} has no {alias.name}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT_PACKAGES:
                    importlib.import_module(alias.name)


def _is_submodule(package: str, name: str) -> bool:
    try:
        importlib.import_module(f"{package}.{name}")
    except ImportError:
        return False
    return True


# ---- yaml --------------------------------------------------------------------------------------------------------


def check_yaml(code: str, where: str) -> None:
    from pydantic import TypeAdapter

    from serve_app.config import AppConfig

    document = yaml.safe_load(code)
    if isinstance(document, dict) and "applications" in document:
        for app in document["applications"]:
            if app.get("import_path") == "serve_app.app:build_app":
                AppConfig.model_validate(app.get("args") or {})
    elif isinstance(document, dict) and document and set(document) <= set(AppConfig.model_fields):
        for key, value in document.items():
            TypeAdapter(AppConfig.model_fields[key].annotation).validate_python(value)


# ---- bash --------------------------------------------------------------------------------------------------------


@functools.cache
def cli_options() -> dict[str, set[str]]:
    """Each ``python -m serve_app`` subcommand and the options its --help lists."""

    def helptext(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "serve_app", *args, "--help"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return out.stdout

    listed = re.search(r"\{([\w,-]+)\}", helptext())
    assert listed is not None, "python -m serve_app --help lists no subcommands"
    return {sub: set(re.findall(r"(?<![\w-])(--[\w-]+)", helptext(sub))) for sub in listed[1].split(",")}


@functools.cache
def openapi() -> dict[str, Any]:
    return json.loads((ROOT / "docs" / "openapi.json").read_text())


@functools.cache
def extras() -> set[str]:
    import tomllib

    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def _one_line_per_command(script: str) -> str:
    """Continuation lines joined, comments dropped, and each unquoted new line turned into ``;``."""
    out: list[str] = []
    quote = None
    text = script.replace("\\\n", " ")
    i = 0
    while i < len(text):
        char = text[i]
        if quote is not None:
            if char == quote:
                quote = None
            elif char == "\\" and quote == '"' and i + 1 < len(text):
                out.append(char)
                i += 1
                char = text[i]
            out.append(char)
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "#" and (not out or out[-1][-1] in " \t;"):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(" ; " if char == "\n" else char)
        i += 1
    return "".join(out)


def commands(script: str) -> list[list[str]]:
    """The simple commands of a script, split at new lines and ; && || | &, without leading VAR=value."""
    lexer = shlex.shlex(_one_line_per_command(script), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    result: list[list[str]] = [[]]
    for token in lexer:
        if set(token) <= set(";&|"):
            result.append([])
        else:
            result[-1].append(token)
    cleaned = []
    for command in result:
        while command and re.fullmatch(r"[A-Za-z_]\w*=.*", command[0]):
            command = command[1:]
        if command:
            cleaned.append(command)
    return cleaned


def repo_path(token: str) -> Path | None:
    """The repository file a token names, when its first component is an entry of the repository's root."""
    if token.startswith("-") or "://" in token or token.startswith(("../", "/", "~", "$")):
        return None
    first = token.split("/")[0]
    return ROOT / token if first and (ROOT / first).exists() and first != "." else None


def check_files(tokens: list[str], where: str) -> None:
    for token in tokens:
        path = repo_path(token)
        assert path is None or path.exists(), f"{where}: {token} does not exist in the repository"


def check_python_command(args: list[str], where: str) -> None:
    assert args[:1] in (["-m"], ["-c"]), f"{where}: python {' '.join(args)}: only -m and -c are checked"
    if args[0] == "-c":
        compile(args[1], where, "exec")
        return
    module, rest = args[1], args[2:]
    if module in ("venv", "pytest"):
        return
    if module == "serve_app":
        options = cli_options()
        assert rest and rest[0] in options, f"{where}: python -m serve_app {rest[:1]}: no such subcommand"
        for token in rest[1:]:
            if token.startswith("--"):
                assert token.split("=")[0] in options[rest[0]], f"{where}: {rest[0]} has no option {token}"
        check_files(rest[1:], where)
        return
    if module.startswith("bench."):
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{where}: no module {module}"
        return
    raise AssertionError(f"{where}: python -m {module} is not a command this test checks; add a *Not run* note")


def check_pip(args: list[str], where: str) -> None:
    assert args and args[0] in ("install", "uninstall"), f"{where}: pip {args[:1]}"
    for token in args[1:]:
        spec = re.fullmatch(r"\.?\[([\w,-]+)\]|\.", token.strip("'\""))
        if spec and spec.group(1):
            unknown = set(spec.group(1).split(",")) - extras()
            assert not unknown, f"{where}: pip install of unknown extras {unknown}"


def check_serve(args: list[str], where: str) -> None:
    assert args and args[0] in ("run", "deploy", "status", "shutdown", "config", "build", "start"), (
        f"{where}: serve {args}"
    )
    if args[0] in ("run", "deploy"):
        config = next(a for a in args[1:] if not a.startswith("-"))
        path = ROOT / config
        assert path.is_file(), f"{where}: serve {args[0]} {config}: no such file"
        assert "applications" in yaml.safe_load(path.read_text()), f"{where}: {config} is not a Serve config"


def check_curl(args: list[str], where: str) -> None:
    from jsonschema import validate

    url = next((a for a in args if "localhost:" in a or a.startswith("http")), None)
    assert url is not None, f"{where}: curl without a URL"
    route = "/" + url.split("://")[-1].split("/", 1)[-1] if "/" in url.split("://")[-1] else "/"
    body = args[args.index("-d") + 1] if "-d" in args else None
    method = "post" if body is not None else "get"
    if route in ("/openapi.json", "/docs"):
        return
    paths = openapi()["paths"]
    assert route in paths and method in paths[route], f"{where}: {method.upper()} {route} is not a route"
    if body is None:
        return
    payload = json.loads(body)
    schema = paths[route][method]["requestBody"]["content"]["application/json"]["schema"]
    validate(payload, {**schema, "components": openapi()["components"]})


def check_bash(code: str, where: str) -> None:
    for command in commands(code):
        program, args = Path(command[0]).name, command[1:]
        if program in ("python", "python3"):
            check_python_command(args, where)
        elif program == "pip":
            check_pip(args, where)
        elif program == "serve":
            check_serve(args, where)
        elif program == "curl":
            check_curl(args, where)
        elif program == "ray":
            assert args and args[0] in ("start", "stop", "status"), f"{where}: ray {args}"
        else:
            raise AssertionError(f"{where}: `{program}` is not a command this test checks; add a *Not run* note")


CHECKS = {
    "python": check_python,
    "py": check_python,
    "json": lambda code, where: json.loads(code),
    "yaml": check_yaml,
    "yml": check_yaml,
    "bash": check_bash,
    "sh": check_bash,
    "shell": check_bash,
}


CHECKED = [b for b in BLOCKS if b.not_run is None]
UNCHECKED = [b for b in BLOCKS if b.not_run is not None]


@pytest.mark.parametrize("block", UNCHECKED, ids=[f"{b.where}: {b.not_run}" for b in UNCHECKED])
def test_a_block_that_is_not_run_says_why(block: Block) -> None:
    """Listed here, one test each (``pytest -v`` shows file, line and reason)."""
    assert block.not_run and len(block.not_run.split()) >= 2, f"{block.where}: say why it is not run"


@pytest.mark.parametrize("block", CHECKED, ids=[b.where for b in CHECKED])
def test_code_block_is_checked_or_says_why_not(block: Block) -> None:
    check = CHECKS.get(block.lang)
    assert check is not None, (
        f"{block.where}: a ```{block.lang or '(no language)'} block that no test checks; give it a checked language "
        f"or the note *Not run: <reason>.* on the line above"
    )
    check(textwrap.dedent(block.code), block.where)


def test_python_blocks_import_every_name_they_use(tmp_path: Path) -> None:
    """The examples are complete: no checked python block uses a name it does not define or import (ruff F821)."""
    where = {}
    for n, block in enumerate(b for b in BLOCKS if b.lang in ("python", "py") and b.not_run is None):
        path = tmp_path / f"block_{n}.py"
        path.write_text(textwrap.dedent(block.code))
        where[path.name] = block.where
    ruff = [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--select", "F821"]
    out = subprocess.run([*ruff, "--output-format", "concise", "."], cwd=tmp_path, capture_output=True, text=True)
    found = re.findall(r"^(block_\d+\.py):(\d+):\d+: (.*)$", out.stdout, re.M)
    problems = [f"{where[name]} (line {line} of the block): {what}" for name, line, what in found]
    assert where and not problems, problems
    assert out.returncode == 0, out.stdout + out.stderr


MISTAKES = {
    "no such subcommand": ("bash", "python -m serve_app check-everything config.yaml"),
    "no such option": ("bash", "python -m serve_app render-k8s --dry-run k8s/layouts/production.yaml"),
    "no such file": ("bash", "python -m serve_app check-config configs/tpu.yaml"),
    "no such bench module": ("bash", "python -m bench.nothing"),
    "no such extra": ("bash", "pip install -e '.[cpu,tpu]'"),
    "no such route": ("bash", "curl -s localhost:8000/v1/best"),
    "a body the route refuses": ("bash", 'curl -s localhost:8000/v1/rank -d \'{"candidates": ["a"]}\''),
    "an unchecked command after a checked one": ("bash", "serve run config.yaml && kubectl get pods"),
    "a name the project does not have": ("python", "from serve_app.client import GenRMKlient"),
    "a syntax error": ("python", "print(1"),
    "a key the configuration does not have": ("yaml", "router:\n  max_candidatez: 3\n"),
    "a value out of range": ("yaml", "router:\n  cohorts: {group_size: 0}\n"),
    "broken JSON": ("json", '{"a": 1,}'),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_the_checks_catch_mistakes(mistake: str) -> None:
    lang, code = MISTAKES[mistake]
    with pytest.raises(Exception):  # noqa: B017 - whichever the check raises
        CHECKS[lang](code + "\n", "example")


def test_commands_are_split_as_a_shell_would() -> None:
    script = """RAY_AUTH_MODE=disabled serve run config.yaml   # a comment
curl -s localhost:8000/v1/rank -d '{
  "a": "# not a comment; nor && this"
}' && python -m serve_app check-config \\
  config.yaml &
"""
    assert commands(script) == [
        ["serve", "run", "config.yaml"],
        ["curl", "-s", "localhost:8000/v1/rank", "-d", '{\n  "a": "# not a comment; nor && this"\n}'],
        ["python", "-m", "serve_app", "check-config", "config.yaml"],
    ]


def test_the_pages_have_code_blocks_and_notes_parse() -> None:
    """The parser sees the blocks (a broken fence would hide them), and every note names a reason."""
    assert len(BLOCKS) >= 20
    assert all(b.not_run for b in BLOCKS if b.not_run is not None)
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            if "not run:" in line.lower() and not line.lstrip().startswith("<!--"):
                assert NOT_RUN.match(line), f"{page.relative_to(ROOT)}:{number}: write the note as *Not run: reason.*"


# ---- pages that list what the code has ---------------------------------------------------------------------------


def test_cli_page_lists_every_subcommand_and_option() -> None:
    """docs/cli.md has a section per subcommand of ``python -m serve_app``, naming each of its options."""
    text = (ROOT / "docs" / "cli.md").read_text()
    missing = []
    for sub, options in cli_options().items():
        match = re.search(rf"^## {re.escape(sub)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
        if match is None:
            missing.append(sub)
            continue
        missing += [f"{sub} {option}" for option in sorted(options - {"--help"}) if f"`{option}" not in match[1]]
    assert not missing, f"docs/cli.md does not describe: {missing}"


def test_http_api_page_names_every_route() -> None:
    """Every route of the served schema (docs/openapi.json) is in the route table of docs/http-api.md."""
    text = (ROOT / "docs" / "http-api.md").read_text()
    missing = [path for path in openapi()["paths"] if f"{path}`" not in text]
    assert not missing, f"docs/http-api.md does not name these routes: {missing}"


# ---- links -------------------------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$", re.M)


def slug(title: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", title.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(m["title"]) for m in HEADING.finditer(text)}


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_repository_paths_in_backticks_exist(page: Path) -> None:
    """A file or folder of the repository named in backticks (``configs/gpu.yaml``, ``k8s/layouts/*.yaml``)
    exists; names with placeholders (``<layout>``) and paths outside the repository are not checked."""
    missing = []
    for token in set(re.findall(r"`([\w.*/-]+/[\w.*/-]*|[\w-]+\.(?:yaml|py|md|json))`", page.read_text())):
        path = repo_path(token.rstrip("/"))
        if path is not None and not (any(ROOT.glob(token.rstrip("/"))) if "*" in token else path.exists()):
            missing.append(token)
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {sorted(missing)}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link names an existing file, and an anchor names a heading of that page."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for match in LINK.finditer(text):
        target = match["target"]
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links to nothing: {broken}"
