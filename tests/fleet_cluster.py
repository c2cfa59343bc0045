"""A judge fleet on a real multi-node Ray cluster on this machine, for the end-to-end fleet tests.

Three Ray nodes, each a `ray start` of its own, stand for a KubeRay cluster: the head (Serve's controller and proxy,
the router replicas and the cohort owners, pinned by the custom resource ``genrm_router``), a pairwise "GPU node"
(``genrm_pairwise``) and a principle "GPU node" (``genrm_principle``) — the resources the KubeRay layouts pin each
judge's bundles with (serve_app.kuberay.render.pin_resource). The application is ``configs/cpu-fleet.yaml`` (two
pairwise replicas, one principle replica) with those pins, two router replicas and two cohort owner shards, started
with `serve run` as a user would.

Every node has its own free ports and the cluster its own temp folder, so nothing of a cluster the user runs is
touched; teardown stops only the processes this cluster started. A node is lost without grace with
:meth:`FleetCluster.kill_node`: SIGKILL to the node's own Ray processes (its raylet and agents), as when a machine
vanishes; its workers and their engine processes must then go by themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from live_service import (
    PAIRWISE_DEPLOYMENT,
    RAY_START,
    free_port,
    node_ports,
    start_ray_head,
    stop_processes_of,
)

from deployments.autoscaling import POLICY_PATH
from serve_app.kuberay.render import pin_resource
from serve_app.local_service import ROOT, local_ray_env, serve_run_process

ROUTER_RESOURCE = "genrm_router"
#: the custom resources each kind of node offers (enough for the replicas the tests schedule there)
NODE_RESOURCES = {
    "pairwise": {pin_resource("pairwise"): 2},
    "principle": {pin_resource("principle"): 1},
}
GROUP_SIZE = 4
OWNERS = 2
#: the pairwise judge's sequences per replica before its autoscaling policy asks for another replica
TARGET_SEQUENCES = 2


def pairwise_scaling(low: int, high: int) -> dict[str, Any]:
    """Serve's own per-deployment override that autoscales the pairwise judge on its engines' load
    (deployments.autoscaling.EngineLoadPolicy) between ``low`` and ``high`` replicas. The policy is the same in
    every override: a changed policy changes the application's code version, and Serve would then rebuild every
    deployment, where a change of bounds is a lightweight update of the judge alone."""
    scaling = {
        "min_replicas": low,
        "max_replicas": high,
        # deprecated in favour of an environment variable that Serve 2.60's replicas do not read yet
        "metrics_interval_s": 1.0,
        "look_back_period_s": 2.0,
        "upscale_delay_s": 0.0,
        "downscale_delay_s": 5.0,
        "policy": {"policy_function": POLICY_PATH, "policy_kwargs": {"target_sequences": TARGET_SEQUENCES}},
    }
    return {"name": PAIRWISE_DEPLOYMENT, "num_replicas": "auto", "autoscaling_config": scaling}


def fleet_config(port: int, folder: Path) -> Path:
    """configs/cpu-fleet.yaml with every judge bundle pinned to its node, the router replicas and cohort owners
    pinned to the head, HTTP on ``port``, and the pairwise judge's two replicas held by its autoscaling policy
    (:func:`pairwise_scaling`), so that the tests can move its bounds."""
    document = yaml.safe_load((ROOT / "configs" / "cpu-fleet.yaml").read_text())
    document["http_options"]["port"] = port
    args = document["applications"][0]["args"]
    for role in ("principle", "pairwise"):
        for bundle in args[role]["hosted"]["llm_config"]["placement_group_config"]["bundles"]:
            bundle[pin_resource(role)] = 1
    args["router"]["deployment"] = {
        "num_replicas": 2,
        "ray_actor_options": {"num_cpus": 0, "resources": {ROUTER_RESOURCE: 1}},
    }
    args["router"]["cohorts"] = {
        "group_size": GROUP_SIZE,
        "owners": OWNERS,
        "group_timeout_s": 600,
        "strategy": "knockout",
    }
    document["applications"][0]["deployments"] = [pairwise_scaling(2, 2)]  # two replicas, as the config's
    path = folder / "cpu-fleet-multinode.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            children.setdefault(_parent(int(entry.name)), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state, parent pid, ...); [] for a process gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else -1


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


class FleetCluster:
    """The running cluster: its nodes' `ray start` processes by name, the GCS address, the temp folder."""

    def __init__(self, temp: str, log_dir: Path) -> None:
        self.temp = temp
        self.log_dir = log_dir
        self.address = ""
        self.dashboard = ""
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []
        self._known: set[str] = set()  # node ids already handed out by add_node

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.log_dir / f"ray-fleet-{name}.log").open("w")
        self._logs.append(log)
        self.nodes[name] = subprocess.Popen(command, env=local_ray_env(), stdout=log, stderr=subprocess.STDOUT)

    def start_head(self) -> None:
        resources = json.dumps({ROUTER_RESOURCE: 100})
        flags = ["--num-cpus=1", f"--resources={resources}"]
        self.nodes["head"], port = start_ray_head(self.temp, self.log_dir / "ray-fleet-head.log", flags)
        self.address = f"127.0.0.1:{port['--port']}"
        self.dashboard = f"http://127.0.0.1:{port['--dashboard-port']}"

    def add_node(self, role: str, name: str | None = None) -> str:
        """Start a node offering ``role``'s resource; waits until Ray lists it alive. Returns its node id."""
        import ray

        name = name or role
        resources = json.dumps(NODE_RESOURCES[role])
        worker = [f"--address={self.address}", "--num-cpus=1", f"--resources={resources}"]
        ports = [f"{flag}={port}" for flag, port in node_ports(head=False).items()]
        self._start(name, [*RAY_START, *worker, *ports])
        resource = pin_resource(role)
        deadline = time.monotonic() + 120
        while True:
            for node in ray.nodes() if ray.is_initialized() else []:
                if node["Alive"] and resource in node["Resources"] and node["NodeID"] not in self._known:
                    self._known.add(node["NodeID"])
                    return node["NodeID"]
            if self.nodes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} node did not join the cluster")
            time.sleep(1)

    def kill_node(self, name: str) -> list[int]:
        """Lose node ``name`` without grace: SIGKILL to its `ray start` process and the Ray processes it started
        (raylet, agents); its workers are left to notice. Returns the pids killed."""
        proc = self.nodes.pop(name)
        own = [proc.pid, *(p for p in descendants(proc.pid) if _parent(p) == proc.pid)]
        for pid in own:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        return own

    def stop(self) -> None:
        for name in [n for n in self.nodes if n != "head"] + (["head"] if "head" in self.nodes else []):
            proc = self.nodes.pop(name)
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
        stop_processes_of(self.temp)
        for log in self._logs:
            log.close()


class Fleet:
    """The fleet under test: the cluster, the HTTP client of its service, its config file and `serve run`'s log."""

    def __init__(self, cluster: FleetCluster, client: Any, config: Path, log: Path) -> None:
        self.cluster = cluster
        self.client = client
        self.config = config
        self.log = log

    def scale_pairwise(self, low: int, high: int) -> None:
        """Bound the pairwise judge's autoscaling to ``low``..``high`` replicas, the rest of the config unchanged."""
        document = yaml.safe_load(self.config.read_text())
        document["applications"][0]["deployments"] = [pairwise_scaling(low, high)]
        self.deploy(document)

    def deploy(self, document: dict[str, Any]) -> None:
        """Apply a changed config to the running application, as `serve deploy` does (Serve updates in place what
        changed: a replica count is a lightweight update)."""
        path = self.config.with_name("cpu-fleet-update.yaml")
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        serve_cli = str(Path(sys.executable).parent / "serve")
        command = [serve_cli, "deploy", str(path), "--address", self.cluster.dashboard]
        subprocess.run(command, env=local_ray_env(PYTHONPATH=str(ROOT)), check=True)


@contextlib.contextmanager
def multi_node_fleet(log_dir: Path) -> Iterator[Fleet]:
    """Start the three-node cluster and `serve run` the pinned fleet config on it; yields once ``/readyz`` is 200."""
    import ray

    temp = tempfile.mkdtemp(prefix="genrm-fleet-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    cluster = FleetCluster(temp, log_dir)
    try:
        cluster.start_head()
        if ray.is_initialized():  # still joined to the shared service's cluster, which has just been stopped
            ray.shutdown()
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        cluster.add_node("pairwise")
        cluster.add_node("principle")
        port = free_port()
        config = fleet_config(port, Path(temp))  # serve_run_process serves it on ``port`` too
        log = log_dir / "serve-run-fleet.log"
        with serve_run_process(config, log, port=port, address=cluster.address) as run:
            yield Fleet(cluster, run.client, config, log)
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        cluster.stop()
