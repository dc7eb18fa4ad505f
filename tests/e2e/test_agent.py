"""The session agent against real Spark, through LocalSessionBackend (no pool): one driver for the whole module.

A JVM start is the slow part on two cores, so every test shares one cold-started session, in file order; the
last test cancels it and checks that no process is left. Figures (cold start, 1+1 round trip) are printed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sparkplane.backends.base import Handle, Observation, StatementObservation
from sparkplane.backends.local import LocalSessionBackend
from sparkplane.backends.local import supervisor as sup
from sparkplane.domain.specs import SessionSpec
from sparkplane.domain.states import Observed, StatementState

pytestmark = pytest.mark.e2e

DEADLINE = 180.0  # a cold JVM takes ~10 s on two idle cores; a busy machine can be many times slower
GRACE = dt.timedelta(seconds=10)
KEY = "agent-e2e"
FIGURES: dict[str, float] = {}
_ids = itertools.count()


def spark_home() -> Path:
    if "SPARK_HOME" in os.environ:
        return Path(os.environ["SPARK_HOME"])
    import pyspark

    return Path(pyspark.__file__).parent


def make_backend(root: Path, *, pool_size: int) -> LocalSessionBackend:
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        pytest.fail("Spark needs Java 17: scripts/bootstrap.sh installs it")
    return LocalSessionBackend(root, spark_home=spark_home(), master="local[2]", pool_size=pool_size)


def stop_everything(backend: LocalSessionBackend) -> None:
    """Cancel every session and pooled agent, then check that nothing of them is alive."""
    backend.drain_pool()
    run_dirs = [p for p in backend.run_root.glob("*") if p.is_dir() and not p.name.endswith(".lock")]
    run_dirs += list((backend.run_root / ".pool").glob("pool-*"))
    for run_dir in run_dirs:
        backend.cancel(Handle("local", run_dir.name, {"run_dir": str(run_dir)}), grace=GRACE)
    for run_dir in run_dirs:
        assert_nothing_left(run_dir)
    assert backend.active_external_ids() == set()
    backend.close()


def assert_nothing_left(run_dir: Path) -> None:
    pgid = sup.read_int(run_dir / sup.DRIVER_PGID)
    if pgid is not None:
        assert sup.wait_until(lambda: not sup.group_alive(pgid), 30.0), f"process group {pgid} is still alive"
    lock = run_dir / sup.SUPERVISOR_LOCK
    assert sup.wait_until(lambda: not sup.lock_is_held(lock), 30.0), f"the supervisor of {run_dir} is alive"


def wait_for(what: str, check: Callable[[], Any], timeout: float = DEADLINE, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(interval)


def wait_observed(backend: LocalSessionBackend, handle: Handle, *states: Observed) -> Observation:
    def seen() -> Observation | None:
        obs = backend.observe(handle)
        return obs if obs is not None and obs.state in states else None

    try:
        return wait_for(f"session {handle.external_id} in {states}", seen)  # type: ignore[no-any-return]
    except pytest.fail.Exception:
        print(backend.fetch_logs(handle, tail_lines=40))
        raise


def submit(backend: LocalSessionBackend, handle: Handle, code: str, kind: str = "pyspark") -> int:
    statement_id = next(_ids)
    backend.submit_statement(handle, statement_id, code, kind)
    return statement_id


def wait_statement(
    backend: LocalSessionBackend, handle: Handle, statement_id: int, *states: StatementState
) -> StatementObservation:
    wanted = states or (StatementState.AVAILABLE, StatementState.CANCELLED)

    def seen() -> StatementObservation | None:
        obs = backend.observe_statement(handle, statement_id)
        return obs if obs is not None and obs.state in wanted else None

    return wait_for(f"statement {statement_id} in {wanted}", seen, interval=0.02)  # type: ignore[no-any-return]


def run(backend: LocalSessionBackend, handle: Handle, code: str, kind: str = "pyspark") -> dict[str, Any]:
    observed = wait_statement(backend, handle, submit(backend, handle, code, kind))
    assert observed.state is StatementState.AVAILABLE and observed.output is not None
    return dict(observed.output)


def text(backend: LocalSessionBackend, handle: Handle, code: str) -> str:
    output = run(backend, handle, code)
    assert output["status"] == "ok", output
    return str(output["data"]["text/plain"])


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSessionBackend]:
    made = make_backend(tmp_path_factory.mktemp("agent") / "sessions", pool_size=0)
    yield made
    stop_everything(made)


@pytest.fixture(scope="module")
def session(backend: LocalSessionBackend) -> Handle:
    started = time.monotonic()
    handle = backend.start_session(SessionSpec(kind="pyspark"), idempotency_key=KEY)
    wait_for("agent.json", lambda: (Path(handle.extra["run_dir"]) / "agent.json").exists(), interval=0.05)
    FIGURES["cold start to agent.json (s)"] = time.monotonic() - started
    wait_observed(backend, handle, Observed.IDLE)
    return handle


def test_a_cold_session_is_idle_with_its_connect_url(
    backend: LocalSessionBackend, session: Handle, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print(f"\n[figure] agent cold start to agent.json: {FIGURES['cold start to agent.json (s)']:.2f} s")
    obs = backend.observe(session)
    assert obs is not None and (obs.state, obs.native_state) == (Observed.IDLE, "idle")
    assert obs.spark_app_id is not None and obs.spark_app_id.startswith("local-")
    assert obs.ui_url is not None and obs.ui_url.startswith("http://")
    assert obs.connect_url is not None and re.fullmatch(r"sc://localhost:\d+/;token=[\w-]{40,}", obs.connect_url)
    assert backend.active_external_ids() == {KEY}
    assert backend.start_session(SessionSpec(kind="pyspark"), idempotency_key=KEY) == session
    launches = (Path(session.extra["run_dir"]) / sup.SUPERVISOR_LOG).read_text().count(sup.LAUNCH_MARKER)
    assert launches == 1


def test_one_plus_one(backend: LocalSessionBackend, session: Handle, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(backend, session, "1+1") == {"status": "ok", "execution_count": 0, "data": {"text/plain": "2"}}
    rounds = []
    for _ in range(5):
        started = time.monotonic()
        statement_id = next(_ids)
        backend.submit_statement(session, statement_id, "1+1", "pyspark")
        while (obs := backend.observe_statement(session, statement_id)) is None or obs.state != "available":
            time.sleep(0.001)  # a tight loop of GETs would hold the agent's GIL against the statement
        rounds.append(time.monotonic() - started)
    with capsys.disabled():
        print(f"\n[figure] 1+1 round trip over the agent's HTTP: median {statistics.median(rounds) * 1000:.1f} ms")


def test_the_drivers_temporary_files_are_in_its_run_folder(backend: LocalSessionBackend, session: Handle) -> None:
    # A driver killed -9 runs no shutdown hook: what it keeps in /tmp stays there, in its run folder it does not.
    scratch = (Path(session.extra["run_dir"]) / sup.SCRATCH_DIR).resolve()
    jvm_tmp = text(backend, session, "sc._jvm.java.lang.System.getProperty('java.io.tmpdir')")
    assert Path(jvm_tmp.strip("'")).resolve() == scratch
    assert Path(text(backend, session, "import tempfile; tempfile.gettempdir()").strip("'")).resolve() == scratch
    assert any(entry.name.startswith("blockmgr-") for entry in scratch.iterdir())  # spark.local.dir


def test_spark_count(backend: LocalSessionBackend, session: Handle) -> None:
    assert text(backend, session, "spark.range(5).count()") == "5"
    assert text(backend, session, "type(sqlContext).__name__, sc.master") == "('SQLContext', 'local[2]')"


def test_sql_statement_gives_schema_and_rows(backend: LocalSessionBackend, session: Handle) -> None:
    text(
        backend, session, "spark.createDataFrame([(1, 'a'), (2, None)], 'n int, s string').createOrReplaceTempView('t')"
    )
    output = run(backend, session, "SELECT n, s, n / 2 AS half FROM t ORDER BY n", kind="sql")
    assert output["status"] == "ok"
    result = output["data"]["application/json"]
    assert result["schema"]["type"] == "struct"
    assert [(f["name"], f["type"]) for f in result["schema"]["fields"]] == [
        ("n", "integer"),
        ("s", "string"),
        ("half", "double"),
    ]
    assert result["data"] == [[1, "a", 0.5], [2, None, 1.0]]
    error = run(backend, session, "SELECT * FROM missing_table", kind="sql")
    assert (error["status"], error["ename"]) == ("error", "AnalysisException")


def test_errors_have_livys_shape(backend: LocalSessionBackend, session: Handle) -> None:
    output = run(backend, session, "undefined_name")
    assert {k: v for k, v in output.items() if k != "execution_count"} == {
        "status": "error",
        "ename": "NameError",
        "evalue": "name 'undefined_name' is not defined",
        "traceback": ["Traceback (most recent call last):\n", "NameError: name 'undefined_name' is not defined\n"],
    }


def test_python_and_jvm_output_are_captured(backend: LocalSessionBackend, session: Handle) -> None:
    code = "print('from python')\nspark.range(2).show()\nsc._jvm.System.out.println('from the jvm')"
    assert text(backend, session, code) == ("from python\n+---+\n| id|\n+---+\n|  0|\n|  1|\n+---+\n\nfrom the jvm")


def test_a_statement_submitted_twice_runs_once(backend: LocalSessionBackend, session: Handle) -> None:
    text(backend, session, "runs = 0")
    statement_id = next(_ids)
    backend.submit_statement(session, statement_id, "runs += 1", "pyspark")
    backend.submit_statement(session, statement_id, "runs += 1", "pyspark")
    wait_statement(backend, session, statement_id)
    backend.submit_statement(session, statement_id, "runs += 1", "pyspark")
    assert text(backend, session, "runs") == "1"


def test_an_infinite_loop_is_cancelled(backend: LocalSessionBackend, session: Handle) -> None:
    statement_id = submit(backend, session, "while True: pass")
    wait_statement(backend, session, statement_id, StatementState.RUNNING)
    assert wait_observed(backend, session, Observed.BUSY).native_state == "busy"
    backend.cancel_statement(session, statement_id)
    cancelled = wait_statement(backend, session, statement_id, StatementState.CANCELLED)
    assert cancelled.output is None and cancelled.completed_ms > 0
    assert text(backend, session, "'alive'") == "'alive'"
    wait_observed(backend, session, Observed.IDLE)


def test_a_spark_job_shows_progress_and_is_cancelled(backend: LocalSessionBackend, session: Handle) -> None:
    code = "sc.parallelize(range(4), 4).map(lambda x: __import__('time').sleep(0.5 if x == 0 else 300)).count()"
    statement_id = submit(backend, session, code)
    running = wait_for(
        "a task to finish",
        lambda: (obs := backend.observe_statement(session, statement_id)) is not None and obs.progress > 0 and obs,
    )
    assert running.state is StatementState.RUNNING and 0 < running.progress < 1
    backend.cancel_statement(session, statement_id)
    wait_statement(backend, session, statement_id, StatementState.CANCELLED)
    jobs = wait_for(
        "the job to be gone", lambda: text(backend, session, "sc.statusTracker().getActiveJobsIds()") == "[]"
    )
    assert jobs


JVM_CONNECT_CLIENT = textwrap.dedent(
    """
    import uuid
    from py4j.protocol import Py4JJavaError

    def connect_rows(port, token, query):
        # A real gRPC client of Spark Connect, over TCP to the agent's server: grpc-java (shaded into Spark's
        # connect jar) driven through py4j, because the Python client's grpcio is not installed.
        grpc = sc._jvm.org.sparkproject.connect.grpc
        proto = sc._jvm.org.apache.spark.connect.proto
        channel = grpc.ManagedChannelBuilder.forAddress("localhost", port).usePlaintext().build()
        try:
            metadata = grpc.Metadata()
            key = getattr(grpc, "Metadata$Key").of("authorization", grpc.Metadata.ASCII_STRING_MARSHALLER)
            metadata.put(key, "Bearer " + token)
            interceptors = sc._gateway.new_array(grpc.ClientInterceptor, 1)
            interceptors[0] = grpc.stub.MetadataUtils.newAttachHeadersInterceptor(metadata)
            stub = proto.SparkConnectServiceGrpc.newBlockingStub(channel).withInterceptors(interceptors)
            relation = proto.Relation.newBuilder().setSql(proto.SQL.newBuilder().setQuery(query)).build()
            request = (
                proto.ExecutePlanRequest.newBuilder()
                .setSessionId(str(uuid.uuid4()))
                .setUserContext(proto.UserContext.newBuilder().setUserId("e2e").build())
                .setPlan(proto.Plan.newBuilder().setRoot(relation).build())
                .build()
            )
            rows = 0
            responses = stub.executePlan(request)
            while responses.hasNext():
                response = responses.next()
                if response.hasArrowBatch():
                    rows += response.getArrowBatch().getRowCount()
            return rows
        except Py4JJavaError as exc:
            return "rejected: " + str(exc.java_exception.getStatus().getCode())
        finally:
            channel.shutdownNow()
    """
)


def _connect_parts(backend: LocalSessionBackend, session: Handle) -> tuple[int, str]:
    obs = backend.observe(session)
    assert obs is not None and obs.connect_url is not None
    match = re.fullmatch(r"sc://localhost:(\d+)/;token=(.+)", obs.connect_url)
    assert match is not None
    return int(match.group(1)), match.group(2)


def test_a_connect_client_shares_global_views_and_needs_the_token(
    backend: LocalSessionBackend, session: Handle
) -> None:
    port, token = _connect_parts(backend, session)
    text(backend, session, "spark.range(3).createOrReplaceGlobalTempView('shared_view')")
    text(backend, session, "spark.range(9).createOrReplaceTempView('private_view')")
    text(backend, session, JVM_CONNECT_CLIENT)
    assert text(backend, session, f"connect_rows({port}, {token!r}, 'SELECT * FROM global_temp.shared_view')") == "3"
    denied = text(backend, session, f"connect_rows({port}, 'wrong-token', 'SELECT * FROM global_temp.shared_view')")
    assert denied == "'rejected: UNAUTHENTICATED'"
    private = text(backend, session, f"connect_rows({port}, {token!r}, 'SELECT * FROM private_view')")
    assert private.startswith("'rejected")  # session temp views stay private (spark-notes gotcha 7)


def test_the_python_connect_client(backend: LocalSessionBackend, session: Handle) -> None:
    pytest.importorskip("grpc", reason="pyspark's Connect client needs grpcio, which is not installed")
    obs = backend.observe(session)
    assert obs is not None and obs.connect_url is not None
    client = textwrap.dedent(
        """
        import sys
        from pyspark.sql import SparkSession
        spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
        print(spark.sql("SELECT count(*) FROM global_temp.shared_view").collect()[0][0])
        """
    )
    ok = subprocess.run([sys.executable, "-c", client, obs.connect_url], capture_output=True, text=True, timeout=120)
    assert ok.stdout.strip() == "3", ok.stderr
    wrong = obs.connect_url.rsplit("=", 1)[0] + "=wrong"
    denied = subprocess.run([sys.executable, "-c", client, wrong], capture_output=True, text=True, timeout=120)
    assert denied.returncode != 0


def test_connect_listens_on_loopback_only(backend: LocalSessionBackend, session: Handle) -> None:
    port, _ = _connect_parts(backend, session)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    obs = backend.observe(session)
    host = re.match(r"http://([^:/]+)", obs.ui_url or "") if obs else None
    if host is None or host.group(1).startswith("127."):
        pytest.skip("this machine has no address besides loopback to try")
    with socket.socket() as probe:
        probe.settimeout(5)
        assert probe.connect_ex((host.group(1), port)) != 0


def test_completion(backend: LocalSessionBackend, session: Handle) -> None:
    assert "spark.range(" in backend.completion(session, "df = spark.ra", "pyspark", 13)
    assert "shared_view" not in backend.completion(session, "SELECT * FROM sh", "sql", 16)  # global views are elsewhere
    assert "private_view" in backend.completion(session, "SELECT * FROM pri", "sql", 17)


def test_logs(backend: LocalSessionBackend, session: Handle) -> None:
    log = backend.fetch_logs(session) or ""
    assert "ready in" in log and "from the jvm" in log  # fd 1 still reaches the driver log
    token = (Path(session.extra["run_dir"]) / "agent.token").read_text()
    assert token not in log


def test_cancel_leaves_no_process(backend: LocalSessionBackend, session: Handle) -> None:
    submit(backend, session, "import time\ntime.sleep(600)")
    backend.cancel(session, grace=GRACE)
    obs = backend.observe(session)
    assert obs is not None and (obs.state, obs.native_state) == (Observed.CANCELLED, "cancelled")
    assert_nothing_left(Path(session.extra["run_dir"]))
    assert backend.active_external_ids() == set()
    backend.cancel(session, grace=GRACE)  # idempotent
