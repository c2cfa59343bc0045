"""The code's layout, checked from its source (AST): where things may live and which way imports point.

* policies/ imports neither deployments/ nor serve_app/ (nor Ray or vLLM); deployments/ does not import serve_app/;
* no two modules import each other, directly or through others (module-level imports; imports inside functions
  count too for a pair that imports each other);
* serve_app/core has no HTTP types; no route or serving module takes admission slots, judge lanes or a cohort table;
* only public Ray APIs;
* no two modules in serve_app/ share a file name, and no two public classes of the project share a name.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
PACKAGES = ("policies", "deployments", "serve_app")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[_module_name(path)] = (path, ast.parse(path.read_text(), str(path)))
    return out


SOURCES = _sources()


def _imports(tree: ast.Module, *, top_level_only: bool) -> set[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from package import module`` imports the module
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _project_imports(name: str, *, top_level_only: bool) -> set[str]:
    tree = SOURCES[name][1]
    return {m for m in _imports(tree, top_level_only=top_level_only) if m in SOURCES and m != name}


def test_dependencies_point_one_way() -> None:
    wrong = []
    for name, (_, tree) in SOURCES.items():
        imported = _imports(tree, top_level_only=False)
        roots = {m.split(".")[0] for m in imported}
        if name.startswith("policies"):
            wrong += [f"{name} imports {r}" for r in roots & {"deployments", "serve_app", "ray", "vllm", "fastapi"}]
        if name.startswith("deployments"):
            wrong += [f"{name} imports {r}" for r in roots & {"serve_app", "fastapi"}]
    assert not wrong, wrong


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = {name: _project_imports(name, top_level_only=True) for name in SOURCES}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # Package __init__ modules are imported by their submodules' import: ignore an __init__ that only re-exports.
    assert not cycles, cycles
    everywhere = {name: _project_imports(name, top_level_only=False) for name in SOURCES}
    pairs = sorted({tuple(sorted((a, b))) for a, bs in everywhere.items() for b in bs if a in everywhere.get(b, ())})
    assert not pairs, pairs


def test_the_core_has_no_http_types() -> None:
    http = {"fastapi", "starlette", "uvicorn"}
    wrong = [
        name
        for name, (_, tree) in SOURCES.items()
        if name.startswith("serve_app.core") and {m.split(".")[0] for m in _imports(tree, top_level_only=False)} & http
    ]
    assert not wrong, wrong


@pytest.mark.parametrize("surface", ["serve_app.routes", "serve_app.serving"])
def test_surfaces_take_no_slots_lanes_or_cohort_tables(surface: str) -> None:
    forbidden_modules = {"serve_app.core.admission", "serve_app.core.lanes"}
    forbidden_names = {"Admission", "JudgeLane", "Cohorts", "Overloaded", "CallTiming"}
    wrong = []
    for name, (_, tree) in SOURCES.items():
        if not name.startswith(surface):
            continue
        wrong += [f"{name} imports {m}" for m in _imports(tree, top_level_only=False) & forbidden_modules]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                wrong += [f"{name} imports {a.name}" for a in node.names if a.name in forbidden_names]
            elif isinstance(node, ast.Attribute) and node.attr in {"admission", "lanes", "cohorts"}:
                wrong.append(f"{name} uses .{node.attr} (line {node.lineno})")
    assert not wrong, wrong


def test_only_public_ray_apis() -> None:
    wrong = [
        f"{name} imports {m}"
        for name, (_, tree) in SOURCES.items()
        for m in _imports(tree, top_level_only=False)
        if m.startswith("ray.") and any(part.startswith("_") for part in m.split("."))
    ]
    assert not wrong, wrong


def test_module_file_names_are_unique_in_serve_app() -> None:
    by_name = collections.defaultdict(list)
    for path, _ in SOURCES.values():
        if path.name != "__init__.py" and path.relative_to(ROOT).parts[0] == "serve_app":
            by_name[path.name].append(str(path.relative_to(ROOT)))
    assert not {k: v for k, v in by_name.items() if len(v) > 1}


def test_public_class_names_are_unique() -> None:
    by_name = collections.defaultdict(list)
    for name, (_, tree) in SOURCES.items():
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                by_name[node.name].append(name)
    assert not {k: v for k, v in by_name.items() if len(v) > 1}
