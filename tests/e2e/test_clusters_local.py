"""A Spark standalone cluster through a real `sparkplane up`, over real HTTP, with real Spark daemons.

The issue's "done when" in order, on one `up` and one cluster: a 2-worker cluster comes up; a session on it
gets one executor on each worker (seen by the session's own Spark and by each worker's UI); a resize to 3
adds a worker; a worker killed with -9 is recorded and replaced; with its session gone the cluster
auto-terminates and leaves no process behind. JVMs at the peak: master, 3 workers, the session's driver and
its executors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.roles import RoleProcess, free_port, stop_local_runs, wait_until

pytestmark = pytest.mark.e2e
PASSWORD = "clusters-admin-password"
URL = "/api/v1/clusters"


@dataclass
class Up:
    url: str
    data_dir: Path
    process: RoleProcess
    http: httpx.Client

    def cluster(self, cluster_id: int) -> dict[str, Any]:
        return dict(self.http.get(f"{URL}/{cluster_id}").json())

    def wait_cluster(self, cluster_id: int, state: str, timeout: float = 180) -> dict[str, Any]:
        wait_until(
            lambda: self.cluster(cluster_id)["state"] == state,
            timeout,
            message=lambda: f"cluster {cluster_id} {state}: {self.cluster(cluster_id)}\n{self.logs()}",
        )
        return self.cluster(cluster_id)

    def nodes(self, cluster_id: int) -> list[dict[str, Any]]:
        return list(self.http.get(f"{URL}/{cluster_id}/nodes").json())

    def events(self, cluster_id: int) -> list[dict[str, Any]]:
        return list(self.http.get(f"{URL}/{cluster_id}/events", params={"limit": 500}).json()["events"])

    def run(self, session_id: int, code: str, timeout: float = 180) -> str:
        statement = self.http.post(f"/api/v1/sessions/{session_id}/statements", json={"code": code}).json()
        deadline = time.monotonic() + timeout
        while statement["state"] not in ("available", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.2)
            statement = self.http.get(f"/api/v1/sessions/{session_id}/statements/{statement['id']}").json()
        assert statement["output"] and statement["output"]["status"] == "ok", statement
        return str(statement["output"]["data"]["text/plain"])

    def logs(self) -> str:
        tails = []
        for name in ("watch-interactive", "worker"):
            path = self.data_dir / "logs" / f"{name}.log"
            if path.exists():
                tails.append(f"--- {name}\n" + "\n".join(path.read_text().splitlines()[-15:]))
        return "\n".join(tails)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data_dir = tmp_path_factory.mktemp("clusters")
    port = free_port()
    env = {
        **os.environ,
        "SPARKPLANE_ADMIN_PASSWORD": PASSWORD,
        "SPARKPLANE_POOL_SIZE": "0",  # no warm agent: the machine's two cores go to the cluster
        "SPARKPLANE_RECONCILE_INTERVAL_SECONDS": "0.5",
        "SPARKPLANE_CANCEL_GRACE_SECONDS": "5",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = [sys.executable, "-m", "sparkplane", "up", "--data-dir", str(data_dir), "--port", str(port)]
    process = RoleProcess("up", argv, env, data_dir / "test-logs").start()
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=60)
    try:
        wait_until(lambda: "sparkplane is up" in process.log(), 90, message=lambda: process.log_tail())
        yield Up(url, data_dir, process, http)
    finally:
        http.close()
        process.stop()
        for root in ("clusters", "sessions", "runs"):
            stop_local_runs(data_dir / root)


@pytest.fixture(scope="module")
def cluster(up: Up) -> dict[str, Any]:
    started = time.monotonic()
    response = up.http.post(
        URL,
        json={"cluster_name": "e2e", "num_workers": 2, "node_type_id": "sp.small", "autotermination_minutes": 0.25},
    )
    assert response.status_code == 201, response.text
    running = up.wait_cluster(response.json()["cluster_id"], "RUNNING")
    print(f"\n[figure] cluster create -> RUNNING, 2 workers: {time.monotonic() - started:.1f} s")
    return running


def test_a_two_worker_cluster_runs_with_both_workers_registered(up: Up, cluster: dict[str, Any]) -> None:
    assert cluster["master_url"].startswith("spark://127.0.0.1:")
    nodes = up.nodes(cluster["cluster_id"])
    workers = [n for n in nodes if n["role"] == "worker"]
    assert len(workers) == 2 and all(w["registered"] and w["cores"] == 1 for w in workers)
    master_json = httpx.get(f"{cluster['spark_ui_url']}/json/", timeout=10).json()
    assert master_json["aliveworkers"] == 2 and master_json["status"] == "ALIVE"


def test_a_session_on_the_cluster_gets_an_executor_on_each_worker(up: Up, cluster: dict[str, Any]) -> None:
    response = up.http.post(
        "/api/v1/sessions",
        json={"kind": "pyspark", "cluster_id": cluster["cluster_id"], "conf": {"spark.executor.memory": "512m"}},
    )
    assert response.status_code == 201, response.text
    session_id = response.json()["id"]
    wait_until(
        lambda: up.http.get(f"/api/v1/sessions/{session_id}").json()["state"] == "idle",
        180,
        message=lambda: f"session on the cluster: {up.http.get(f'/api/v1/sessions/{session_id}').json()}",
    )
    assert up.run(session_id, "spark.sparkContext.master") == repr(cluster["master_url"])
    assert up.run(session_id, "sc.parallelize(range(1000), 4).map(lambda x: x * 2).sum()") == "999000"
    # The session's own Spark: two executors besides the driver.
    executors = json.loads(
        up.run(
            session_id,
            "import json, urllib.request\n"
            "url = f'{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/executors'\n"
            "json.dumps([e['id'] for e in json.load(urllib.request.urlopen(url)) if e['id'] != 'driver'])",
        ).strip("'")
    )
    assert len(executors) == 2, executors
    # Each worker's own UI lists one executor of this application: they run on the two workers.
    app_id = up.http.get(f"/api/v1/sessions/{session_id}").json()["app_id"]
    master_json = httpx.get(f"{cluster['spark_ui_url']}/json/", timeout=10).json()
    per_worker = []
    for worker in master_json["workers"]:
        worker_json = httpx.get(f"{worker['webuiaddress']}/json/", timeout=10).json()
        per_worker.append(sum(1 for e in worker_json["executors"] if e["appid"] == app_id))
    assert per_worker == [1, 1], master_json["workers"]
    up.http.delete(f"/api/v1/sessions/{session_id}")
    wait_until(lambda: up.http.get(f"/api/v1/sessions/{session_id}").json()["state"] == "dead", 60)


def test_a_batch_on_the_cluster_runs_its_executors_on_the_workers(up: Up, cluster: dict[str, Any]) -> None:
    examples = Path(__file__).parents[2] / "examples"
    with open(examples / "pi.py", "rb") as f:
        uri = up.http.post("/api/v1/files", files={"file": ("pi.py", f)}).json()["uri"]
    body = {"file": uri, "args": ["4"], "cluster_id": cluster["cluster_id"], "conf": {"spark.executor.memory": "512m"}}
    response = up.http.post("/api/v1/batches", json=body)
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]
    wait_until(
        lambda: up.http.get(f"/api/v1/batches/{batch_id}").json()["state"] in ("success", "dead", "killed"),
        180,
        message=lambda: f"batch on the cluster: {up.http.get(f'/api/v1/batches/{batch_id}').json()}",
    )
    assert up.http.get(f"/api/v1/batches/{batch_id}").json()["state"] == "success"
    log = up.http.get(f"/api/v1/batches/{batch_id}/log", params={"limit": -1}).json()["lines"]
    assert any("Pi is roughly" in line for line in log)
    # The driver's own record of where its executors ran: one on each worker's executor port.
    granted = [line for line in log if "Granted executor ID" in line]
    hosts = {line.split("on hostPort ")[1].split()[0] for line in granted}
    assert len(granted) == 2 and len(hosts) == 2, granted
    assert any(f"Connecting to master {cluster['master_url']}" in line for line in log), log[:40]


def test_resize_to_three_workers(up: Up, cluster: dict[str, Any]) -> None:
    cluster_id = cluster["cluster_id"]
    response = up.http.post(f"{URL}/{cluster_id}/resize", json={"num_workers": 3})
    assert response.status_code == 200 and response.json()["state"] == "RESIZING"
    up.wait_cluster(cluster_id, "RUNNING")
    workers = [n for n in up.nodes(cluster_id) if n["role"] == "worker"]
    assert len(workers) == 3 and all(w["registered"] for w in workers)
    assert [e["type"] for e in up.events(cluster_id)].count("RESIZED") == 1


def test_a_worker_killed_with_sigkill_is_recorded_and_replaced(up: Up, cluster: dict[str, Any]) -> None:
    cluster_id = cluster["cluster_id"]
    victim = next(n for n in up.nodes(cluster_id) if n["role"] == "worker")
    ports = json.loads((up.data_dir / "clusters" / victim["key"] / "ports.json").read_text())
    # The JVM itself (its supervisor's command line names the same arguments).
    pids = subprocess.run(
        ["pgrep", "-f", f"deploy.worker.Worker --host 127.0.0.1 --port {ports['rpc']} "],
        capture_output=True,
        text=True,
    ).stdout.split()
    pids = [pid for pid in pids if Path(f"/proc/{pid}/comm").read_text().strip() == "java"]
    assert len(pids) == 1, pids
    os.kill(int(pids[0]), signal.SIGKILL)

    def replaced() -> bool:
        workers = [n for n in up.nodes(cluster_id) if n["role"] == "worker"]
        keys = {w["key"] for w in workers if w["registered"]}
        return len(keys) == 3 and victim["key"] not in keys

    wait_until(replaced, 120, message=lambda: f"replacement of {victim['key']}: {up.nodes(cluster_id)}\n{up.logs()}")
    lost = [e for e in up.events(cluster_id) if e["type"] == "NODES_LOST"]
    assert [e["details"]["node"] for e in lost] == [victim["key"]]
    assert up.cluster(cluster_id)["state"] == "RUNNING"


def test_the_idle_cluster_terminates_itself_and_leaves_no_process(up: Up, cluster: dict[str, Any]) -> None:
    cluster_id = cluster["cluster_id"]
    terminated = up.wait_cluster(cluster_id, "TERMINATED", timeout=120)  # 15 s idle, then the wind-down
    assert terminated["termination_reason"]["code"] == "INACTIVITY"
    from sparkplane.backends.local.cluster import LocalClusterProvider

    provider = LocalClusterProvider(up.data_dir / "clusters", spark_home=Path(os.environ["SPARK_HOME"]))
    try:
        assert provider.cluster_uids() == set()
    finally:
        provider.close()
    leftovers = subprocess.run(["pgrep", "-f", str(up.data_dir / "clusters")], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
