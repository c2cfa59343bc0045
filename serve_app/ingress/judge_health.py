"""Whether each judge deployment still has a live replica, as Serve itself sees it.

After warm-up the router keeps answering ``/readyz`` from this: a judge whose deployment has no RUNNING replica (its
node was lost, its replicas wait for resources) is named as down until Serve has replaced them. The count comes
from ``serve.status()``, the controller's own view, so no judge call is spent on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.core.readiness import Liveness


def serve_liveness(servers: Mapping[str, Any]) -> Liveness | None:
    """A liveness probe for the judges reached through Serve handles (None when no judge is)."""
    handles = {role: h for role, h in servers.items() if isinstance(h, DeploymentHandle)}
    if not handles:
        return None

    async def probe() -> dict[str, str | None]:
        status = await asyncio.to_thread(serve.status)  # a controller round trip: off the event loop
        reasons: dict[str, str | None] = {}
        for role, handle in handles.items():
            app = status.applications.get(handle.app_name)
            deployment = app.deployments.get(handle.deployment_name) if app is not None else None
            if deployment is None:
                reasons[role] = f"Serve knows no deployment {handle.deployment_name!r}"
                continue
            running = sum(n for state, n in deployment.replica_states.items() if str(state).endswith("RUNNING"))
            reasons[role] = (
                None
                if running
                else f"no running replica of {handle.deployment_name} (Serve: {deployment.status}"
                + (f", {deployment.message}" if deployment.message else "")
                + ")"
            )
        return reasons

    return probe
