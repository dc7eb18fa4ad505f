"""`LocalClusterProvider`: Spark standalone clusters as processes on this machine.

Each node (a master or a worker) is a `spark-class` process in run_root/<node key>/, owned by the same
detached supervisor as a batch (batch.py explains the exactly-once launch under the key lock), so nodes
survive every control-plane process and are re-adopted, never duplicated, after a restart. The pip package
of PySpark has no sbin/start-*.sh scripts, so the daemons are started with their classes (spark-notes §2).

Ports are chosen at launch and written to ports.json before the process starts: the provider then knows
where each master's UI answers and which worker registered on which RPC port. Every daemon binds to
127.0.0.1 (SPARK_LOCAL_IP): their web UIs and RPC ports are unauthenticated.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import httpx

from sparkplane.backends.base import Handle, PermanentBackendError, TransientBackendError
from sparkplane.backends.clusters import (
    ClusterLaunch,
    MasterStatus,
    Node,
    NodeRole,
    NodeState,
    generation_of,
    parse_master_json,
    parse_node_key,
)
from sparkplane.backends.local import supervisor as sup
from sparkplane.backends.local.batch import LocalBackend
from sparkplane.domain.clusters import Capacity

logger = logging.getLogger(__name__)

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
PORTS_FILE = "ports.json"
LOOPBACK = "127.0.0.1"
# The master's /json/ answers in milliseconds; a slow answer means a loaded machine, not a dead master.
_STATUS_TIMEOUT = 5.0

_STATE_MAP: Mapping[str, NodeState] = {
    "RUNNING": NodeState.RUNNING,
    "ORPHANED_RUNNING": NodeState.RUNNING,  # its supervisor died; the daemon runs until it is stopped
    "SUCCEEDED": NodeState.GONE,
    "FAILED": NodeState.GONE,
    "CANCELLED": NodeState.GONE,
    "SUPERVISOR_LOST": NodeState.GONE,
}


def map_node_state(native: str) -> NodeState:
    state = _STATE_MAP.get(native)
    if state is None:
        logger.warning("unknown local node state %r; treating the node as pending", native)
        return NodeState.PENDING  # neither alive nor gone: the manager waits rather than replacing it
    return state


def machine_memory_mb() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))


class LocalClusterProvider:
    name: ClassVar[str] = "local"
    pushes_status: ClassVar[bool] = False

    def __init__(
        self,
        run_root: Path,
        *,
        spark_home: Path,
        python: str = sys.executable,
        memory_mb: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._runs = LocalBackend(run_root, spark_home=spark_home, python=python)
        self._root = self._runs.run_root
        self._spark_class = Path(spark_home) / "bin" / "spark-class"
        # Workers only promise memory to executors; half the machine leaves room for drivers and the OS.
        self._memory_mb = memory_mb if memory_mb is not None else machine_memory_mb() // 2
        self._http = httpx.Client(timeout=_STATUS_TIMEOUT, transport=transport)

    @property
    def run_root(self) -> Path:
        return self._root

    def capacity(self) -> Capacity:
        return Capacity(memory_mb=self._memory_mb)

    # -- nodes -----------------------------------------------------------------------------------------

    def launch_node(self, cluster: ClusterLaunch, role: NodeRole, *, key: str, master_url: str | None = None) -> Node:
        parsed = parse_node_key(key)
        if parsed is None or parsed.cluster_uid != cluster.uid or parsed.role != role:
            raise PermanentBackendError(f"node key '{key}' does not name a {role} of cluster {cluster.uid}")
        if role is NodeRole.WORKER and not master_url:
            raise PermanentBackendError("a worker needs its master's spark:// URL")
        if not os.access(self._spark_class, os.X_OK):
            raise PermanentBackendError(f"spark-class is missing or not executable: {self._spark_class}")
        run_dir = self._root / key
        self._root.mkdir(parents=True, exist_ok=True)
        with self._runs._key_lock(key):
            if not sup.launched(run_dir):
                (run_dir / sup.EVENTS_DIR).mkdir(parents=True, exist_ok=True)
                ports = {"rpc": _free_port(), "ui": _free_port()}
                sup.write_atomic(run_dir / PORTS_FILE, json.dumps(ports))
                argv = self._argv(cluster, role, ports, master_url, run_dir)
                if self._runs._spawn(run_dir, argv, self._env(cluster)):
                    self._runs._wait_for_start(run_dir)
                    logger.info("cluster %s: %s %s started (ports %s)", cluster.uid, role, key, ports)
        node = self._node(run_dir)
        assert node is not None
        return node

    def _argv(
        self, cluster: ClusterLaunch, role: NodeRole, ports: Mapping[str, int], master_url: str | None, run_dir: Path
    ) -> list[str]:
        common = ["--host", LOOPBACK, "--port", str(ports["rpc"]), "--webui-port", str(ports["ui"])]
        if role is NodeRole.MASTER:
            return [str(self._spark_class), MASTER_CLASS, *common]
        assert master_url is not None
        node_type = cluster.node_type
        return [
            str(self._spark_class),
            WORKER_CLASS,
            *common,
            "--cores",
            str(node_type.cores),
            "--memory",
            f"{node_type.memory_mb}m",
            "--work-dir",
            str(run_dir / "work"),
            master_url,
        ]

    @staticmethod
    def _env(cluster: ClusterLaunch) -> dict[str, str]:
        env = dict(cluster.spark_env_vars)
        env["SPARK_LOCAL_IP"] = LOOPBACK  # the web UIs bind 0.0.0.0 otherwise
        return env

    def nodes(self, cluster_uid: str) -> Sequence[Node]:
        found = []
        for run_dir in self._node_dirs(cluster_uid):
            node = self._node(run_dir)
            if node is not None:
                found.append(node)
        return found

    def stop_node(self, cluster_uid: str, key: str, *, grace: dt.timedelta) -> None:
        parsed = parse_node_key(key)
        if parsed is None or parsed.cluster_uid != cluster_uid:
            return
        self._runs.cancel(Handle(self.name, key), grace=grace)

    def master_status(self, cluster_uid: str) -> MasterStatus | None:
        masters = [n for n in self.nodes(cluster_uid) if n.role is NodeRole.MASTER and n.state is NodeState.RUNNING]
        if not masters:
            return None
        master = max(masters, key=lambda n: generation_of(n.key))
        ports = _ports(self._root / master.key)
        if ports is None:
            return None
        ui_url = f"http://{LOOPBACK}:{ports['ui']}"
        try:
            response = self._http.get(f"{ui_url}/json/")
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        if not isinstance(body, dict):
            return None  # still starting (the UI comes up a few seconds after the process)
        status = parse_master_json(body, ports_to_keys=self._worker_ports(cluster_uid))
        return MasterStatus(status.master_url, ui_url, status.status, status.workers, status.apps)

    def _worker_ports(self, cluster_uid: str) -> dict[int, str]:
        found = {}
        for run_dir in self._node_dirs(cluster_uid):
            parsed = parse_node_key(run_dir.name)
            ports = _ports(run_dir)
            if parsed is not None and parsed.role is NodeRole.WORKER and ports is not None:
                found[ports["rpc"]] = run_dir.name
        return found

    def fetch_node_log(self, cluster_uid: str, key: str, *, tail_lines: int = 200) -> str | None:
        if parse_node_key(key) is None:
            return None
        return self._runs.fetch_logs(Handle(self.name, key), tail_lines=tail_lines)

    def cluster_uids(self) -> set[str]:
        uids = set()
        for key in self._runs.active_external_ids():
            parsed = parse_node_key(key)
            if parsed is not None:
                uids.add(parsed.cluster_uid)
        return uids

    def purge(self, cluster_uid: str) -> None:
        for run_dir in self._node_dirs(cluster_uid):
            node = self._node(run_dir)
            if node is not None and node.state is NodeState.GONE:
                shutil.rmtree(run_dir, ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    (self._root / f"{run_dir.name}.lock").unlink()

    def close(self) -> None:
        self._http.close()

    # -- helpers -----------------------------------------------------------------------------------------

    def _node_dirs(self, cluster_uid: str) -> list[Path]:
        try:
            entries = list(self._root.iterdir())
        except FileNotFoundError:
            return []
        found = []
        for path in entries:
            parsed = parse_node_key(path.name)
            if parsed is not None and parsed.cluster_uid == cluster_uid and path.is_dir():
                found.append(path)
        return sorted(found, key=lambda p: p.name)

    def _node(self, run_dir: Path) -> Node | None:
        parsed = parse_node_key(run_dir.name)
        if parsed is None:
            return None
        observed = self._runs.observe(Handle(self.name, run_dir.name))
        if observed is None:
            return None
        if not sup.launched(run_dir) and observed.native_state == "SUPERVISOR_LOST":
            native, state = "NOT_LAUNCHED", NodeState.GONE  # a launch that failed before its supervisor started
        else:
            native, state = observed.native_state, map_node_state(observed.native_state)
        try:
            started = dt.datetime.fromtimestamp(run_dir.stat().st_mtime, dt.UTC)
        except OSError:
            started = None
        return Node(
            key=run_dir.name,
            role=parsed.role,
            state=state,
            native_state=native,
            node_id=str(run_dir),
            host=LOOPBACK,
            message=observed.message,
            started_at=started,
        )


def _ports(run_dir: Path) -> dict[str, int] | None:
    data = sup.read_json(run_dir / PORTS_FILE)
    if not data or "rpc" not in data or "ui" not in data:
        return None
    return {"rpc": int(data["rpc"]), "ui": int(data["ui"])}


def _free_port() -> int:
    # Bound and released: another process may take it before the daemon does; the daemon then fails to bind
    # and exits, the manager sees the node gone and starts a replacement on fresh ports.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


__all__ = ["LocalClusterProvider", "TransientBackendError", "map_node_state"]
