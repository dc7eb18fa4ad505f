"""A cluster's machines as its provider and its master see them right now (for people, not decisions)."""

from __future__ import annotations

from typing import Any

from sparkplane.backends.base import BackendError
from sparkplane.backends.clusters import NodeRole, parse_node_key
from sparkplane.services import clusters
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal


def nodes(ctx: Context, principal: Principal, cluster_id: int) -> list[dict[str, Any]]:
    with ctx.db.uow() as uow:
        row = clusters.owned(uow, principal, cluster_id)
        uid, generation, provider_name = row.uid, row.generation, row.provider
    provider = ctx.backends.cluster(provider_name)
    try:
        found = provider.nodes(uid)
        status = None if provider.pushes_status else provider.master_status(uid)
    except BackendError:
        return []
    registered = {w.node_key: w for w in (status.alive_workers() if status else []) if w.node_key}
    out = []
    for node in found:
        parsed = parse_node_key(node.key)
        if parsed is None or parsed.generation != generation:
            continue  # nodes of an earlier start or restart
        worker = registered.get(node.key)
        out.append(
            {
                "key": node.key,
                "role": node.role.value,
                "state": node.state.value,
                "native_state": node.native_state,
                "host": node.host,
                "registered": worker is not None or (node.role is NodeRole.MASTER and status is not None),
                "cores": worker.cores if worker else None,
                "cores_used": worker.cores_used if worker else None,
                "memory_mb": worker.memory_mb if worker else None,
            }
        )
    return out
