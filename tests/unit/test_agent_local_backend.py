"""LocalSessionBackend without processes: its state table, the agent command, run folders made by hand, HTTP to
fake agents (httpx.MockTransport). Supervisors are impersonated by holding supervisor.lock, the way a live one
holds it. The pool's own tests (test_agent_pool.py) share these helpers.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sparkplane.backends.base import Handle, PermanentBackendError, SessionBackend, TransientBackendError
from sparkplane.backends.local import LocalSessionBackend
from sparkplane.backends.local import supervisor as sup
from sparkplane.backends.local.agent_client import AgentClient
from sparkplane.backends.local.agent_command import agent_argv, session_confs, write_secrets
from sparkplane.backends.local.pool import CLAIM_FILE, POOL_DIR
from sparkplane.backends.local.session import _STATE_MAP, map_state
from sparkplane.domain.specs import Resources, SessionSpec
from sparkplane.domain.states import Observed, StatementState

DOCUMENTED = {
    "starting": Observed.STARTING,
    "idle": Observed.IDLE,
    "busy": Observed.BUSY,
    "stopping": Observed.UNKNOWN,
    "unresponsive": Observed.UNKNOWN,
    "succeeded": Observed.SUCCEEDED,
    "failed": Observed.FAILED,
    "cancelled": Observed.CANCELLED,
    "lost": Observed.FAILED,
}


@pytest.mark.parametrize(("native", "expected"), sorted(DOCUMENTED.items()))
def test_every_native_state_maps(native: str, expected: Observed) -> None:
    assert map_state(native) is expected


def test_the_table_holds_exactly_the_documented_states() -> None:
    assert dict(_STATE_MAP) == DOCUMENTED


def test_unknown_state_is_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert map_state("IDLE") is Observed.UNKNOWN
    assert "unknown local session state" in caplog.text


# -- the command -----------------------------------------------------------------------------------------


def test_spec_fields_become_confs_and_win_over_the_users() -> None:
    spec = SessionSpec(
        kind="pyspark",
        jars=("/a.jar", "/b.jar"),
        py_files=("/m.py",),
        files=("/f.txt",),
        archives=("/env.tgz#env",),
        conf={"spark.driver.memory": "1g", "spark.sql.shuffle.partitions": "4"},
        resources=Resources(driver_memory="2g", driver_cores=2, executor_memory="3g", num_executors=4),
        queue="q",
    )
    assert session_confs(spec) == {
        "spark.driver.memory": "2g",
        "spark.sql.shuffle.partitions": "4",
        "spark.jars": "/a.jar,/b.jar",
        "spark.submit.pyFiles": "/m.py",
        "spark.files": "/f.txt",
        "spark.archives": "/env.tgz#env",
        "spark.driver.cores": "2",
        "spark.executor.memory": "3g",
        "spark.executor.instances": "4",
        "spark.yarn.queue": "q",
    }


def test_agent_argv() -> None:
    argv = agent_argv(
        python="/py",
        run_dir=Path("/runs/s1"),
        master="local[*]",
        name="nb",
        orphan_after=60.0,
        conf={"spark.driver.memory": "2g"},
        claimed_by="s1",
        driver_cores=2,
    )
    assert argv == [
        "/py", "-m", "sparkplane.agent", "--run-dir", "/runs/s1", "--master", "local[2]", "--name", "nb",
        "--orphan-after", "60.0", "--claimed-by", "s1", "--conf", "spark.driver.memory=2g",
    ]  # fmt: skip
    pooled = agent_argv(
        python="/py", run_dir=Path("/p"), master="local[*]", name="n", orphan_after=1, conf={}, claimed_by=None
    )
    assert "--claimed-by" not in pooled


def test_secrets_are_private_and_fresh(tmp_path: Path) -> None:
    write_secrets(tmp_path)
    first = (tmp_path / "agent.token").read_text()
    for name in ("agent.token", "connect.token"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    write_secrets(tmp_path)
    assert (tmp_path / "agent.token").read_text() != first and len(first) >= 40


# -- fake agents over MockTransport ----------------------------------------------------------------------


class FakeAgents:
    """Answers for every fake agent, keyed by host; records requests."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.requests: list[tuple[str, str, str, Any]] = []
        self.refuse_claims = False
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host, path = request.url.host, request.url.path
        body = json.loads(request.content) if request.content else None
        with self.lock:
            self.requests.append((host, request.method, path, body))
        if request.headers.get("Authorization") != f"Bearer token-{host}":
            return httpx.Response(401, json={"msg": "bad token"})
        if self.state.get(host) == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if path == "/health":
            return httpx.Response(200, json={"state": self.state.get(host, "idle")})
        if path == "/claim":
            return httpx.Response(400 if self.refuse_claims else 200, json={"msg": "claim"})
        if path == "/statements" and request.method == "POST":
            if self.state.get(host) == "stopping":
                return httpx.Response(409, json={"msg": "the session is stopping"})
            return httpx.Response(201, json={"id": body["id"], "state": "waiting"})
        if path == "/statements/404":
            return httpx.Response(404, json={"msg": "Statement not found"})
        if path.startswith("/statements/"):
            output = {"status": "ok", "execution_count": 0, "data": {"text/plain": "2"}}
            return httpx.Response(
                200,
                json={"id": 1, "state": "available", "output": output, "progress": 1.0, "started": 5, "completed": 9},
            )
        if path == "/completion":
            return httpx.Response(200, json={"candidates": ["spark.range("]})
        return httpx.Response(200, json={"msg": "ok"})


@pytest.fixture
def agents() -> FakeAgents:
    return FakeAgents()


@pytest.fixture
def locks() -> Iterator[list[int]]:
    held: list[int] = []
    yield held
    for fd in held:
        os.close(fd)


def fake_agent(run_dir: Path, locks: list[int], *, ready: bool = True, alive: bool = True) -> Path:
    """A run folder as a live supervisor and a ready agent leave it."""
    (run_dir / sup.EVENTS_DIR).mkdir(parents=True, exist_ok=True)
    host = run_dir.name
    (run_dir / "agent.token").write_text(f"token-{host}")
    (run_dir / "connect.token").write_text("ctok")
    (run_dir / sup.SUPERVISOR_PID).write_text("1")
    if ready:
        record = {"url": f"http://{host}", "pid": 1, "connect_port": 15002, "spark_app_id": "local-7", "ui_url": "u"}
        (run_dir / "agent.json").write_text(json.dumps(record))
    if alive:
        if not sup.lock_is_held(run_dir / sup.SUPERVISOR_LOCK):
            fd = os.open(run_dir / sup.SUPERVISOR_LOCK, os.O_RDWR | os.O_CREAT)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locks.append(fd)
    else:
        (run_dir / sup.EXIT_FILE).write_text(json.dumps({"exit_code": 0, "cancelled": False}))
    return run_dir


@pytest.fixture
def backend(tmp_path: Path, agents: FakeAgents) -> Iterator[LocalSessionBackend]:
    made = LocalSessionBackend(
        tmp_path / "runs", spark_home=tmp_path / "no-spark", transport=httpx.MockTransport(agents)
    )
    yield made
    made.close()


def handle(backend: LocalSessionBackend, key: str) -> Handle:
    return Handle("local", key, {"run_dir": str(backend.run_root / key)})


def test_conforms_to_the_session_protocol(backend: LocalSessionBackend) -> None:
    conforming: SessionBackend = backend
    assert conforming.name == "local"


def test_missing_session_is_none(backend: LocalSessionBackend) -> None:
    assert backend.observe(Handle("local", "never")) is None
    assert backend.observe(Handle("local", "../escape")) is None
    assert backend.active_external_ids() == set()
    with pytest.raises(PermanentBackendError):
        backend.submit_statement(Handle("local", "never"), 0, "1", "pyspark")


def test_starting_then_idle_with_connect_url(
    backend: LocalSessionBackend, locks: list[int], agents: FakeAgents
) -> None:
    run_dir = fake_agent(backend.run_root / "s1", locks, ready=False)
    obs = backend.observe(handle(backend, "s1"))
    assert obs is not None and (obs.state, obs.native_state) == (Observed.STARTING, "starting")
    with pytest.raises(TransientBackendError, match="not ready"):
        backend.submit_statement(handle(backend, "s1"), 0, "1", "pyspark")
    fake_agent(run_dir, locks)
    obs = backend.observe(handle(backend, "s1"))
    assert obs is not None and (obs.state, obs.native_state) == (Observed.IDLE, "idle")
    assert obs.connect_url == "sc://localhost:15002/;token=ctok"
    assert (obs.spark_app_id, obs.ui_url) == ("local-7", "u")
    agents.state["s1"] = "busy"
    assert backend.observe(handle(backend, "s1")).state is Observed.BUSY  # type: ignore[union-attr]
    agents.state["s1"] = "down"
    obs = backend.observe(handle(backend, "s1"))
    assert obs is not None and (obs.state, obs.native_state) == (Observed.UNKNOWN, "unresponsive")
    assert backend.active_external_ids() == {"s1"}


@pytest.mark.parametrize(
    ("exit_code", "cancelled", "requested", "native"),
    [
        (0, False, False, "succeeded"),
        (0, False, True, "cancelled"),
        (1, False, False, "failed"),
        (-15, True, False, "cancelled"),
    ],
)
def test_ended_agents(
    backend: LocalSessionBackend, locks: list[int], exit_code: int, cancelled: bool, requested: bool, native: str
) -> None:
    run_dir = fake_agent(backend.run_root / "s1", locks, alive=False)
    (run_dir / sup.EXIT_FILE).write_text(json.dumps({"exit_code": exit_code, "cancelled": cancelled}))
    (run_dir / sup.DRIVER_LOG).write_text("Traceback (most recent call last):\nRuntimeError: boom\nbye\n")
    if requested:
        (run_dir / sup.CANCEL_REQUESTED).write_text("5")
    obs = backend.observe(handle(backend, "s1"))
    assert obs is not None and obs.native_state == native and obs.exit_code == exit_code
    assert obs.connect_url is None
    if native == "failed":
        assert obs.message == "the session's agent exited with code 1: RuntimeError: boom"
    assert backend.active_external_ids() == set()
    backend.cancel(handle(backend, "s1"), grace=dt.timedelta(seconds=1))  # already over: quiet


def test_lost_supervisor(backend: LocalSessionBackend, locks: list[int]) -> None:
    run_dir = fake_agent(backend.run_root / "s1", locks, alive=False)
    (run_dir / sup.EXIT_FILE).unlink()
    obs = backend.observe(handle(backend, "s1"))
    assert obs is not None and (obs.state, obs.native_state) == (Observed.FAILED, "lost")


def test_statements_over_http(backend: LocalSessionBackend, locks: list[int], agents: FakeAgents) -> None:
    fake_agent(backend.run_root / "s1", locks)
    session = handle(backend, "s1")
    submitted = backend.submit_statement(session, 1, "1+1", "pyspark", wait=0.1)
    assert agents.requests[-1] == (
        "s1",
        "POST",
        "/statements",
        {"id": 1, "code": "1+1", "kind": "pyspark", "wait": 0.1},
    )
    assert submitted is not None and submitted.state == StatementState.WAITING  # what the agent answered
    observed = backend.observe_statement(session, 1)
    assert observed is not None
    assert (observed.state, observed.progress, observed.started_ms, observed.completed_ms) == (
        StatementState.AVAILABLE,
        1.0,
        5,
        9,
    )
    assert observed.output == {"status": "ok", "execution_count": 0, "data": {"text/plain": "2"}}
    assert backend.observe_statement(session, 404) is None
    backend.cancel_statement(session, 1)
    assert agents.requests[-1][1:3] == ("POST", "/statements/1/cancel")
    assert backend.completion(session, "spark.ra", "pyspark", 8) == ["spark.range("]
    agents.state["s1"] = "stopping"
    with pytest.raises(PermanentBackendError, match="stopping"):
        backend.submit_statement(session, 2, "1", "pyspark")
    agents.state["s1"] = "down"
    with pytest.raises(TransientBackendError):
        backend.observe_statement(session, 1)


def test_a_wrong_token_is_permanent(tmp_path: Path, locks: list[int], agents: FakeAgents) -> None:
    run_dir = fake_agent(tmp_path / "s1", locks)
    (run_dir / "agent.token").write_text("stale")
    client = AgentClient(httpx.MockTransport(agents))
    with pytest.raises(PermanentBackendError, match="token"):
        client.call(run_dir, "GET", "/health")
    client.close()


def test_start_session_returns_the_existing_run_without_launching(
    backend: LocalSessionBackend, locks: list[int]
) -> None:
    fake_agent(backend.run_root / "s1", locks)
    got = backend.start_session(SessionSpec(kind="pyspark"), idempotency_key="s1")
    assert got == Handle("local", "s1", {"run_dir": str(backend.run_root / "s1"), "pooled": "false"})
    with pytest.raises(PermanentBackendError):
        backend.start_session(SessionSpec(kind="pyspark"), idempotency_key="../x")


def test_unclaimed_pool_agents_belong_to_no_session(backend: LocalSessionBackend, locks: list[int]) -> None:
    pool_root = backend.run_root / ".pool"
    fake_agent(pool_root / "pool-free", locks)
    orphan = fake_agent(pool_root / "pool-orphan", locks)
    (orphan / CLAIM_FILE).write_text("s9")
    os.utime(orphan / CLAIM_FILE, (0, 0))  # claimed long ago, never linked: its claimer died
    taken = fake_agent(pool_root / "pool-taken", locks)
    (taken / CLAIM_FILE).write_text("s1")
    os.symlink(os.path.relpath(taken, backend.run_root), backend.run_root / "s1")
    assert backend.active_external_ids() == {"s1", "pool-orphan"}
    assert backend.pool_status().ready == 1
    obs = backend.observe(Handle("local", "s1", {"run_dir": str(backend.run_root / "s1")}))
    assert obs is not None and obs.state is Observed.IDLE
    assert backend.observe(Handle("local", "pool-orphan")) is not None  # cleanup can name it without extra


def test_the_pool_waits_while_a_cold_session_starts(tmp_path: Path, locks: list[int], agents: FakeAgents) -> None:
    """A refill's JVM would compete with the cold start someone is waiting for; it starts once that is ready."""
    backend = LocalSessionBackend(
        tmp_path / "runs", spark_home=tmp_path / "no-spark", pool_size=1, transport=httpx.MockTransport(agents)
    )
    launched: list[Path] = []
    backend._pool._launch = launched.append
    (backend.run_root / POOL_DIR).mkdir(parents=True)
    cold = fake_agent(backend.run_root / "s1", locks, ready=False)
    backend.refill_pool()
    assert launched == []
    fake_agent(cold, locks)  # its driver is up now
    backend.refill_pool()
    assert len(launched) == 1 and launched[0].parent == backend.run_root / POOL_DIR
    backend.close()
