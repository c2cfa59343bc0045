"""The CPU default served for real: `serve run config.yaml`, started once per test session and shared.

It runs on a Ray cluster of its own (:func:`own_ray_cluster`: its own temp folder and ports) and serves HTTP on a
free port of its own (:data:`BASE`), so a cluster or service the user left running — on 8000 or Ray's default ports —
is never touched, and teardown stops only the processes this cluster started. Tests that need it take the
``service`` fixture (tests/conftest.py). Extra routers for a single test (a judge that
is down or hangs, stricter limits, fault injection) are deployed as further applications on the same cluster with
:func:`deployed` and deleted afterwards, so the main application is never reconfigured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from serve_app.local_service import CONVERSATION, ROOT, local_ray_env, serve_run
from serve_app.local_service import cpu_default_args as cpu_args
from serve_app.local_service import cpu_default_model_folder as smollm2_folder

__all__ = ["BASE", "CONVERSATION", "ROOT", "cpu_args", "serve_run", "smollm2_folder"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: the end-to-end service's HTTP port and address: chosen once per test session, never 8000
PORT = free_port()
BASE = f"http://127.0.0.1:{PORT}"
#: the GCS address of the session's own Ray cluster, once :func:`own_ray_cluster` has started it
CLUSTER: dict[str, str] = {}

CANDIDATES = ["The capital of France is Paris.", "I think it is Lyon.", "Paris.", "France has no capital."]
PRINCIPLE_DEPLOYMENT = "principle-genrm:smollm2-135m-principle"
PAIRWISE_DEPLOYMENT = "pairwise-genrm:smollm2-135m-pairwise"


def connect() -> None:
    """Join the cluster `serve run` started, as a driver (starts nothing)."""
    import ray

    if not ray.is_initialized():
        # log_to_driver off: the replicas' logs (each request's access line) stay in the cluster's log files and
        # `serve run`'s log, instead of flooding the test output
        ray.init(address=CLUSTER["address"], logging_level="ERROR", log_to_driver=False)


def alive_actors(address: str | None = None) -> list[Any]:
    """The live actors of this session's cluster (or of the cluster at ``address``), from Ray's state API, asked at
    that cluster's address: with another Ray cluster on the machine, "auto" would not know which one."""
    from ray.util.state import list_actors

    if address is None:
        connect()
        address = CLUSTER["address"]
    return list_actors(address=address, filters=[("state", "=", "ALIVE")], limit=10_000)


def metrics_text() -> str:
    from bench.ray_metrics import metrics_text as scrape

    connect()
    return scrape()


def judge_handle(deployment: str) -> Any:
    from ray import serve

    connect()
    return serve.get_deployment_handle(deployment, app_name="genrm")


@contextlib.contextmanager
def deployed(app: Any, name: str, client: httpx.Client, timeout_s: float = 120) -> Iterator[str]:
    """Run ``app`` as application ``name`` under ``/name`` until the block ends; yields the route prefix."""
    from ray import serve

    connect()
    prefix = f"/{name}"
    serve.run(app, name=name, route_prefix=prefix, blocking=False)
    try:
        deadline = time.monotonic() + timeout_s
        while client.get(f"{prefix}/healthz").status_code != 200:
            assert time.monotonic() < deadline, f"application {name} did not start"
            time.sleep(1)
        yield prefix
    finally:
        serve.delete(name)


def router_app(config: dict[str, Any], principle: Any, pairwise: Any, name: str) -> Any:
    """A router with ``config`` (AppConfig args) in front of the given judge handles or deployments."""
    from serve_app.config import AppConfig
    from serve_app.ingress.deployment import Router

    tokenizer = str(smollm2_folder())
    args = AppConfig.model_validate(config).model_dump(mode="json")
    if "auth_token" in config.get("router", {}):
        args["router"]["auth_token"] = config["router"]["auth_token"]
    return Router.options(name=name, ray_actor_options={"num_cpus": 0}).bind(
        args, {"principle": tokenizer, "pairwise": tokenizer}, principle, pairwise
    )


def _processes_of(folder: str) -> list[int]:
    """Processes whose command line names ``folder`` (every Ray process of a cluster started with that temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if folder in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
    return found


#: the ports every Ray node takes (its own free ones, so a cluster the user runs is never joined or disturbed)
NODE_PORT_FLAGS = (
    "--node-manager-port",
    "--object-manager-port",
    "--metrics-export-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
)
#: the ports only a head takes
HEAD_PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port")
RAY_START = [
    str(Path(sys.executable).parent / "ray"),
    "start",
    "--block",
    "--node-ip-address=127.0.0.1",
    "--disable-usage-stats",
]


def node_ports(head: bool) -> dict[str, int]:
    """A free port for every flag a node (``head``: a head node) takes."""
    return {flag: free_port() for flag in (*NODE_PORT_FLAGS, *(HEAD_PORT_FLAGS if head else ()))}


def stop_processes_of(temp: str) -> None:
    """SIGTERM, then SIGKILL, every process of the cluster started with temp folder ``temp``."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
        for pid in _processes_of(temp):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _processes_of(temp):
            time.sleep(0.5)


def _tail(path: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _why_not_started(temp: str, log_path: Path, proc: subprocess.Popen[bytes]) -> str:
    """What a head that did not start left behind: its exit code, the end of its output, and the end of every
    non-empty error log of its Ray session (gcs_server.err, raylet.err, dashboard.err, ...)."""
    state = f"exited with {proc.returncode}" if proc.returncode is not None else "still starting at the deadline"
    parts = [f"`ray start` {state}; its output ends:\n{_tail(log_path)}"]
    for err in sorted(Path(temp).glob("session_*/logs/*.err")):
        if err.stat().st_size:
            parts.append(f"{err.name} ends:\n{_tail(err, 10)}")
    return "\n".join(parts)


def start_ray_head(
    temp: str, log_path: Path, flags: list[str], attempts: int = 3
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """Start a Ray head (`ray start --head --block`, temp folder ``temp``, extra ``flags``) on free ports; waits
    until it has written its address. A port can be taken between choosing it and Ray binding it, so a head that
    does not come up is stopped and started again on new ports, up to ``attempts`` times; the error names what
    each attempt left behind. Returns the `ray start` process and its ports."""
    failures = []
    for attempt in range(1, attempts + 1):
        ports = node_ports(head=True)
        command = [*RAY_START, "--head", f"--temp-dir={temp}", *flags]
        command += [f"{flag}={port}" for flag, port in ports.items()]
        with log_path.open("w") as log:
            proc = subprocess.Popen(command, env=local_ray_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if (Path(temp) / "ray_current_cluster").is_file():
                return proc, ports
            time.sleep(1)
        proc.poll()
        failures.append(f"attempt {attempt} ({' '.join(command)}): {_why_not_started(temp, log_path, proc)}")
        proc.kill()
        proc.wait()
        stop_processes_of(temp)
    raise RuntimeError("a Ray head did not start:\n" + "\n\n".join(failures))


@contextlib.contextmanager
def own_ray_cluster(num_cpus: int = 2, log_path: Path | None = None) -> Iterator[str]:
    """A Ray head node of the test session's own: its own temp folder and free ports (GCS, dashboard, client
    server, agents, metrics), so it neither joins nor disturbs a cluster the user runs. Yields its GCS address;
    afterwards stops the processes it started, and only those."""
    temp = tempfile.mkdtemp(prefix="genrm-e2e-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    log_path = log_path or Path(temp) / "ray-start.log"
    proc, ports = start_ray_head(temp, log_path, [f"--num-cpus={num_cpus}"])
    try:
        CLUSTER["address"], CLUSTER["temp_dir"] = f"127.0.0.1:{ports['--port']}", temp
        yield CLUSTER["address"]
    finally:
        CLUSTER.clear()
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        stop_processes_of(temp)
        if proc.poll() is None:
            proc.kill()


class LeftRunning:
    """A stand-in for a service a user left running on a port: it answers every GET with a fixed body and counts the
    requests that reach it (:attr:`hits`). ``server`` is None when the port was taken already (by the user's own)."""

    BODY = b"the user's own service"

    def __init__(self, port: int) -> None:
        self.port = port
        self.hits: list[str] = []
        self.server: Any = None

    @classmethod
    @contextlib.contextmanager
    def on(cls, port: int) -> Iterator[LeftRunning]:
        import http.server
        import threading

        left = cls(port)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                left.hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(cls.BODY)

            def log_message(self, *args: Any) -> None:
                pass

        try:
            left.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError:
            yield left  # taken: the user's own service
            return
        thread = threading.Thread(target=left.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield left
        finally:
            left.server.shutdown()
            left.server.server_close()
