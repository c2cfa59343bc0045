"""How a judge deployment's calls find their replica: Serve's prefix-cache affinity router, kept to live replicas.

The router's core gives each batch of a group's judge calls the group's affinity key as its text
(:class:`deployments.engine_client.ChatBatch`). Serve's ``PrefixCacheAffinityRouter`` keeps a tree of the texts each
replica was sent (one detached actor per deployment, shared by every handle's router): a known text goes back to its
replica, a new one to the replica holding the least text, so that groups spread evenly and each stays where its
prompt is cached.

That tree outlives the routers that fill it. A router drops a replica from the tree when it sees that replica go,
but a replica that went while no live router was watching (the application deployed again on the same cluster,
routers and judges replaced together) stays in it, with the text it held. Once every live replica holds more, the
stale one is the "least loaded" and a new group is routed to a replica that no longer exists (a ``KeyError`` in
the router, retried without end). :class:`LiveReplicaAffinityRouter` removes from the tree every replica that is
not running whenever the replica set changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray
from ray.serve.llm.request_router import PrefixCacheAffinityRouter


class LiveReplicaAffinityRouter(PrefixCacheAffinityRouter):
    """``PrefixCacheAffinityRouter`` whose prefix tree names only the deployment's running replicas."""

    def update_replicas(self, replicas: Sequence[Any]) -> None:
        super().update_replicas(replicas)
        live = {replica.replica_id.to_full_id_str() for replica in replicas}
        held: dict[str, int] = ray.get(self._tree_actor.getattr.remote("tenant_to_char_count"))
        stale = [tenant for tenant in held if tenant not in live]
        if stale:
            ray.get(self._tree_actor.remove_tenants.remote(stale))
