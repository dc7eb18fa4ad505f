"""An in-memory, scriptable cluster provider for tests and load runs.

Launched nodes are PENDING and become RUNNING at the next observation (`auto_start`), or when a test says
so. The master's status is made up from the running nodes: every running worker is ALIVE with its node
type's cores, of which tests set how many are used (`use_cores`); tests also script the master's
applications (`apps`) and kill nodes (`kill`). `launches` counts launches per key, for exactly-once checks.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from sparkplane.backends.base import BackendError
from sparkplane.backends.clusters import (
    ClusterLaunch,
    MasterApp,
    MasterStatus,
    MasterWorker,
    Node,
    NodeRole,
    NodeState,
    generation_of,
)
from sparkplane.domain.clusters import Capacity


@dataclass
class FakeNode:
    key: str
    role: NodeRole
    cluster_uid: str
    cores: int
    memory_mb: int
    state: NodeState = NodeState.PENDING
    cores_used: int = 0


class FakeClusterProvider:
    name: ClassVar[str] = "fake"
    pushes_status: ClassVar[bool] = False

    def __init__(self, *, auto_start: bool = True, capacity: Capacity | None = None) -> None:
        self.auto_start = auto_start
        self.nodes_by_key: dict[str, FakeNode] = {}
        self.launches: Counter[str] = Counter()
        self.apps: dict[str, list[MasterApp]] = {}
        self.errors: list[BackendError] = []
        self.master_reachable = True
        self._capacity = capacity or Capacity()
        self._lock = threading.Lock()

    # --- scripting ----------------------------------------------------------------------------------

    def kill(self, key: str) -> None:
        with self._lock:
            self.nodes_by_key[key].state = NodeState.GONE

    def start(self, key: str) -> None:
        with self._lock:
            self.nodes_by_key[key].state = NodeState.RUNNING

    def use_cores(self, key: str, cores: int) -> None:
        with self._lock:
            self.nodes_by_key[key].cores_used = cores

    def live(self, cluster_uid: str, role: NodeRole | None = None) -> list[str]:
        with self._lock:
            return sorted(
                n.key
                for n in self.nodes_by_key.values()
                if n.cluster_uid == cluster_uid and n.state != NodeState.GONE and role in (None, n.role)
            )

    def _raise_scripted(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    # --- the protocol -------------------------------------------------------------------------------

    def capacity(self) -> Capacity:
        return self._capacity

    def launch_node(self, cluster: ClusterLaunch, role: NodeRole, *, key: str, master_url: str | None = None) -> Node:
        self._raise_scripted()
        with self._lock:
            self.launches[key] += 1
            node = self.nodes_by_key.get(key)
            if node is None:
                node = FakeNode(key, role, cluster.uid, cluster.node_type.cores, cluster.node_type.memory_mb)
                self.nodes_by_key[key] = node
            return self._view(node)

    def nodes(self, cluster_uid: str) -> Sequence[Node]:
        self._raise_scripted()
        with self._lock:
            found = [n for n in self.nodes_by_key.values() if n.cluster_uid == cluster_uid]
            if self.auto_start:
                for node in found:
                    if node.state == NodeState.PENDING:
                        node.state = NodeState.RUNNING
            return [self._view(n) for n in sorted(found, key=lambda n: n.key)]

    def stop_node(self, cluster_uid: str, key: str, *, grace: dt.timedelta) -> None:
        with self._lock:
            node = self.nodes_by_key.get(key)
            if node is not None and node.cluster_uid == cluster_uid:
                node.state = NodeState.GONE

    def master_status(self, cluster_uid: str) -> MasterStatus | None:
        with self._lock:
            nodes = [n for n in self.nodes_by_key.values() if n.cluster_uid == cluster_uid]
            masters = [n for n in nodes if n.role is NodeRole.MASTER and n.state == NodeState.RUNNING]
            if not masters or not self.master_reachable:
                return None
            workers = tuple(
                MasterWorker(
                    spark_id=f"worker-{n.key}",
                    host="fake",
                    port=7000 + i,
                    cores=n.cores,
                    cores_used=n.cores_used,
                    memory_mb=n.memory_mb,
                    memory_used_mb=0,
                    state="ALIVE",
                    node_key=n.key,
                )
                for i, n in enumerate(sorted(nodes, key=lambda n: n.key))
                if n.role is NodeRole.WORKER and n.state == NodeState.RUNNING
            )
            master = max(masters, key=lambda n: generation_of(n.key))
            return MasterStatus(
                master_url=f"spark://fake-{master.key}:7077",
                ui_url=f"http://fake-{master.key}:8080",
                status="ALIVE",
                workers=workers,
                apps=tuple(self.apps.get(cluster_uid, ())),
            )

    def fetch_node_log(self, cluster_uid: str, key: str, *, tail_lines: int = 200) -> str | None:
        return f"log of {key}" if key in self.nodes_by_key else None

    def cluster_uids(self) -> set[str]:
        with self._lock:
            return {n.cluster_uid for n in self.nodes_by_key.values() if n.state != NodeState.GONE}

    def purge(self, cluster_uid: str) -> None:
        with self._lock:
            for key in [k for k, n in self.nodes_by_key.items() if n.cluster_uid == cluster_uid]:
                if self.nodes_by_key[key].state == NodeState.GONE:
                    del self.nodes_by_key[key]

    def close(self) -> None:
        pass

    @staticmethod
    def _view(node: FakeNode) -> Node:
        return Node(node.key, node.role, node.state, node.state.value, f"fake:{node.key}", host="fake")
