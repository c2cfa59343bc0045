"""The end-to-end suite keeps to itself: its service serves on a port of its own, on a Ray cluster of its own, so a
service the user left running on 8000 (and a Ray cluster on Ray's default ports) is untouched by the test command."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from live_service import BASE, CLUSTER, PORT, LeftRunning, connect


def test_a_service_left_running_on_8000_is_untouched(service: httpx.Client, left_running: Any) -> None:
    assert PORT != 8000 and str(service.base_url).rstrip("/") == BASE
    assert service.get("/readyz").status_code == 200
    before = httpx.get("http://127.0.0.1:8000/", timeout=10)
    if left_running.server is not None:
        # Ours stood in for the user's service since before the suite's service started: nothing reached it, and it
        # still answers as it did.
        assert left_running.hits == ["/"]
        assert before.status_code == 200 and before.content == LeftRunning.BODY
    else:  # the user's own service holds 8000: it still answers (whatever it is)
        assert before.status_code < 600


def test_the_suite_runs_on_a_ray_cluster_of_its_own(service: httpx.Client) -> None:
    import ray

    connect()
    assert CLUSTER["address"].startswith("127.0.0.1:") and not CLUSTER["address"].endswith(":6379")
    # the cluster advertises the machine's address; its GCS port is the one the suite chose
    assert ray.get_runtime_context().gcs_address.rsplit(":", 1)[1] == CLUSTER["address"].rsplit(":", 1)[1]
    assert CLUSTER["temp_dir"] not in ("/tmp/ray", "") and "genrm-e2e-" in CLUSTER["temp_dir"]


def test_a_head_that_cannot_start_is_retried_and_says_why(tmp_path: Any) -> None:
    """A head that exits at once (here: a flag Ray refuses) is started again on new ports, and the error carries
    every attempt's exit and output, so a red run shows why the cluster did not come up."""
    import re

    from live_service import start_ray_head

    temp = str(tmp_path / "cluster")
    with pytest.raises(RuntimeError) as failed:
        start_ray_head(temp, tmp_path / "ray-start.log", ["--num-cpus=two"], attempts=2)
    message = str(failed.value)
    assert message.count("exited with") == 2 and "two" in message.split("its output ends:")[1]
    gcs_ports = re.findall(r"--port=(\d+)", message)
    assert len(gcs_ports) == 2 and gcs_ports[0] != gcs_ports[1]
