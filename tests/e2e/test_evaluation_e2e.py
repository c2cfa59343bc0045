"""The evaluation CLI end to end on the CPU default: fixture files in each published format, judged by the real
engines through the running service, stopped after part of the run and resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
httpx = pytest.importorskip("httpx")

from evaluation_fixtures import RMBENCH, write_fixtures  # noqa: E402
from live_service import BASE  # noqa: E402

from serve_app.__main__ import main  # noqa: E402


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_evaluate_through_the_service_and_resume(service: httpx.Client, tmp_path: Path) -> None:
    paths = write_fixtures(tmp_path)
    paths["rmbench"].write_text(json.dumps(RMBENCH[:1]))  # 24 judge calls per record on CPU: one is enough here
    out = tmp_path / "run"
    args = ["evaluate", "--url", BASE, "--out", str(out), "--strategy", "knockout", "--strategy", "round_robin"]
    for benchmark, path in paths.items():
        args += [f"--{benchmark}", str(path)]

    assert main([*args, "--limit", "1"]) == 0  # a first, partial run: one item per benchmark
    first = _lines(out / "outputs.jsonl")
    assert sorted(o["benchmark"] for o in first) == ["bestofn", "helpsteer3", "judgebench", "rmbench"]

    assert main(args) == 0  # the full run resumes: finished items are not sent again
    outputs = _lines(out / "outputs.jsonl")
    assert outputs[: len(first)] == first
    keys = [(o["benchmark"], o["item"]) for o in outputs]
    assert len(keys) == len(set(keys)) == 1 + 3 + 3 + 2

    rm = next(o for o in outputs if o["benchmark"] == "rmbench")
    assert set(rm["principle"]) == {"c0", "c1", "c2", "r0", "r1", "r2"} and len(rm["pairwise"]) == 9
    rewards = [r["reward"] for v in rm["principle"].values() for r in v or [] if r.get("reward") is not None]
    assert rewards, "the principle judge should have produced real Yes/No rewards"
    verdicts = [p["forward"].get("verdict") for p in rm["pairwise"].values() if p]
    assert any(verdicts), "the pairwise judge should have produced verdicts"
    picked = next(o for o in outputs if o["benchmark"] == "bestofn")["bestofn"]
    assert set(picked) == {"knockout", "round_robin"} and all(p["index"] is not None for p in picked.values())

    report = (out / "report.md").read_text()
    for heading in ("RM-Bench", "JudgeBench", "HelpSteer3", "Best-of-N"):
        assert heading in report, heading
    assert "86.2" in report and "87.4" in report  # the published numbers beside the measured ones
    assert {p.name for p in out.glob("*.png")} >= {"rmbench_domains.png", "judgebench.png"}
