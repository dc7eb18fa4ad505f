"""The interface between the cluster manager and the machines a Spark standalone cluster runs on.

A provider starts and stops *nodes* (one master, N workers) and reports what it sees; it decides nothing.
The cluster manager (services/cluster_runs.py) compares what it sees with what the cluster should be and
asks for nodes to be added or stopped. Like `ComputeBackend`, providers are synchronous, never touch the
database, and take an idempotency key for every launch: a launch retried with the same key returns the node
already started for it (a folder and its lock for the local provider, EC2's ClientToken for EC2).

Node keys are `<cluster uid>-g<generation>-master` and `<cluster uid>-g<generation>-w<n>`: the generation
grows with every start and restart, and n is never reused within a cluster, so a replaced worker or a
restarted master never collides with the node it replaces (whose ended folder or instance may linger).

How the manager learns the cluster's health: from the master's own status (`MasterStatus`, parsed from the
master web UI's `/json/`). The local provider reads it directly. A provider whose nodes sit in a network the
control plane cannot reach (a customer's VPC) has its nodes push the same JSON to the control plane instead
(`pushes_status`): the manager then parses the last report with `parse_master_json`.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from sparkplane.domain.clusters import Capacity, NodeType


class NodeRole(enum.StrEnum):
    MASTER = "master"
    WORKER = "worker"


class NodeState(enum.StrEnum):
    """A node as its provider sees it (the vendor's own word stays in `Node.native_state`)."""

    PENDING = "PENDING"  # asked for, not running yet (an instance booting, a process starting)
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    GONE = "GONE"  # ended: stopped, crashed, terminated


@dataclass(frozen=True, slots=True)
class ClusterLaunch:
    """What a provider needs to start a node of this cluster."""

    uid: str
    name: str
    node_type: NodeType
    spark_env_vars: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)  # custom_tags plus sparkplane's own
    # Where nodes push their status (pushes_status providers); the token authenticates that node's cluster.
    report_url: str | None = None
    report_token: str | None = None


@dataclass(frozen=True, slots=True)
class Node:
    key: str
    role: NodeRole
    state: NodeState
    native_state: str
    node_id: str  # the provider's own id: a run folder, an EC2 instance id
    host: str | None = None
    message: str | None = None
    started_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class MasterWorker:
    """One worker as the master lists it."""

    spark_id: str  # worker-<timestamp>-<host>-<port>
    host: str
    port: int
    cores: int
    cores_used: int
    memory_mb: int
    memory_used_mb: int
    state: str  # ALIVE, DEAD, DECOMMISSIONED, UNKNOWN
    node_key: str | None = None  # filled in by the provider when it knows which node this is


@dataclass(frozen=True, slots=True)
class MasterApp:
    """An application as the master lists it. The master knows what it granted, not what the app still
    wants: an app it could not place at all is WAITING; beyond that, demand comes from the driver's UI."""

    app_id: str
    name: str
    state: str  # WAITING (no executor placed yet), RUNNING, ...
    cores_granted: int


@dataclass(frozen=True, slots=True)
class MasterStatus:
    master_url: str  # spark://host:port
    ui_url: str | None
    status: str  # ALIVE, STANDBY, RECOVERING
    workers: tuple[MasterWorker, ...] = ()
    apps: tuple[MasterApp, ...] = ()

    def alive_workers(self) -> list[MasterWorker]:
        return [w for w in self.workers if w.state == "ALIVE"]


class ClusterProvider(Protocol):
    name: ClassVar[str]
    pushes_status: ClassVar[bool]  # True: read the master's status from its reports, not master_status()

    def capacity(self) -> Capacity:
        """How much this provider can hold across all clusters, for refusing a cluster that cannot fit."""
        ...

    def launch_node(self, cluster: ClusterLaunch, role: NodeRole, *, key: str, master_url: str | None = None) -> Node:
        """Start a node (a worker joins `master_url`); idempotent on `key`. Transient on a hiccup."""
        ...

    def nodes(self, cluster_uid: str) -> Sequence[Node]:
        """Every node of the cluster the provider knows, ended ones included while it still has them."""
        ...

    def stop_node(self, cluster_uid: str, key: str, *, grace: dt.timedelta) -> None:
        """Stop one node; idempotent: a node that is gone counts as stopped."""
        ...

    def master_status(self, cluster_uid: str) -> MasterStatus | None:
        """The master's own view, or None when it cannot be read now (starting, dead, unreachable)."""
        ...

    def fetch_node_log(self, cluster_uid: str, key: str, *, tail_lines: int = 200) -> str | None: ...

    def cluster_uids(self) -> set[str]:
        """Every cluster that still has a live node here, for cleanup to find orphans."""
        ...

    def purge(self, cluster_uid: str) -> None:
        """Forget the ended nodes of a cluster that is deleted for good (folders, logs); live ones stay."""
        ...

    def close(self) -> None: ...


def node_key(cluster_uid: str, generation: int, role: NodeRole, index: int = 0) -> str:
    suffix = "master" if role is NodeRole.MASTER else f"w{index}"
    return f"{cluster_uid}-g{generation}-{suffix}"


@dataclass(frozen=True, slots=True)
class NodeKey:
    cluster_uid: str
    generation: int
    role: NodeRole
    index: int


_NODE_KEY = re.compile(r"^(?P<uid>[A-Za-z0-9]+)-g(?P<gen>\d+)-(?:(?P<master>master)|w(?P<index>\d+))$")


def parse_node_key(key: str) -> NodeKey | None:
    match = _NODE_KEY.match(key)
    if match is None:
        return None
    role = NodeRole.MASTER if match.group("master") else NodeRole.WORKER
    return NodeKey(match.group("uid"), int(match.group("gen")), role, int(match.group("index") or 0))


def generation_of(key: str) -> int:
    """The generation a node key belongs to; -1 for a key that names no node (older than any generation)."""
    parsed = parse_node_key(key)
    return parsed.generation if parsed else -1


def cluster_uid_of(key: str) -> str | None:
    parsed = parse_node_key(key)
    return parsed.cluster_uid if parsed else None


def parse_master_json(
    body: Mapping[str, Any],
    *,
    ports_to_keys: Mapping[int, str] | None = None,
    hosts_to_keys: Mapping[str, str] | None = None,
) -> MasterStatus:
    """The master web UI's `/json/` (Spark's JsonProtocol), in our types; missing fields read as empty.

    Which node a listed worker is: by its RPC port for a provider that chose the ports (many workers on one
    host), or by its host for one that gives every worker a machine of its own.
    """
    keys = ports_to_keys or {}
    by_host = hosts_to_keys or {}
    workers = []
    for w in body.get("workers") or []:
        port = int(w.get("port") or 0)
        workers.append(
            MasterWorker(
                spark_id=str(w.get("id", "")),
                host=str(w.get("host", "")),
                port=port,
                cores=int(w.get("cores") or 0),
                cores_used=int(w.get("coresused") or 0),
                memory_mb=int(w.get("memory") or 0),
                memory_used_mb=int(w.get("memoryused") or 0),
                state=str(w.get("state", "UNKNOWN")),
                node_key=keys.get(port) or by_host.get(str(w.get("host", ""))),
            )
        )
    apps = [
        MasterApp(
            app_id=str(a.get("id", "")),
            name=str(a.get("name", "")),
            state=str(a.get("state", "UNKNOWN")),
            cores_granted=int(a.get("cores") or 0),
        )
        for a in body.get("activeapps") or []
    ]
    return MasterStatus(
        master_url=str(body.get("url", "")),
        ui_url=None,
        status=str(body.get("status", "UNKNOWN")),
        workers=tuple(workers),
        apps=tuple(apps),
    )
