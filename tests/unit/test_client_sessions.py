"""The SDK's sessions and statements against the in-memory FakeServer (fake_server.py): no network, no sleeping."""

from __future__ import annotations

import base64
import json
import sys
import types

import httpx
import pytest

from sparkplane.client import (
    ClientError,
    Session,
    SessionFailed,
    StatementCancelled,
    StatementError,
    StatementResult,
    WaitTimeout,
)
from sparkplane.client.sdk import Client
from tests.unit.fake_server import (
    CONNECT_URL,
    START_FAILS,
    FakeServer,
    error,
    error_output,
    sql_output,
)

PNG = b"\x89PNG\r\n\x1a\nfake"
TABLE = {
    "headers": [{"name": "id", "type": "INT_TYPE"}, {"name": "word", "type": "STRING_TYPE"}],
    "data": [[1, "a"], [2, None]],
}


def _paths(server: FakeServer) -> list[str]:
    return [f"{r.method} {r.url.path}" for r in server.requests]


def _posted(server: FakeServer) -> list[httpx.Request]:
    return [r for r in server.requests if r.method == "POST"]


# ---- create and wait --------------------------------------------------------------------------------------


def test_create_session_waits_until_idle(sp: Client, server: FakeServer) -> None:
    seen: list[str] = []
    session = sp.create_session(
        "pyspark",
        name="explore",
        conf={"spark.sql.shuffle.partitions": 4},  # type: ignore[dict-item]  # a non-str value is sent as str
        driver_memory="2g",
        num_executors=2,
        idle_timeout="30m",
        ttl="8h",
        on_update=lambda s: seen.append(s.state),
        poll=0,
    )
    assert seen == ["not_started", "starting", "idle"]
    assert (session.id, session.kind, session.last.state) == (1, "pyspark", "idle")
    body = server.created[0]
    assert body["kind"] == "pyspark" and body["name"] == "explore"
    assert body["conf"] == {"spark.sql.shuffle.partitions": "4"}
    assert (body["driverMemory"], body["numExecutors"], body["idleTimeout"], body["ttl"]) == ("2g", 2, "30m", "8h")
    assert "queue" not in body and "proxyUser" not in body  # unset options keep the server's defaults
    assert session.last.connect_url == CONNECT_URL
    assert "connect-secret" not in repr(session.last)  # the Spark Connect token stays out of repr()


def test_create_session_raises_when_it_ends_in_error(sp: Client, server: FakeServer) -> None:
    server.session_script = list(START_FAILS)
    with pytest.raises(SessionFailed) as info:
        sp.create_session(poll=0)
    assert str(info.value) == "session 1 ended error: BACKEND_FAILED driver exited with code 1"
    assert info.value.session.state == "error" and info.value.session.is_final


def test_create_session_timeout_stops_the_session(sp: Client, server: FakeServer) -> None:
    with pytest.raises(WaitTimeout, match="session 1 is still starting after 0s"):
        sp.create_session(timeout=0, poll=0)
    assert _paths(server)[-1] == "DELETE /api/v1/sessions/1"


def test_create_session_without_waiting(sp: Client, server: FakeServer) -> None:
    session = sp.create_session("sql", wait=False)
    assert session.last.state == "not_started" and session.kind == "sql"
    assert _paths(server) == ["POST /api/v1/sessions"]
    assert session.wait(poll=0).state == "idle" and session.last.state == "idle"


def test_attach_list_logs_events_and_stop(sp: Client, server: FakeServer) -> None:
    server.session_script = []  # no steps: each stays as added
    server.add_session("idle")
    server.add_session("dead")
    server.session_logs[1].extend(f"l{i}" for i in range(1500))
    session = sp.session(1)
    assert session.last.state == "idle"
    assert [s.id for s in sp.list_sessions(state="dead").items] == [2]
    assert session.logs() == [f"l{i}" for i in range(1500)]  # two pages
    assert session.logs(offset=1498) == ["l1498", "l1499"]
    stopped = session.stop()
    assert stopped.state == "shutting_down" and not stopped.is_final
    assert session.info().state == "dead"
    assert [(e.from_state, e.to_state) for e in session.events()][-2:] == [
        ("idle", "shutting_down"), ("shutting_down", "dead"),
    ]  # fmt: skip


def test_follow_session_log_until_it_ends(sp: Client, server: FakeServer) -> None:
    server.add_session("idle")
    server.session_logs[1].extend(["a", "b"])
    server.session_steps[1] = ["idle", "dead"]
    assert list(sp.session(1, keep=True).follow_log(poll=0)) == ["a", "b"]


# ---- statements -------------------------------------------------------------------------------------------


@pytest.fixture
def session(sp: Client, server: FakeServer) -> Session:
    server.session_script = ["idle"]
    return sp.create_session(poll=0)


def test_run_returns_text_and_polls_fast_then_slower(session: Session, server: FakeServer, sleeps: list[float]) -> None:
    server.statement_script = ["waiting"] * 12 + ["running", "available"]
    result = session.run("1 + 1")
    assert result.text == "ran: 1 + 1" and result.state == "available" and not result.failed
    assert result.output == {"status": "ok", "execution_count": 0, "data": {"text/plain": "ran: 1 + 1"}}
    assert (result.json, result.table, result.image_png) == (None, None, None)
    assert json.loads(_posted(server)[-1].content) == {"code": "1 + 1"}  # no kind: the session's own
    assert sleeps[:3] == [0.01, 0.015, 0.0225]  # statements are usually fast: look again soon
    assert sleeps[-1] == 0.5 and max(sleeps) == 0.5


def test_run_json_and_image_outputs(session: Session, server: FakeServer) -> None:
    server.outputs["%json d"] = {"status": "ok", "data": {"application/json": {"a": [1, 2]}}}
    server.outputs["%matplot plt"] = {
        "status": "ok",
        "data": {"image/png": base64.b64encode(PNG).decode(), "text/plain": ""},
    }
    assert session.run("%json d").json == {"a": [1, 2]}
    image = session.run("%matplot plt")
    assert image.image_png == PNG and image.text == "" and image.table is None


def test_run_livy_table_output(session: Session, server: FakeServer) -> None:
    server.outputs["%table t"] = {"status": "ok", "data": {"application/vnd.livy.table.v1+json": TABLE}}
    result = session.run("%table t")
    assert result.columns == [("id", "INT_TYPE"), ("word", "STRING_TYPE")]
    assert result.table == [{"id": 1, "word": "a"}, {"id": 2, "word": None}]


def test_sql_rows_are_dicts_keyed_by_field_name(session: Session, server: FakeServer) -> None:
    query = "select id, tags from t"
    server.outputs[query] = sql_output([("id", "long"), ("tags", {"type": "array"})], [[1, ["x"]], [2, []]])  # type: ignore[list-item]
    assert session.sql(query) == [{"id": 1, "tags": ["x"]}, {"id": 2, "tags": []}]
    assert json.loads(_posted(server)[-1].content) == {"code": query, "kind": "sql"}
    result = session.statement(0)
    assert result.kind == "sql" and result.columns == [("id", "long"), ("tags", "array")]


def test_sql_without_a_table_is_unexpected(session: Session) -> None:
    with pytest.raises(ClientError, match="returned no table"):
        session.sql("select 1")  # the fake answers text/plain


def test_error_output_raises_or_is_returned(session: Session, server: FakeServer) -> None:
    server.outputs["1/0"] = error_output("ZeroDivisionError", "division by zero")
    with pytest.raises(StatementError) as info:
        session.run("1/0")
    assert (info.value.ename, info.value.evalue) == ("ZeroDivisionError", "division by zero")
    assert info.value.traceback[-1] == "ZeroDivisionError: division by zero\n"
    assert str(info.value) == "ZeroDivisionError: division by zero"
    result = session.run("1/0", raise_on_error=False)
    assert result.failed and result.text is None and result.ename == "ZeroDivisionError"


def test_a_statement_cancelled_by_its_session_ending(session: Session, server: FakeServer) -> None:
    server.statement_script = ["running"] * 5

    def session_dies(statement: StatementResult) -> None:
        server._move(session.id, "dead")  # the server ends an ended session's statements cancelled

    with pytest.raises(StatementCancelled, match="statement 0 was cancelled"):
        session.run("while True: pass", on_update=session_dies)
    assert session.statement(0).state == "cancelled"


def test_run_timeout_cancels_the_statement(session: Session, server: FakeServer) -> None:
    server.statement_script = ["running"] * 5
    with pytest.raises(WaitTimeout, match="statement 0 of session 1 is still running after 0s; cancelled it"):
        session.run("slow()", timeout=0)
    assert _paths(server)[-1] == "POST /api/v1/sessions/1/statements/0/cancel"
    assert session.statement(0).state == "cancelled"


def test_cancel_list_and_complete(session: Session, server: FakeServer) -> None:
    session.submit("a")
    session.submit("b")
    assert session.cancel(1).state == "cancelled"
    assert [(s.id, s.state) for s in session.statements().items] == [(0, "waiting"), (1, "cancelled")]
    assert session.complete("spark.ra") == ["spark", "spark.range("]
    assert server.completions[-1] == {"code": "spark.ra", "cursor": 8}
    session.complete("select * from t", 5, kind="sql")
    assert server.completions[-1] == {"code": "select * from t", "cursor": 5, "kind": "sql"}


def test_submit_to_an_ended_session_is_a_409(session: Session) -> None:
    session.stop()
    with pytest.raises(ClientError, match="start a new session"):
        session.run("1")


# ---- context manager and Spark Connect -------------------------------------------------------------------


def test_context_manager_stops_the_session(sp: Client, server: FakeServer) -> None:
    with sp.create_session(poll=0) as session:
        assert session.run("1").text == "ran: 1"
    assert _paths(server)[-1] == "DELETE /api/v1/sessions/1"
    with sp.create_session(poll=0, keep=True) as kept:
        pass
    assert "DELETE /api/v1/sessions/2" not in _paths(server)
    assert kept.last.state == "idle"


def test_context_manager_stops_on_error_without_hiding_it(sp: Client, server: FakeServer) -> None:
    with pytest.raises(RuntimeError, match="mine"), sp.create_session(poll=0):
        server.failures.append(error(500, "the stop failed too"))  # served to the DELETE on the way out
        raise RuntimeError("mine")
    assert _paths(server)[-1] == "DELETE /api/v1/sessions/1"


def test_spark_builds_a_spark_connect_session(sp: Client, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    remotes: list[str] = []

    class Builder:
        def remote(self, url: str) -> Builder:
            remotes.append(url)
            return self

        def getOrCreate(self) -> str:  # noqa: N802 - pyspark's name
            return "spark-session"

    fake = types.ModuleType("pyspark.sql")
    fake.SparkSession = types.SimpleNamespace(builder=Builder())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyspark.sql", fake)
    session = sp.create_session(poll=0)
    assert session.spark() == "spark-session"  # type: ignore[comparison-overlap]
    assert remotes == [CONNECT_URL]


def test_spark_without_a_connect_url_is_a_clear_error(sp: Client, server: FakeServer) -> None:
    session = sp.create_session(wait=False)
    with pytest.raises(ClientError, match=r"session 1 has no Spark Connect URL \(it is starting\)"):
        session.spark()
