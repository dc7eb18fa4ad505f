"""Kill -9 each role at each phase of the work it does, revive it, and check nothing was lost or done twice.

One cell = (role, phase, fault point): the point (services/faults.py lists them) is armed in that running
role, the request is made, the role dies there, it is started again, and then the request must reach its
right final state, with exactly one launch behind it (counted: the stand-in spark-submit's launch log, the
agent's run folders and state events, the cluster's nodes) and no process left over.

Cells that do not exist: the batch watcher never touches sessions, statements or clusters, the interactive
watcher never touches batches, and no worker task runs a statement (the API hands it to the agent directly).
Already covered elsewhere with real Spark, and not repeated here: tests/e2e/test_faults_production.py
(worker killed before spark-submit; every role killed while a batch runs) and test_faults_interactive.py
(an agent killed; every role killed mid-statement; every role killed while a cluster starts).

Plain `pytest` runs the cells marked `short=True` (six: every role killed, every phase covered); the other
cells are deselected at collection, so the run reports them as deselected, not skipped. The full matrix:
`scripts/test-faults` (SPARKPLANE_FAULTS_FULL=1). The roles run once for the suite and only the killed one
is started again; the first session-create cell that passes keeps its idle session for the statement cells.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sparkplane.backends.local.cluster import LocalClusterProvider

from .harness import Plane

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

BATCH_TERMINAL = ("success", "dead", "killed")
SESSION_TIMEOUT = 180.0  # a cold agent starts a JVM: seconds on a loaded two-core machine


def cell(role: str, *points: str, also: dict[str, str] | None = None, short: bool = False) -> Any:
    """A cell of the matrix: `role` dies at points[0]; `also` names other roles armed at once.

    `short` puts the cell in the subset plain pytest runs (conftest.py deselects the others).
    """
    marks = [pytest.mark.faults_short] if short else []
    return pytest.param(role, points[0], also or {}, id=f"{role}-{points[0]}", marks=marks)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def kill_and_revive(plane: Plane, role: str, point: str, also: dict[str, str]) -> None:
    plane.wait_killed(role, point)
    for other, other_point in also.items():
        plane.wait_killed(other, other_point)
    for dead in (role, *also):
        plane.revive(dead)


# -- batch submit -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "point", "also"),
    [
        cell("api", "api.batch_created", short=True),
        cell("api", "relay.after_publish"),
        cell("worker", "worker.before_launch"),
        cell("worker", "worker.after_launch", short=True),
        cell("watch-batch", "batch_reconcile.before_running"),
        cell("watch-batch", "batch_reconcile.before_success"),
    ],
)
def test_batch_submit(plane: Plane, app_file: str, role: str, point: str, also: dict[str, str]) -> None:
    name = unique("batch")
    plane.arm(role, point)
    response = plane.post("/livy/batches", {"file": app_file, "args": ["2"], "name": name})
    kill_and_revive(plane, role, point, also)

    batch = plane.batch_named(name)
    if response is not None:
        assert response.status_code == 201 and response.json()["id"] == batch["id"], response.text
    state = plane.poll(lambda: plane.batch_state(batch["id"]), BATCH_TERMINAL, f"batch {batch['id']}")
    assert state == "success", plane.diagnostics()
    assert plane.launch_counts()[plane.uid_of(batch["id"])] == 1, plane.diagnostics()
    log = plane.get_json(f"/livy/batches/{batch['id']}/log", size=-1)["log"]
    assert "stand-in driver done" in log, log
    plane.all_alive()
    plane.assert_no_strays()


# -- cancel -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "point", "also"),
    [
        cell("api", "api.kill_requested"),
        cell("worker", "worker.before_cancel"),
        cell("worker", "worker.after_cancel"),
        # The worker dies after the backend stopped the run; the watcher then dies recording `killed`.
        cell("watch-batch", "batch_reconcile.before_killed", also={"worker": "worker.after_cancel"}, short=True),
    ],
)
def test_cancel(plane: Plane, app_file: str, role: str, point: str, also: dict[str, str]) -> None:
    name = unique("cancel")
    submitted = plane.post("/livy/batches", {"file": app_file, "args": ["120"], "name": name})
    assert submitted is not None and submitted.status_code == 201, submitted
    batch_id = int(submitted.json()["id"])
    plane.poll(lambda: plane.batch_state(batch_id), ("running",), f"batch {batch_id}")

    plane.arm(role, point)
    for other, other_point in also.items():
        plane.arm(other, other_point)
    with contextlib.suppress(httpx.TransportError):  # the API may die answering
        plane.http.delete(f"/livy/batches/{batch_id}")
    kill_and_revive(plane, role, point, also)

    state = plane.poll(lambda: plane.batch_state(batch_id), BATCH_TERMINAL, f"batch {batch_id}")
    assert state == "killed", plane.diagnostics()
    assert plane.launch_counts()[plane.uid_of(batch_id)] == 1, plane.diagnostics()
    plane.all_alive()
    plane.assert_no_strays()  # the stand-in driver is gone, not orphaned


# -- session create -----------------------------------------------------------------------------------------


def session_state(plane: Plane, session_id: int) -> str:
    return str(plane.get_json(f"/livy/sessions/{session_id}/state")["state"])


def session_dirs(plane: Plane) -> set[str]:
    root = plane.data_dir / "sessions"
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")} if root.is_dir() else set()


def session_events(plane: Plane, session_id: int) -> list[str]:
    with plane.ctx.db.uow() as uow:
        return [e.to_state for e in uow.sessions.events(session_id)]


def run_statement(plane: Plane, session_id: int, code: str) -> dict[str, Any]:
    response = plane.post(f"/livy/sessions/{session_id}/statements", {"code": code})
    assert response is not None and response.status_code == 201, response
    number = int(response.json()["id"])
    plane.poll(lambda: statement(plane, session_id, number)["state"], ("available", "error", "cancelled"), "stmt")
    return statement(plane, session_id, number)


def statement(plane: Plane, session_id: int, number: int) -> dict[str, Any]:
    return dict(plane.get_json(f"/livy/sessions/{session_id}/statements/{number}"))


def stop_session(plane: Plane, session_id: int) -> None:
    plane.http.delete(f"/livy/sessions/{session_id}")
    plane.poll(lambda: session_state(plane, session_id), ("dead", "success", "killed"), f"session {session_id}")


@pytest.fixture(scope="module")
def kept_sessions(plane: Plane) -> Iterator[list[int]]:
    """Idle sessions kept for the statement cells (a cold agent costs a JVM start), stopped at the module's end."""
    kept: list[int] = []
    yield kept
    for session_id in kept:
        stop_session(plane, session_id)
    plane.kept.clear()
    plane.assert_no_strays()


def keep(plane: Plane, kept: list[int], session_id: int, run_dir: Path) -> None:
    kept.append(session_id)
    plane.kept.add(run_dir)


@pytest.mark.parametrize(
    ("role", "point", "also"),
    [
        cell("api", "api.session_created"),
        cell("worker", "worker.before_session_launch"),
        cell("worker", "worker.after_session_launch", short=True),
        cell("watch-interactive", "session_reconcile.before_idle"),
    ],
)
def test_session_create(plane: Plane, kept_sessions: list[int], role: str, point: str, also: dict[str, str]) -> None:
    name = unique("session")
    before = session_dirs(plane)
    plane.arm(role, point)
    response = plane.post("/livy/sessions", {"kind": "pyspark", "name": name, "conf": {"spark.ui.enabled": "false"}})
    kill_and_revive(plane, role, point, also)

    found = [s for s in plane.get_json("/livy/sessions", size=1000)["sessions"] if s["name"] == name]
    assert len(found) == 1, found
    session_id = int(found[0]["id"])
    if response is not None:
        assert response.status_code == 201 and response.json()["id"] == session_id, response.text
    state = plane.poll(lambda: session_state(plane, session_id), ("idle", "error", "dead"), "session", SESSION_TIMEOUT)
    assert state == "idle", plane.diagnostics()
    done = run_statement(plane, session_id, "6 * 7")
    assert done["output"]["data"]["text/plain"] == "42", done
    events = session_events(plane, session_id)
    assert events.count("starting") == 1, events
    launched = session_dirs(plane) - before
    assert len(launched) == 1, f"one agent per session: {launched}"
    if kept_sessions:
        stop_session(plane, session_id)
    else:  # the statement cells use it; any second agent, in a folder of its own, is still a stray below
        keep(plane, kept_sessions, session_id, plane.data_dir / "sessions" / launched.pop())
    plane.all_alive()
    plane.assert_no_strays()


# -- cluster create -----------------------------------------------------------------------------------------


def cluster_state(plane: Plane, cluster_id: int) -> str:
    return str(plane.get_json(f"/api/v1/clusters/{cluster_id}")["state"])


@pytest.mark.parametrize(
    ("role", "point", "also"),
    [
        cell("api", "api.cluster_created"),
        cell("worker", "converge.before_launch_master"),
        cell("worker", "converge.after_launch_master"),
        cell("watch-interactive", "converge.before_running", short=True),
    ],
)
def test_cluster_create(plane: Plane, role: str, point: str, also: dict[str, str]) -> None:
    name = unique("cluster")
    watcher = plane.procs["watch-interactive"]
    if role == "worker":
        # The watcher's passes converge clusters too and would often launch the master first: it waits,
        # stopped, until the worker died at the point, and then finishes the work the worker left.
        watcher.stop()
    plane.arm(role, point)
    response = plane.post("/api/v1/clusters", {"cluster_name": name, "num_workers": 0})
    try:
        kill_and_revive(plane, role, point, also)
    finally:
        if not watcher.alive:
            watcher.start()

    found = [c for c in plane.get_json("/api/v1/clusters", limit=1000)["items"] if c["cluster_name"] == name]
    assert len(found) == 1, found
    cluster_id = found[0]["cluster_id"]
    try:
        _cluster_ran_once(plane, cluster_id, response)
    finally:  # a failed cell leaves no master behind for the next one to count
        plane.http.post(f"/api/v1/clusters/{cluster_id}/terminate")
        plane.poll(lambda: cluster_state(plane, cluster_id), ("TERMINATED",), "cluster terminated", 120)
    plane.all_alive()
    plane.assert_no_strays()


def _cluster_ran_once(plane: Plane, cluster_id: int, response: httpx.Response | None) -> None:
    if response is not None:
        assert response.status_code == 201 and response.json()["cluster_id"] == cluster_id, response.text
    state = plane.poll(lambda: cluster_state(plane, cluster_id), ("RUNNING", "ERROR", "TERMINATED"), "cluster", 120)
    assert state == "RUNNING", plane.diagnostics()
    with plane.ctx.db.uow() as uow:
        row = uow.clusters.get(cluster_id)
        assert row is not None
        uid = row.uid
        query = sa.text("select to_state from state_events where entity = 'cluster' and entity_id = :id")
        transitions = list(uow.db.execute(query, {"id": cluster_id}).scalars())
    assert transitions.count("RUNNING") == 1, transitions
    provider = LocalClusterProvider(plane.data_dir / "clusters", spark_home=Path(_spark_home()))
    try:
        assert [n.key for n in provider.nodes(uid)] == [f"{uid}-g0-master"], "one master, launched once"
    finally:
        provider.close()


# -- statement run ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_session(plane: Plane, kept_sessions: list[int]) -> int:
    """The session a session-create cell kept, or (when none ran or passed) one of its own."""
    if kept_sessions:
        return kept_sessions[0]
    before = session_dirs(plane)
    response = plane.post("/livy/sessions", {"kind": "pyspark", "conf": {"spark.ui.enabled": "false"}})
    assert response is not None and response.status_code == 201, response
    session_id = int(response.json()["id"])
    state = plane.poll(lambda: session_state(plane, session_id), ("idle", "error", "dead"), "session", SESSION_TIMEOUT)
    assert state == "idle", plane.diagnostics()
    (launched,) = session_dirs(plane) - before
    keep(plane, kept_sessions, session_id, plane.data_dir / "sessions" / launched)
    return session_id


@pytest.mark.parametrize(
    ("role", "point", "also"),
    [
        cell("api", "api.statement_created"),
        cell("api", "statement.after_hand_over"),
        cell("watch-interactive", "statement.before_store", short=True),
    ],
)
def test_statement_run(plane: Plane, live_session: int, role: str, point: str, also: dict[str, str]) -> None:
    ran = plane.data_dir / unique("ran")
    code = f"import time\nopen({str(ran)!r}, 'a').write('x')\ntime.sleep(2)\n'{ran.name}'"
    plane.arm(role, point)
    plane.post(f"/livy/sessions/{live_session}/statements", {"code": code})
    kill_and_revive(plane, role, point, also)

    listed = plane.get_json(f"/livy/sessions/{live_session}/statements", size=1000)["statements"]
    mine = [s for s in listed if s["code"] == code]
    assert len(mine) == 1, listed
    number = int(mine[0]["id"])
    final = plane.poll(
        lambda: statement(plane, live_session, number)["state"], ("available", "error", "cancelled"), "stmt"
    )
    assert final == "available", statement(plane, live_session, number)
    assert statement(plane, live_session, number)["output"]["data"]["text/plain"] == repr(ran.name)
    assert ran.read_text() == "x", "the statement ran more than once"
    plane.poll(lambda: session_state(plane, live_session), ("idle",), "session idle again")
    plane.all_alive()


def _spark_home() -> str:
    import os

    import pyspark

    return os.environ.get("SPARK_HOME") or os.path.dirname(pyspark.__file__)
