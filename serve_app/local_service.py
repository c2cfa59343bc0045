"""A Serve config run locally as a managed `serve run` subprocess: started, waited for until the router is ready,
and stopped with everything it started (nothing else on the machine). Used by the evaluation CLI (``--serve``),
the end-to-end tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:8000"
START_TIMEOUT_S = 900
CONVERSATION = [{"role": "user", "content": "What is the capital of France?"}]


def shared_path(*parts: str) -> Path:
    """A path in the shared reference folder beside the project (``../shared``: published data, the KubeRay CRD),
    read in place and never copied; ``GENRM_SHARED_DATA`` names its ``data`` folder elsewhere."""
    if parts[:1] == ("data",) and (data := os.environ.get("GENRM_SHARED_DATA")):
        return Path(data, *parts[1:])
    return ROOT.parent.joinpath("shared", *parts)


def cpu_default_args() -> dict[str, Any]:
    """The application args of config.yaml (the CPU default)."""
    import yaml

    return yaml.safe_load((ROOT / "config.yaml").read_text())["applications"][0]["args"]


def cpu_default_model_folder() -> Path:
    """The local folder of the model config.yaml serves (both judges; converted at its first start): its tokenizer
    is what clients, tests and benchmarks of the CPU default tokenize with."""
    from serve_app.model_cache import converted_folder

    hosted = cpu_default_args()["principle"]["hosted"]
    return converted_folder(hosted["llm_config"]["model_loading_config"]["model_source"])


def _ready(client: httpx.Client) -> bool:
    """The router's own readiness: every judge has answered its warm-up call (``/readyz``)."""
    try:
        return client.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


class ServeRun:
    """The running `serve run` process and an HTTP client for it."""

    def __init__(self, proc: subprocess.Popen[bytes], client: httpx.Client) -> None:
        self.proc = proc
        self.client = client


def local_ray_env(**extra: str) -> dict[str, str]:
    """This process's environment for a Ray or Serve command on a cluster of this machine (no auth token), with
    ``extra`` variables."""
    return {**os.environ, "RAY_AUTH_MODE": "disabled", **extra}


@contextlib.contextmanager
def serve_run_process(
    config: str | Path = "config.yaml",
    log_path: Path | None = None,
    *,
    port: int | None = None,
    address: str | None = None,
) -> Iterator[ServeRun]:
    """``config`` is relative to the project root (or absolute); ``log_path`` receives `serve run`'s output.
    ``port``: serve HTTP there instead of the config's port (a copy of the config with that ``http_options.port``
    is run); ``address``: deploy on that Ray cluster instead of the one `serve run` would find or start."""
    env = local_ray_env(PYTHONPATH=str(ROOT))
    serve_cli = Path(sys.executable).parent / "serve"
    log = log_path.open("w") if log_path is not None else None
    base = BASE
    with contextlib.ExitStack() as stack:
        if port is not None:
            config = _with_port(Path(ROOT, config), port, Path(stack.enter_context(tempfile.TemporaryDirectory())))
            base = f"http://127.0.0.1:{port}"
        command = [str(serve_cli), "run", str(config), *(["--address", address] if address else [])]
        yield from _run(command, env, log, base, config)


def _with_port(config: Path, port: int, folder: Path) -> Path:
    import yaml

    data = yaml.safe_load(config.read_text())
    data.setdefault("http_options", {})["port"] = port
    copy = folder / config.name
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def _run(command: list[str], env: dict[str, str], log: Any, base: str, config: Any) -> Iterator[ServeRun]:
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = httpx.Client(base_url=base, timeout=300)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(client):
            if proc.poll() is not None:
                raise RuntimeError(f"`serve run {config}` exited with {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"`serve run {config}` not ready after {START_TIMEOUT_S} s")
            time.sleep(5)
        yield ServeRun(proc, client)
    finally:
        client.close()
        with contextlib.suppress(Exception):
            import ray

            ray.shutdown()  # this process's driver connection only
        # SIGTERM stops `serve run` and the cluster it started; nothing else on the machine is touched.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if log is not None:
            log.close()


@contextlib.contextmanager
def serve_run(
    log_path: Path | None = None, *, port: int | None = None, address: str | None = None
) -> Iterator[httpx.Client]:
    with serve_run_process(log_path=log_path, port=port, address=address) as run:
        yield run.client
