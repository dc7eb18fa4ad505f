"""Rich renderables of clusters, as display.py has them for batches and sessions: what `sparkplane clusters`
prints, and what a notebook shows with `rich.print`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from sparkplane.client.display import elapsed_since, fields_grid, state_text, when
from sparkplane.client.models import ClusterEvent, ClusterInfo, ClusterNode, NodeType, TerminationReason


def workers(cluster: ClusterInfo) -> str:
    """A fixed size as its count ("3"); an autoscale range as "1-4", with the size it heads for while it runs."""
    if cluster.autoscale is None:
        return str(cluster.num_workers if cluster.num_workers is not None else cluster.target_workers)
    scale = f"{cluster.autoscale.min_workers}-{cluster.autoscale.max_workers}"
    return scale if cluster.is_final else f"{scale} (now {cluster.target_workers})"


def clusters_table(clusters: Iterable[ClusterInfo]) -> Table:
    table = Table("id", "name", "state", "workers", "node type", "owner", "created", box=None)
    for c in clusters:
        table.add_row(
            str(c.cluster_id),
            Text(c.cluster_name),
            state_text(c.state),
            workers(c),
            c.node_type_id or "",
            c.creator_user_name or "",
            when(c.created_at),
        )
    return table


def cluster_details(cluster: ClusterInfo, nodes: Sequence[ClusterNode] = ()) -> Group:
    """Every field that has a value, then the cluster's machines."""
    detail, reason, minutes = cluster.detail, cluster.termination_reason, cluster.autotermination_minutes
    fields: list[tuple[str, str | Text | None]] = [
        ("id", str(cluster.cluster_id)),
        ("name", cluster.cluster_name),
        ("state", Text.assemble(state_text(cluster.state), f": {detail}" if detail else "")),
        ("owner", cluster.creator_user_name),
        ("provider", cluster.provider),
        ("node type", cluster.node_type_id),
        ("workers", workers(cluster)),
        ("master", cluster.master_url),
        ("spark ui", cluster.spark_ui_url),
        ("spark conf", ", ".join(f"{k}={v}" for k, v in cluster.spark_conf.items())),
        ("env vars", ", ".join(cluster.spark_env_vars)),  # names only: the values are often credentials
        ("tags", ", ".join(f"{k}={v}" for k, v in cluster.custom_tags.items())),
        ("autoterminate", f"after {minutes:g} idle minutes" if minutes else "never"),
        ("created", when(cluster.created_at)),
        ("started", when(cluster.start_time)),
        ("last activity", when(cluster.last_activity_time)),
        ("terminated", when(cluster.terminated_time)),
        ("termination", _reason(reason) if reason else None),
    ]
    columns = ("key", "role", "state", "host", "registered", "cores", "memory")
    machines = Table(*columns, box=None, title="nodes", title_justify="left")
    for n in nodes:
        used = f"{n.cores_used}/" if n.cores_used is not None else ""
        machines.add_row(
            Text(n.key),
            n.role,
            n.state,
            n.host or "",
            "yes" if n.registered else Text("no", style="dim"),
            f"{used}{n.cores}" if n.cores is not None else "",
            f"{n.memory_mb} MiB" if n.memory_mb is not None else "",
        )
    return Group(fields_grid(fields), Text(""), machines) if nodes else Group(fields_grid(fields))


def _reason(reason: TerminationReason) -> str:
    """E.g. "USER_REQUEST (SUCCESS) username=alice"."""
    params = " ".join(f"{k}={v}" for k, v in reason.parameters.items())
    return " ".join(p for p in (reason.code, f"({reason.type})" if reason.type else None, params) if p)


def cluster_events_table(events: Iterable[ClusterEvent]) -> Table:
    table = Table("at", "type", "details", box=None)
    for e in events:
        found = ((k, v) for k, v in e.details.items() if v is not None)
        details = ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in found)
        table.add_row(when(e.timestamp), state_text(e.type), Text(details))
    return table


def node_types_table(node_types: Iterable[NodeType]) -> Table:
    table = Table("node type", "cores", "memory", "description", box=None)
    for n in node_types:
        table.add_row(n.node_type_id, str(n.num_cores), f"{n.memory_mb} MiB", n.description)
    return table


def cluster_ready(cluster: ClusterInfo) -> Text:
    """E.g. "Cluster 3 (etl) is RUNNING with 2 workers"; the state message when it is not running."""
    text = Text.assemble(f"Cluster {cluster.cluster_id} ({cluster.cluster_name}) is ", state_text(cluster.state))
    if cluster.is_running:
        count = cluster.target_workers
        text.append(f" with {count} worker" + ("" if count == 1 else "s"))
    elif detail := cluster.detail:
        text.append(f": {detail}")
    return text


class ClusterStatus:
    """A spinner's text while waiting for a cluster: state, elapsed time and the server's state message.
    `update` is an `on_update` callback; before its first call (the create request is still out) there is no id."""

    def __init__(self, cluster: ClusterInfo | None = None) -> None:
        self.cluster = cluster
        self._started = time.monotonic()

    def update(self, cluster: ClusterInfo) -> None:
        self.cluster = cluster

    def __rich__(self) -> Text:
        elapsed = elapsed_since(self._started)
        if self.cluster is None:
            return Text(f"creating a cluster · {elapsed}")
        detail = self.cluster.detail
        tail = f" · {elapsed}" + (f" · {detail}" if detail else "")
        return Text.assemble(f"cluster {self.cluster.cluster_id} ", state_text(self.cluster.state), tail)
