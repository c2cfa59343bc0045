"""The README's two Python examples, run as a reader would run them, against the suite's service: the client
example as written, the TRL example as one GRPOTrainer step of a tiny local policy (the README names a hub model;
nothing is downloaded here). Only the service's address, the policy and the step count are replaced."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from live_service import BASE, smollm2_folder

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README_BASE = "http://127.0.0.1:8000"


def readme_example(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, f"README section {heading!r} has no python example"
    return found.group(1)


def replaced(code: str, old: str, new: str, count: int = 1) -> str:
    assert code.count(old) == count, f"the README example no longer holds {old!r} {count} time(s)"
    return code.replace(old, new)


def run(code: str, cwd: Path, timeout_s: float) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GENRM_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()


def test_the_readme_client_example_runs(service: httpx.Client, tmp_path: Path) -> None:
    code = replaced(readme_example("Call it from Python"), README_BASE, BASE)
    best, ranked = run(code, tmp_path, 600)[-2:]
    index = int(best.split()[0])
    assert 0 <= index < 3 and best.split(maxsplit=1)[1].startswith(("The capital", "I think", "Paris"))
    scores, ranks = re.fullmatch(r"(\[.*\]) (\[.*\])", ranked).groups()  # type: ignore[union-attr]
    assert sorted(ast.literal_eval(ranks)) == [1, 2, 3] and len(ast.literal_eval(scores)) == 3


def test_the_readme_trl_example_trains_one_step(service: httpx.Client, tmp_path: Path) -> None:
    from bench.trl_grpo import tiny_policy

    model: Any
    model, tokenizer = tiny_policy(smollm2_folder())
    policy = tmp_path / "policy"
    model.save_pretrained(policy)
    tokenizer.save_pretrained(policy)
    code = replaced(readme_example("Train with TRL (GRPO)"), README_BASE, BASE)
    code, n = re.subn(r"^POLICY = .*$", f"POLICY = {str(policy)!r}", code, flags=re.M)
    assert n == 1, "the README's TRL example no longer sets POLICY on one line"
    code = replaced(code, "max_steps=2", "max_steps=1")
    logged = ast.literal_eval(run(code, tmp_path, 1200)[-1])
    assert len(logged) == 1 and isinstance(logged[0], float)  # one step, its mean reward from the service
