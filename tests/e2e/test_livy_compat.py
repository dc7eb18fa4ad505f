"""The real clients, unchanged, against a real `sparkplane up` with real Spark (livy-contract.md §2, §8).

One `up` for the module, with a warm pool of one agent: sparkmagic's Livy client library, the `livy` PyPI
client and a pyspark 4.1 Spark Connect client each use a session on it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.roles import RoleProcess, free_port, stop_local_runs, wait_until

pytestmark = pytest.mark.e2e
PASSWORD = "compat-admin-password"


class Up:
    def __init__(self, url: str, data_dir: Path, process: RoleProcess) -> None:
        self.url, self.data_dir, self.process = url, data_dir, process
        self.http = httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=60)

    def wait_state(self, session_id: int, states: set[str], timeout: float = 120) -> str:
        last: list[str] = []

        def reached() -> bool:
            response = self.http.get(f"/livy/sessions/{session_id}/state")
            last[:] = [f"{response.status_code} {response.text}"]
            return response.status_code == 200 and response.json()["state"] in states

        def describe() -> str:
            return f"session {session_id} in {states} (last: {last})\n{self.process.log_tail()}"

        wait_until(reached, timeout, message=describe)
        return str(self.http.get(f"/livy/sessions/{session_id}/state").json()["state"])


@pytest.fixture(autouse=True)
def _logging_left_as_it_was() -> Iterator[None]:
    """sparkmagic's import runs logging.config.dictConfig, which disables every logger that exists by then;
    the rest of the suite's loggers (and caplog) must work after it, so their state is put back."""
    known = logging.Logger.manager.loggerDict.values()
    loggers = [logging.getLogger(), *(lg for lg in known if isinstance(lg, logging.Logger))]
    saved = [(lg, lg.disabled, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for lg, disabled, level, handlers, propagate in saved:
        lg.disabled, lg.propagate = disabled, propagate
        lg.setLevel(level)
        lg.handlers[:] = handlers


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data_dir = tmp_path_factory.mktemp("compat")
    port = free_port()
    env = {
        **os.environ,
        "SPARKPLANE_ADMIN_PASSWORD": PASSWORD,
        "SPARKPLANE_SPARK_MASTER": "local[1]",
        "SPARKPLANE_POOL_SIZE": "1",
        "SPARKPLANE_RECONCILE_INTERVAL_SECONDS": "0.5",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = [sys.executable, "-m", "sparkplane", "up", "--data-dir", str(data_dir), "--port", str(port)]
    process = RoleProcess("up", argv, env, data_dir / "test-logs").start()
    try:
        wait_until(lambda: "sparkplane is up" in process.log(), 90, message=lambda: process.log_tail())
        served = Up(f"http://127.0.0.1:{port}", data_dir, process)
        yield served
        served.http.close()
    finally:
        process.stop()
        stop_local_runs(data_dir / "runs")
        stop_local_runs(data_dir / "sessions")


class _Display:
    """What sparkmagic's LivySession writes to a notebook, kept for the assertions."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.lines.append(f"{name}: {args}")


# sparkmagic's Basic authenticator builds Jupyter widgets with a width argument that traitlets deprecates;
# that is the client package's own warning, not ours, and the client works despite it.
@pytest.mark.filterwarnings("ignore:Passing unrecognized arguments to super:DeprecationWarning")
def test_sparkmagic_creates_a_session_runs_code_and_reads_results(up: Up) -> None:
    import sparkmagic.utils.configuration as conf
    from sparkmagic.auth.basic import Basic
    from sparkmagic.livyclientlib.command import Command
    from sparkmagic.livyclientlib.endpoint import Endpoint
    from sparkmagic.livyclientlib.livyreliablehttpclient import LivyReliableHttpClient
    from sparkmagic.livyclientlib.livysession import LivySession
    from sparkmagic.livyclientlib.sqlquery import SQLQuery

    conf.override(conf.livy_session_startup_timeout_seconds.__name__, 180)
    auth = Basic()
    auth.username, auth.password = "admin", PASSWORD
    endpoint = Endpoint(f"{up.url}/livy", auth)
    http = LivyReliableHttpClient.from_endpoint(endpoint)
    session = LivySession(http, {"kind": "pyspark"}, _Display(), heartbeat_timeout=60)
    session.start()  # POST /sessions (201), waits for idle, then runs `spark` to find the entry point
    session_id = session.id  # sparkmagic forgets it (-1) once the session is deleted
    try:
        success, out, mimetype = Command("1 + 1").execute(session)
        assert success and out == "2" and mimetype == "text/plain"
        success, out, _ = Command("spark.range(7).selectExpr('sum(id) AS s').first()['s']").execute(session)
        assert success and out == "21"
        success, out, _ = Command("1/0").execute(session)
        assert not success and "ZeroDivisionError" in out
        Command("spark.range(3).toDF('n').createOrReplaceTempView('numbers')").execute(session)
        rows = SQLQuery("SELECT n * 10 AS tens FROM numbers ORDER BY n").execute(session)  # %%sql's path
        assert list(rows["tens"]) == [0, 10, 20]
    finally:
        session.delete()
        http._http_client._session.close()  # sparkmagic never closes its requests session itself
    assert up.wait_state(session_id, {"dead"}) == "dead"


def test_the_livy_client_runs_code_and_downloads_a_sql_result(up: Up) -> None:
    from livy import LivySession, SessionKind

    # pylivy downloads SQL results from sql-kind sessions only (download_sql checks the session's kind).
    with LivySession.create(
        f"{up.url}/livy", auth=("admin", PASSWORD), kind=SessionKind.SQL, name="pylivy", echo=False
    ) as session:
        session.run("CREATE OR REPLACE TEMPORARY VIEW squares AS SELECT id, id * id AS square FROM range(5)")
        frame = session.download_sql("SELECT * FROM squares WHERE id >= 3 ORDER BY id")
        assert frame.to_dict("list") == {"id": [3, 4], "square": [9, 16]}
        output = session.run("SELECT 'hello from pylivy' AS greeting")
        assert output.json is not None and output.json["data"] == [["hello from pylivy"]]
        session_id = session.session_id
    assert up.wait_state(session_id, {"dead"}) == "dead"


@pytest.fixture
def connect_client_env() -> Iterator[None]:
    """An in-process Spark Connect client sets SPARK_CONNECT_MODE_ENABLED for the whole test process; put the
    process back as it was, so later tests' in-process Spark is classic again."""
    saved = dict(os.environ)
    yield
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


@pytest.mark.usefixtures("connect_client_env")
# A client whose token was refused cannot release its server-side session on stop(); pyspark logs that with
# Logger.warn, which the standard library deprecates. The client's own warning, not ours.
@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")
def test_spark_connect_sees_the_sessions_tables_and_the_reverse(up: Up) -> None:
    from pyspark.sql import SparkSession

    created = up.http.post("/api/v1/sessions", json={"kind": "pyspark", "name": "connect"}).json()
    session_id = created["id"]
    up.wait_state(session_id, {"idle"})
    url = up.http.get(f"/api/v1/sessions/{session_id}").json()["connect_url"]
    assert url.startswith("sc://localhost:") and ";token=" in url

    def run(code: str) -> dict[str, Any]:
        statement = up.http.post(f"/livy/sessions/{session_id}/statements", json={"code": code}).json()
        deadline = time.monotonic() + 120
        while statement["state"] not in ("available", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.1)
            statement = up.http.get(f"/livy/sessions/{session_id}/statements/{statement['id']}").json()
        assert statement["output"]["status"] == "ok", statement
        return dict(statement["output"])

    run("spark.range(4).toDF('x').createOrReplaceGlobalTempView('from_statement')")
    remote = SparkSession.builder.remote(url).getOrCreate()
    try:
        assert remote.sql("SELECT sum(x) AS s FROM global_temp.from_statement").first()["s"] == 6
        remote.range(3).toDF("y").createOrReplaceGlobalTempView("from_connect")
        assert run("spark.sql('SELECT count(*) FROM global_temp.from_connect').first()[0]")["data"]["text/plain"] == "3"
    finally:
        remote.stop()
    wrong = url.split(";token=")[0] + ";token=not-the-token"
    intruder = SparkSession.builder.remote(wrong).getOrCreate()
    try:
        with pytest.raises(Exception, match="(?i)auth|token|unauthenticated|permission"):
            intruder.range(1).collect()
    finally:
        intruder.stop()
    up.http.delete(f"/api/v1/sessions/{session_id}")
    assert up.wait_state(session_id, {"dead"}) == "dead"
