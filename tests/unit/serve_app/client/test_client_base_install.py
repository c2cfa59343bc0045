"""``serve_app.client`` works after ``pip install genrm-ensemble`` without extras.

A child interpreter (isolated: no user site, no PYTHONPATH, no current directory on ``sys.path``; only the repo
added) refuses, through a ``sys.meta_path`` finder, every top-level module that is neither in the standard library
nor installed by the distributions of pyproject's base ``dependencies`` and their own (non-extra) requirements, nor
one of the project's packages. In it the client's modules must import and a client must be built. A refused import
that the importing code catches (an optional accelerator of httpx, say) is what a base install sees too, so only an
import that fails counts; the failure lists every refused module.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def _repo_root() -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    raise AssertionError("no pyproject.toml above this test")


REPO = _repo_root()
#: The project's own top-level packages (pyproject's [tool.setuptools.packages.find] include).
OWN_PACKAGES = ("serve_app", "deployments", "policies")
#: What a user of the client imports. The trainer modules import their trainer only inside the functions that need
#: it (serve_app.client.areal.with_timeout imports AReaL's AsyncRewardWrapper when called), so all of them belong.
CLIENT_MODULES = (
    "serve_app.client",
    "serve_app.client.http",
    "serve_app.client.rollouts",
    "serve_app.client.trl",
    "serve_app.client.verl",
    "serve_app.client.areal",
)


def _base_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def _applies(req: Requirement, extras: Iterable[str]) -> bool:
    """Whether ``req`` is installed here when its distribution is installed with ``extras`` (none: the base)."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def _distributions(roots: list[Requirement]) -> tuple[set[str], list[str]]:
    """Canonical names of the installed distributions that ``roots`` pull in, and the requirements not installed."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    missing: list[str] = []
    todo = [req for req in roots if _applies(req, ())]
    while todo:
        req = todo.pop()
        name, extras = canonicalize_name(req.name), frozenset(req.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            missing.append(str(req))
            continue
        names.add(name)
        for spec in dist.requires or ():
            sub = Requirement(spec)
            if _applies(sub, extras):
                todo.append(sub)
    return names, missing


def _top_level_modules(dists: set[str]) -> set[str]:
    modules = {
        module
        for module, owners in md.packages_distributions().items()
        if any(canonicalize_name(owner) in dists for owner in owners)
    }
    for name in dists:  # distributions whose RECORD packages_distributions() did not read
        text = md.distribution(name).read_text("top_level.txt") or ""
        modules.update(line.strip() for line in text.splitlines() if line.strip())
    return modules


_CHILD = """
import importlib, importlib.machinery, json, os, sys, sysconfig, traceback

allowed = set(json.loads(sys.argv[1]))
sys.path.insert(0, sys.argv[2])
refused = []
# The interpreter's own library directories, for stdlib modules sys.stdlib_module_names does not name (e.g.
# _sysconfigdata_*): whatever lives there and not under site-packages.
stdlib_dirs = {os.path.realpath(sysconfig.get_paths()[key]) + os.sep for key in ("stdlib", "platstdlib")}
site_dirs = {os.path.realpath(sysconfig.get_paths()[key]) + os.sep for key in ("purelib", "platlib")}


def in_stdlib(top):
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return True
    spec = importlib.machinery.PathFinder.find_spec(top)
    origin = os.path.realpath(spec.origin) if spec is not None and spec.origin else ""
    return any(origin.startswith(d) for d in stdlib_dirs) and not any(origin.startswith(d) for d in site_dirs)


class Refuse:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in allowed or in_stdlib(top):
            return None
        refused.append(name)
        raise ModuleNotFoundError(f"not installed by a base install: {name}", name=name)


sys.meta_path.insert(0, Refuse())
error = None
try:
    for module in json.loads(sys.argv[3]):
        importlib.import_module(module)
    from serve_app.client import GenRMClient

    GenRMClient(base_url="http://127.0.0.1:9").close()  # builds the pool; no request
except BaseException:
    error = traceback.format_exc()
print(json.dumps({"refused": refused, "error": error}))
"""


def test_client_imports_with_only_the_base_dependencies() -> None:
    dists, missing = _distributions(_base_requirements())
    allowed = _top_level_modules(dists) | set(OWN_PACKAGES)
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _CHILD, json.dumps(sorted(allowed)), str(REPO), json.dumps(CLIENT_MODULES)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["error"] is None, (
        f"the client needs modules a base install lacks; refused: {sorted(set(report['refused']))}"
        f"{f'; base requirements not installed here: {missing}' if missing else ''}\n{report['error']}"
    )
