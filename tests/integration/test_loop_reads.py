"""The polled reads run on the event loop on PostgreSQL, in the thread lane on SQLite (db/loop_reads.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from sparkplane.db import base
from sparkplane.db.base import make_engine
from sparkplane.db.loop_reads import LoopReads
from sparkplane.db.models import Session
from sparkplane.db.uow import LOOP_CONNECTION, Database
from sparkplane.services import sessions
from sparkplane.services.context import Context
from tests.conftest import on_own_loop, pg_url, terminate_pg_backend
from tests.integration.conftest import ALICE


def _on_a_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[bool]:
    """Records, per call of sessions.`name`, whether it ran on the event loop's thread."""
    seen: list[bool] = []
    real: Callable[..., Any] = getattr(sessions, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(_on_a_running_loop())
        return real(*args, **kwargs)

    monkeypatch.setattr(sessions, name, spy)
    return seen


def test_a_session_get_runs_on_the_loop_with_postgresql_and_in_a_thread_with_sqlite(
    api: TestClient, db_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = api.post("/api/v1/sessions", headers=ALICE, json={"kind": "pyspark"})
    assert created.status_code == 201, created.text
    seen = _spy(monkeypatch, "get_with_connect_url")
    got = api.get(f"/api/v1/sessions/{created.json()['id']}", headers=ALICE)
    assert got.status_code == 200, got.text
    assert got.json()["id"] == created.json()["id"]
    assert seen == [db_kind == "postgres"]
    missing = api.get("/api/v1/sessions/999999", headers=ALICE)  # an error raised in the lane is still a 404
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]


def test_a_livy_state_read_stamps_the_heartbeat_through_the_lane(
    api: TestClient, ctx: Context, db_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = api.post("/livy/sessions", headers=ALICE, json={"kind": "pyspark", "heartbeatTimeoutInSecond": 60})
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    ctx.clock.advance(30)  # type: ignore[attr-defined]
    seen = _spy(monkeypatch, "get")
    assert api.get(f"/livy/sessions/{session_id}/state", headers=ALICE).status_code == 200
    assert seen == [db_kind == "postgres"]
    with ctx.db.uow() as uow:
        row = uow.db.get(Session, session_id)
        assert row is not None and row.last_heartbeat_at == ctx.clock.now()


def _backend_pid() -> int:
    connection = LOOP_CONNECTION.get()
    assert connection is not None, "called outside the lane"
    return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _in_a_lane(scenario: Callable[[LoopReads, Database], Awaitable[None]]) -> None:
    """Runs `scenario` on an event loop with a lane of one connection to the test database."""
    db = Database(make_engine(pg_url()))

    async def run() -> None:
        reads = LoopReads(db.engine, connections=1)
        try:
            await scenario(reads, db)
        finally:
            await reads.close()

    try:
        on_own_loop(run())
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_broken_lane_connection_fails_one_read_and_the_next_gets_a_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "IDLE_PING_SECONDS", 3600.0)  # never tested on checkout: the query finds it dead

    async def scenario(reads: LoopReads, _db: Database) -> None:
        first = await reads(_backend_pid)
        terminate_pg_backend(first)
        with pytest.raises(OperationalError):
            await reads(_backend_pid)
        assert await reads(_backend_pid) != first

    _in_a_lane(scenario)


@pytest.mark.postgres
def test_an_idle_lane_connection_is_tested_and_replaced_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "IDLE_PING_SECONDS", 0.0)  # every returned connection counts as idle

    async def scenario(reads: LoopReads, _db: Database) -> None:
        first = await reads(_backend_pid)
        terminate_pg_backend(first)
        assert await reads(_backend_pid) != first  # no error: the ping found it dead

    _in_a_lane(scenario)


@pytest.mark.postgres
def test_a_transaction_inside_the_lane_is_refused() -> None:
    async def scenario(reads: LoopReads, db: Database) -> None:
        def opens_a_transaction() -> None:
            with db.uow():
                pass

        with pytest.raises(RuntimeError, match="inside a read on the event loop"):
            await reads(opens_a_transaction)
        assert LOOP_CONNECTION.get() is None  # the call's connection does not outlive it

    _in_a_lane(scenario)
