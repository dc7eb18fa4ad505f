"""Fault tests of sessions and clusters on the production topology (PostgreSQL, RabbitMQ, a process per role).

- an agent killed with -9 ends its session `dead`, within seconds, with its driver log kept;
- every role killed with -9 while a statement runs: after the restart the session shows `recovering`, then
  `idle`; the statement ends with its output; the next statement works; one agent was ever started;
- every role killed with -9 while a cluster starts: it ends RUNNING once, with one master and its workers,
  no duplicate daemon.

The harness (a database and a vhost of the module's own, roles started per test) is test_faults_production's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sparkplane.backends.local.cluster import LocalClusterProvider
from tests.e2e.roles import stop_local_runs, wait_until
from tests.e2e.test_faults_production import (  # noqa: F401  (pytest finds the fixtures by these names)
    ControlPlane,
    broker_url,
    database_url,
    plane_settings,
)
from tests.e2e.test_faults_production import plane as production_plane  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]
NO_POOL = {"SPARKPLANE_POOL_SIZE": "0"}  # every session here starts cold: one JVM less on two cores


@pytest.fixture
def plane(production_plane: ControlPlane) -> Iterator[ControlPlane]:  # noqa: F811
    yield production_plane
    for root in ("sessions", "clusters"):
        stop_local_runs(production_plane.data_dir / root)


def start_roles(plane: ControlPlane) -> list[Any]:
    api = plane.start_api()
    watcher = plane.roles.start("watch-interactive", env=NO_POOL)
    worker = plane.roles.start("worker", env=NO_POOL, args=["--concurrency", "2"])
    plane.wait_ready(api)
    return [api, watcher, worker]


def session_state(plane: ControlPlane, session_id: int) -> str:
    try:
        return str(plane.http.get(f"/livy/sessions/{session_id}/state").json()["state"])
    except Exception:  # the API may be restarting
        return "?"


def wait_session(plane: ControlPlane, session_id: int, states: set[str], timeout: float = 180) -> list[str]:
    seen: list[str] = []

    def reached() -> bool:
        current = session_state(plane, session_id)
        if not seen or seen[-1] != current:
            seen.append(current)
        return current in states

    wait_until(reached, timeout, interval=0.2, message=lambda: f"session {session_id} {states}, seen {seen}")
    return seen


def start_session(plane: ControlPlane) -> tuple[int, Path]:
    response = plane.http.post("/livy/sessions", json={"kind": "pyspark", "conf": {"spark.ui.enabled": "false"}})
    assert response.status_code == 201, response.text
    session_id = int(response.json()["id"])
    wait_session(plane, session_id, {"idle"})
    with plane.ctx.db.uow() as uow:
        row = uow.sessions.get(session_id)
        assert row is not None and row.handle is not None
        run_dir = Path(row.handle["extra"]["run_dir"])
    return session_id, run_dir


def statement(plane: ControlPlane, session_id: int, number: int) -> dict[str, Any]:
    return dict(plane.http.get(f"/livy/sessions/{session_id}/statements/{number}").json())


def test_an_agent_killed_with_sigkill_ends_its_session_dead_within_seconds(plane: ControlPlane) -> None:
    start_roles(plane)
    session_id, run_dir = start_session(plane)
    agent_pid = json.loads((run_dir / "agent.json").read_text())["pid"]
    os.kill(agent_pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_session(plane, session_id, {"dead", "error"}, timeout=60)
    print(f"\n[figure] agent killed -9 -> session dead: {time.monotonic() - killed:.2f} s")
    assert session_state(plane, session_id) == "dead"
    body = plane.http.get(f"/livy/sessions/{session_id}").json()
    assert body["state"] == "dead"
    log = plane.http.get(f"/livy/sessions/{session_id}/log", params={"size": -1}).json()
    assert any("ready in" in line for line in log["log"]), log  # the driver log outlives the agent
    assert plane.http.post(f"/livy/sessions/{session_id}/statements", json={"code": "1"}).status_code == 409


def session_dirs(plane: ControlPlane) -> set[str]:
    root = plane.data_dir / "sessions"
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")} if root.is_dir() else set()


def test_control_plane_killed_mid_statement_recovers_the_session(plane: ControlPlane) -> None:
    roles = start_roles(plane)
    before = session_dirs(plane)
    session_id, run_dir = start_session(plane)
    code = "import time\ntime.sleep(12)\n'slept'"
    submitted = plane.http.post(f"/livy/sessions/{session_id}/statements", json={"code": code})
    assert submitted.status_code == 201, submitted.text
    wait_until(lambda: statement(plane, session_id, 0)["state"] == "running", 60)

    plane.roles.kill_all(roles)
    assert [p.returncode for p in roles] == [-9, -9, -9]
    for process in roles:
        process.start()
    plane.wait_ready(roles[0])

    wait_session(plane, session_id, {"idle"}, timeout=120)
    wait_until(lambda: statement(plane, session_id, 0)["state"] == "available", 60)
    done = statement(plane, session_id, 0)
    assert done["output"]["status"] == "ok" and done["output"]["data"]["text/plain"] == "'slept'", done
    after = plane.http.post(f"/livy/sessions/{session_id}/statements", json={"code": "1 + 1"}).json()
    wait_until(lambda: statement(plane, session_id, after["id"])["state"] == "available", 60)
    assert statement(plane, session_id, after["id"])["output"]["data"]["text/plain"] == "2"
    with plane.ctx.db.uow() as uow:
        events = [e.to_state for e in uow.sessions.events(session_id)]
    assert events.count("starting") == 1, events  # launched once, never again after the restart
    # The restarted watcher showed it recovering (Livy's word for re-adopting), then saw it busy or idle.
    assert events[events.index("recovering") + 1] in ("busy", "idle"), events
    assert session_dirs(plane) - before == {run_dir.name}  # one agent for the session, before and after
    plane.http.delete(f"/livy/sessions/{session_id}")
    wait_session(plane, session_id, {"dead"}, timeout=60)


def daemons(data_dir: Path, uid: str) -> list[str]:
    """Spark daemon JVMs (not their supervisors) whose node folder belongs to this cluster."""
    found = []
    out = subprocess.run(["pgrep", "-f", "org.apache.spark.deploy"], capture_output=True, text=True).stdout.split()
    for pid in out:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "java":
                continue
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd.startswith(str(data_dir / "clusters" / uid)):
            found.append(Path(cwd).name)
    return sorted(found)


def test_control_plane_killed_while_a_cluster_starts_ends_running_once(plane: ControlPlane) -> None:
    roles = start_roles(plane)
    created = plane.http.post("/api/v1/clusters", json={"cluster_name": "faults", "num_workers": 2})
    assert created.status_code == 201, created.text
    cluster_id = created.json()["cluster_id"]
    with plane.ctx.db.uow() as uow:
        row = uow.clusters.get(cluster_id)
        assert row is not None
        uid = row.uid
    master_dir = plane.data_dir / "clusters" / f"{uid}-g0-master"
    wait_until(lambda: (master_dir / "supervisor.pid").exists(), 60, message="the master's launch")

    plane.roles.kill_all(roles)  # mid-start: the master is launching, no worker yet
    for process in roles:
        process.start()
    plane.wait_ready(roles[0])
    wait_until(
        lambda: plane.http.get(f"/api/v1/clusters/{cluster_id}").json()["state"] == "RUNNING",
        180,
        message=lambda: f"cluster RUNNING: {plane.http.get(f'/api/v1/clusters/{cluster_id}').json()}",
    )
    expected = [f"{uid}-g0-master", f"{uid}-g0-w0", f"{uid}-g0-w1"]
    provider = LocalClusterProvider(plane.data_dir / "clusters", spark_home=Path(os.environ["SPARK_HOME"]))
    try:
        assert sorted(n.key for n in provider.nodes(uid)) == expected  # no node launched twice
    finally:
        provider.close()
    assert daemons(plane.data_dir, uid) == expected  # one JVM per node
    with plane.ctx.db.uow() as uow:
        query = sa.text("select to_state from state_events where entity = 'cluster' and entity_id = :id")
        transitions = list(uow.db.execute(query, {"id": cluster_id}).scalars())
    assert transitions.count("RUNNING") == 1, transitions
    plane.http.post(f"/api/v1/clusters/{cluster_id}/terminate")
    wait_until(lambda: plane.http.get(f"/api/v1/clusters/{cluster_id}").json()["state"] == "TERMINATED", 120)
    assert daemons(plane.data_dir, uid) == []
