"""Livy's interactive face: the exact session and statement shapes, statuses and states (livy-contract.md)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sparkplane.backends.fake import FakeSessionBackend
from sparkplane.domain.states import Observed, StatementState
from sparkplane.services import cleanup, dispatch, session_runs
from sparkplane.services.context import Context
from tests.conftest import FakeClock, RecordingDispatcher
from tests.integration.conftest import ALICE, BOB

SESSION_KEYS = [
    "id",
    "name",
    "appId",
    "owner",
    "proxyUser",
    "state",
    "kind",
    "appInfo",
    "log",
    "ttl",
    "idleTimeout",
    "driverMemory",
    "driverCores",
    "executorMemory",
    "executorCores",
    "conf",
    "archives",
    "files",
    "heartbeatTimeoutInSecond",
    "jars",
    "numExecutors",
    "pyFiles",
    "queue",
]
STATEMENT_KEYS = ["id", "code", "state", "output", "progress", "started", "completed"]


def start(api: TestClient, ctx: Context, **body: object) -> int:
    response = api.post("/livy/sessions", headers=ALICE, json={"kind": "pyspark", **body})
    assert response.status_code == 201, response.text
    session_id = int(response.json()["id"])
    session_runs.launch(ctx, session_id)
    session_runs.reconcile(ctx, session_id)
    return session_id


def test_create_answers_201_location_and_livy_09_shape(api: TestClient, dispatcher: RecordingDispatcher) -> None:
    response = api.post(
        "/livy/sessions",
        headers=ALICE,
        json={
            "kind": "pyspark",
            "name": "nb-1",
            "heartbeatTimeoutInSecond": 60,
            "ttl": "8h",
            "idleTimeout": "30m",
            "conf": {"spark.sql.shuffle.partitions": "8"},
            "driverMemory": "1g",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/livy/sessions/{body['id']}"
    assert list(body) == SESSION_KEYS
    assert body["state"] == "not_started" and body["kind"] == "pyspark" and body["owner"] == "alice"
    assert body["proxyUser"] is None and body["log"] == []
    assert body["driverCores"] == 0 and body["numExecutors"] == 0 and body["jars"] is None  # Livy's unset values
    assert body["ttl"] == "8h" and body["idleTimeout"] == "30m" and body["heartbeatTimeoutInSecond"] == 60
    assert dispatcher.published == [(dispatch.LAUNCH_SESSION, body["id"])]


@pytest.mark.parametrize(
    ("alias", "kind"), [("python", "pyspark"), ("scala", "spark"), ("r", "sparkr"), (None, "shared"), ("sql", "sql")]
)
def test_kinds_and_aliases(api: TestClient, alias: str | None, kind: str) -> None:
    response = api.post("/livy/sessions", headers=ALICE, json={} if alias is None else {"kind": alias})
    assert response.status_code == 201 and response.json()["kind"] == kind


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "cobol"}, "kind 'cobol' is not one of"),
        ({"kind": "pyspark3"}, "kind 'pyspark3'"),
        ({"ttl": "forever"}, "ttl 'forever' is not a duration"),
        ({"idleTimeout": "-1m"}, "idleTimeout '-1m' is not a duration"),
        ({"ttl": "99999999999999999999d"}, "ttl '99999999999999999999d' is longer than 2147483647 seconds"),
        ({"idleTimeout": "9" * 5000 + "s"}, "is longer than 2147483647 seconds"),
        ({"heartbeatTimeoutInSecond": 2**70}, "heartbeatTimeoutInSecond must be at most 2147483647"),
        ({"numExecutors": 2**31}, "numExecutors must be at most 2147483647, not 2147483648"),
        ({"driverMemory": "much"}, "driverMemory 'much' is not a memory size"),
        ({"heartbeat": 60}, 'Unrecognized field "heartbeat"'),
        ({"jars": ["/etc/passwd"]}, "outside the blob storage"),
    ],
)
def test_bad_create_requests_are_400(api: TestClient, ctx: Context, body: dict[str, object], expected: str) -> None:
    response = api.post("/livy/sessions", headers=ALICE, json=body)
    assert response.status_code == 400 and expected in response.json()["msg"]
    assert api.get("/livy/sessions", headers=ALICE).json()["total"] == 0


def test_statement_round_trip_with_livy_shapes(api: TestClient, ctx: Context) -> None:
    session_id = start(api, ctx)
    assert api.get(f"/livy/sessions/{session_id}/state", headers=ALICE).json() == {"id": session_id, "state": "idle"}
    response = api.post(f"/livy/sessions/{session_id}/statements", headers=ALICE, json={"code": "1 + 1"})
    assert response.status_code == 201
    assert response.headers["location"] == f"/livy/sessions/{session_id}/statements/0"
    statement = response.json()
    assert list(statement) == STATEMENT_KEYS and statement["id"] == 0
    assert statement["state"] == "waiting" and statement["output"] is None  # as Livy answers a POST
    got = api.get(f"/livy/sessions/{session_id}/statements/0", headers=ALICE).json()
    assert got["state"] == "available" and got["progress"] == 1.0  # read through from the agent, then stored
    assert got["output"] == {"status": "ok", "execution_count": 0, "data": {"text/plain": "fake: 1 + 1"}}
    second = api.post(f"/livy/sessions/{session_id}/statements", headers=ALICE, json={"code": "2"}).json()
    assert second["id"] == 1
    listed = api.get(f"/livy/sessions/{session_id}/statements", headers=ALICE).json()
    assert list(listed) == ["total_statements", "statements"] and listed["total_statements"] == 2
    newest = api.get(f"/livy/sessions/{session_id}/statements", headers=ALICE, params={"order": "desc"}).json()
    assert [s["id"] for s in newest["statements"]] == [1, 0]
    got = api.get(f"/livy/sessions/{session_id}/statements/0", headers=ALICE).json()
    assert got["output"]["data"]["text/plain"] == "fake: 1 + 1"
    assert api.get(f"/livy/sessions/{session_id}/statements/9", headers=ALICE).json() == {"msg": "Statement not found"}


def test_shared_session_needs_a_kind_per_statement(api: TestClient, ctx: Context) -> None:
    response = api.post("/livy/sessions", headers=ALICE, json={})
    session_id = response.json()["id"]
    missing = api.post(f"/livy/sessions/{session_id}/statements", headers=ALICE, json={"code": "1"})
    assert missing.status_code == 400 and "needs a kind" in missing.json()["msg"]
    ok = api.post(f"/livy/sessions/{session_id}/statements", headers=ALICE, json={"code": "1", "kind": "python"})
    assert ok.status_code == 201


def test_statements_wait_for_a_starting_session_then_run_in_order(
    api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend
) -> None:
    fake_sessions.auto_advance = False
    session_id = api.post("/livy/sessions", headers=ALICE, json={"kind": "pyspark"}).json()["id"]
    for code in ("a = 1", "a + 1"):
        assert (
            api.post(f"/livy/sessions/{session_id}/statements", headers=ALICE, json={"code": code}).json()["state"]
            == "waiting"
        )
    session_runs.launch(ctx, session_id)
    key = next(iter(fake_sessions.agents))
    fake_sessions.set_state(key, Observed.IDLE)
    session_runs.reconcile(ctx, session_id)  # idle: both handed over, in order
    assert sorted(fake_sessions.agents[key].statements) == [0, 1]
    fake_sessions.finish_statement(
        key, 0, StatementState.AVAILABLE, {"status": "ok", "execution_count": 0, "data": {"text/plain": ""}}
    )
    session_runs.reconcile(ctx, session_id)
    assert api.get(f"/livy/sessions/{session_id}/statements/0", headers=ALICE).json()["state"] == "available"


def test_cancel_statement_answers_canceled(api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend) -> None:
    session_id = start(api, ctx)
    fake_sessions.auto_advance = False
    api.post(f"/livy/sessions/{session_id}/statements", headers=ALICE, json={"code": "while True: pass"})
    response = api.post(f"/livy/sessions/{session_id}/statements/0/cancel", headers=ALICE)
    assert response.status_code == 200 and response.json() == {"msg": "canceled"}
    assert api.get(f"/livy/sessions/{session_id}/statements/0", headers=ALICE).json()["state"] == "cancelled"


def test_delete_stops_the_session_and_second_delete_is_404(
    api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend
) -> None:
    session_id = start(api, ctx)
    assert api.delete(f"/livy/sessions/{session_id}", headers=ALICE).json() == {"msg": "deleted"}
    assert api.get(f"/livy/sessions/{session_id}/state", headers=ALICE).json()["state"] == "shutting_down"
    session_runs.stop(ctx, session_id)
    assert api.get(f"/livy/sessions/{session_id}/state", headers=ALICE).json()["state"] == "dead"
    again = api.delete(f"/livy/sessions/{session_id}", headers=ALICE)
    assert again.status_code == 404 and again.json() == {"msg": f"Session {session_id} already stopped."}
    dead = api.post(f"/livy/sessions/{session_id}/statements", headers=ALICE, json={"code": "1"})
    assert dead.status_code == 409 and "start a new session" in dead.json()["msg"]


def test_an_agent_that_dies_ends_the_session_and_its_statements(
    api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend
) -> None:
    session_id = start(api, ctx)
    fake_sessions.auto_advance = False
    api.post(f"/livy/sessions/{session_id}/statements", headers=ALICE, json={"code": "import os; os._exit(1)"})
    fake_sessions.set_state(next(iter(fake_sessions.agents)), Observed.FAILED)
    session_runs.reconcile(ctx, session_id)
    body = api.get(f"/livy/sessions/{session_id}", headers=ALICE).json()
    assert body["state"] == "dead" and body["log"] == ["fake agent started"]
    assert api.get(f"/livy/sessions/{session_id}/statements/0", headers=ALICE).json()["state"] == "cancelled"


def test_an_agent_that_never_started_is_error(api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend) -> None:
    fake_sessions.auto_advance = False
    session_id = api.post("/livy/sessions", headers=ALICE, json={"kind": "pyspark"}).json()["id"]
    session_runs.launch(ctx, session_id)
    fake_sessions.set_state(next(iter(fake_sessions.agents)), Observed.FAILED)
    session_runs.reconcile(ctx, session_id)
    assert api.get(f"/livy/sessions/{session_id}/state", headers=ALICE).json()["state"] == "error"


def test_name_lookup_duplicate_names_and_privacy(api: TestClient, ctx: Context) -> None:
    session_id = start(api, ctx, name="notebook")
    assert api.get("/livy/sessions/notebook", headers=ALICE).json()["id"] == session_id
    duplicate = api.post("/livy/sessions", headers=ALICE, json={"name": "notebook"})
    assert duplicate.status_code == 409 and "Duplicate session name" in duplicate.json()["msg"]
    assert api.get(f"/livy/sessions/{session_id}", headers=BOB).status_code == 404
    assert api.post(f"/livy/sessions/{session_id}/statements", headers=BOB, json={"code": "1"}).status_code == 404
    assert api.get("/livy/sessions", headers=BOB).json()["total"] == 0


def test_completion(api: TestClient, ctx: Context) -> None:
    session_id = start(api, ctx)
    body = {"code": "spark.ran", "kind": "pyspark", "cursor": 9}
    assert api.post(f"/livy/sessions/{session_id}/completion", headers=ALICE, json=body).json() == {
        "candidates": ["spark.ran_fake"]
    }


def test_idle_ttl_and_heartbeat_timeouts_end_sessions(api: TestClient, ctx: Context) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    idle = start(api, ctx, idleTimeout="10m")
    ttl = start(api, ctx, ttl="1h")
    beat = start(api, ctx, heartbeatTimeoutInSecond=60)
    never_beaten = start(api, ctx, heartbeatTimeoutInSecond=60, idleTimeout="1d")
    api.get(f"/livy/sessions/{beat}", headers=ALICE)  # the first heartbeat
    clock.advance(61)
    api.get(f"/livy/sessions/{ttl}", headers=ALICE)
    assert cleanup.run_cleanup(ctx).sessions_timed_out == 1  # only the heartbeat one
    clock.advance(600)
    assert cleanup.run_cleanup(ctx).sessions_timed_out == 1  # idle
    clock.advance(3600)
    assert cleanup.run_cleanup(ctx).sessions_timed_out == 1  # ttl
    states = {s: api.get(f"/livy/sessions/{s}/state", headers=ALICE).json()["state"] for s in (idle, ttl, beat)}
    assert set(states.values()) == {"shutting_down"}
    assert api.get(f"/livy/sessions/{never_beaten}/state", headers=ALICE).json()["state"] == "idle"
    assert cleanup.run_cleanup(ctx).sessions_timed_out == 0  # idempotent


def test_a_restarted_watcher_shows_recovering_then_idle(api: TestClient, ctx: Context) -> None:
    session_id = start(api, ctx)
    assert session_runs.mark_recovering(ctx) == 1
    assert api.get(f"/livy/sessions/{session_id}/state", headers=ALICE).json()["state"] == "recovering"
    session_runs.reconcile(ctx, session_id)
    assert api.get(f"/livy/sessions/{session_id}/state", headers=ALICE).json()["state"] == "idle"


def test_launch_is_idempotent(api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend) -> None:
    session_id = api.post("/livy/sessions", headers=ALICE, json={"kind": "pyspark"}).json()["id"]
    session_runs.launch(ctx, session_id)
    session_runs.launch(ctx, session_id)
    assert list(fake_sessions.starts.values()) == [1]
