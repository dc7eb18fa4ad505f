"""Fault tests on the production topology: PostgreSQL, RabbitMQ, and every role as its own process.

DESIGN.md, "How work flows, and why nothing is lost": a worker killed between the row and spark-submit, and a
control plane killed while a batch runs, must each end with the batch finished, its log readable, and
exactly one Spark application launched for it. These are the real-Spark cases of the fault suite; its
matrix (every role at every phase, with a stand-in spark-submit) and the broker stopped and restarted
(on a private RabbitMQ node, not the machine's shared one) are in tests/faults/.

Each module gets its own database and RabbitMQ vhost, so it shares nothing with other test runs on the
machine; each test starts its roles afresh and stops them (and any Spark run left) when it ends.
Two Spark applications in all (local[1]): the machine has two cores.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa

from sparkplane.db.models import OutboxEntry
from sparkplane.services import users
from sparkplane.services.context import Context, build_context
from sparkplane.services.encryption import new_key
from sparkplane.settings import load_settings

from .roles import RoleProcess, Roles, free_port, own_database, stop_local_runs, wait_ready, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUEUE = "sparkplane"
DEADLINE = 120.0  # seconds any one batch may take to reach the state a test waits for
TERMINAL = frozenset({"success", "dead", "killed"})
PASSWORD = "e2e-admin-password"
SPARK_STARTED = "Running Spark version"


def _require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the suite with scripts/test, which starts PostgreSQL and RabbitMQ")
    return value


# -- services: a database and a vhost of our own --------------------------------------------------------


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with own_database(_require_env("SPARKPLANE_TEST_PG_ADMIN_URL"), "sparkplane_e2e") as url:
        yield url.render_as_string(hide_password=False)


def _rabbitmqctl(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout, check=False)


def _ensure_rabbit_running() -> None:
    """Start RabbitMQ's app if a test (this one or an interrupted one) left it stopped, and wait for it."""
    _rabbitmqctl("start_app")
    result = _rabbitmqctl("await_startup", "--timeout", "120", timeout=150)
    assert result.returncode == 0, f"RabbitMQ did not come back: {result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A vhost of our own on the machine's RabbitMQ (the shared test vhost's queue is empty to begin with)."""
    base = urlsplit(_require_env("SPARKPLANE_TEST_AMQP_URL"))
    _ensure_rabbit_running()
    vhost = f"sparkplane_e2e_{uuid.uuid4().hex[:10]}"
    user = base.username or "guest"
    created = _rabbitmqctl("add_vhost", vhost).returncode == 0
    if created:
        created = _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*").returncode == 0
    url = urlunsplit(base._replace(path=f"/{vhost}")) if created else base.geturl()
    _purge(url)
    try:
        yield url
    finally:
        _ensure_rabbit_running()
        if created:
            _rabbitmqctl("delete_vhost", vhost)


def _purge(url: str) -> None:
    from amqp.exceptions import NotFound
    from kombu import Connection

    with Connection(url, connect_timeout=5) as conn, contextlib.suppress(NotFound):
        conn.default_channel.queue_purge(QUEUE)


# -- the control plane ------------------------------------------------------------------------------------


@dataclass
class ControlPlane:
    """The roles of one test, the API client, and a context of our own to read rows with."""

    data_dir: Path
    roles: Roles
    ctx: Context
    url: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, auth=("admin", PASSWORD), timeout=30.0)

    # roles
    def start_api(self) -> RoleProcess:
        return self.roles.start("api")

    def start_worker(self, *, faults: str | None = None) -> RoleProcess:
        return self.roles.start("worker", env={"SPARKPLANE_FAULTS": faults}, args=["--concurrency", "2"])

    def start_watcher(self) -> RoleProcess:
        return self.roles.start("watch-batch")

    def wait_ready(self, api: RoleProcess) -> None:
        wait_ready(self.url, process=api, timeout=60.0)

    # the REST API
    def upload(self, path: Path) -> str:
        with open(path, "rb") as file:
            response = self.http.post("/api/v1/files", files={"file": (path.name, file, "text/x-python")})
        assert response.status_code == 201, response.text
        return str(response.json()["uri"])

    def submit(self, file_uri: str, *args: str) -> int:
        response = self.http.post("/livy/batches", json={"file": file_uri, "args": list(args)})
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def state(self, batch_id: int) -> str:
        response = self.http.get(f"/livy/batches/{batch_id}/state")
        assert response.status_code == 200, response.text
        return str(response.json()["state"])

    def log(self, batch_id: int) -> list[str]:
        response = self.http.get(f"/livy/batches/{batch_id}/log", params={"size": -1})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["log"]), body
        return list(body["log"])

    def wait_state(
        self, batch_id: int, states: set[str], *, keep_alive: tuple[RoleProcess, ...] = (), timeout: float = DEADLINE
    ) -> str:
        """Poll the batch's state until it is in `states`; fails at once if one of `keep_alive` exits."""
        seen: list[str] = []

        def reached() -> bool:
            for process in keep_alive:
                if not process.alive:
                    raise AssertionError(
                        f"{process.describe()} exited while batch {batch_id} was "
                        f"{seen[-1] if seen else '?'}:\n{self.roles.diagnostics()}"
                    )
            try:
                current = self.state(batch_id)
            except httpx.HTTPError:
                return False  # the API may be restarting
            if not seen or seen[-1] != current:
                seen.append(current)
            return current in states

        wait_until(
            reached,
            timeout,
            interval=0.5,
            message=lambda: f"batch {batch_id} to be {sorted(states)} (states seen: {seen})\n{self.diagnostics()}",
        )
        return seen[-1]

    def wait_final(self, batch_id: int, *, keep_alive: tuple[RoleProcess, ...] = ()) -> str:
        return self.wait_state(batch_id, set(TERMINAL), keep_alive=keep_alive)

    # what happened underneath
    def batch_uid(self, batch_id: int) -> str:
        with self.ctx.db.uow() as uow:
            batch = uow.batches.get(batch_id)
            assert batch is not None, f"batch {batch_id} has no row"
            return batch.uid

    def run_dirs(self) -> set[str]:
        root = self.ctx.settings.run_root()
        return {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()

    def active_runs(self) -> set[str]:
        return self.ctx.backends.get("local").active_external_ids()

    def assert_launched_once(self, batch_id: int, new_runs: set[str]) -> None:
        """The batch's own run folder is the one new run, and it started one Spark driver."""
        uid = self.batch_uid(batch_id)
        assert uid in new_runs, f"batch {batch_id} ({uid}) has no run folder among {sorted(new_runs)}"
        driver_log = self.ctx.settings.run_root() / uid / "driver.log"
        starts = driver_log.read_text(errors="replace").count(SPARK_STARTED)
        assert starts == 1, f"{driver_log} shows {starts} Spark starts ({SPARK_STARTED!r}), not 1"

    def diagnostics(self) -> str:
        with self.ctx.db.uow() as uow:
            rows = [
                f"batch {b.id} {b.uid} state={b.state} native={b.native_state} handle={b.handle} message={b.message}"
                for b in uow.batches.page(None, 0, 50, None)[0]
            ]
            entries = uow.db.scalars(sa.select(OutboxEntry).order_by(OutboxEntry.id).limit(50))
            outbox = [f"outbox {e.task}({e.entity_id}) attempts={e.attempts}" for e in entries]
        runs = sorted(self.run_dirs())
        return "\n".join([*rows, *outbox, f"run folders: {runs}", self.roles.diagnostics()])

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def plane_settings(database_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment every role of the module shares, with the schema migrated and the admin created."""
    data_dir = tmp_path_factory.mktemp("faults-production")
    env = {
        "SPARKPLANE_ENVIRONMENT": "production",
        "SPARKPLANE_ENCRYPTION_KEY": new_key(),  # production refuses to generate one
        "SPARKPLANE_DATABASE_URL": database_url,
        "SPARKPLANE_BROKER_URL": broker_url,
        "SPARKPLANE_DATA_DIR": str(data_dir),
        "SPARKPLANE_HOST": "127.0.0.1",
        "SPARKPLANE_PORT": str(free_port()),
        "SPARKPLANE_SPARK_MASTER": "local[1]",
        "SPARKPLANE_REDISPATCH_AFTER_SECONDS": "3",
        "SPARKPLANE_RECONCILE_INTERVAL_SECONDS": "0.5",
        "SPARKPLANE_CANCEL_GRACE_SECONDS": "5",
        "SPARKPLANE_LOG_FORMAT": "console",
    }
    Roles(data_dir, env).run("db", "upgrade")
    ctx = build_context(load_settings(database_url=database_url, broker_url=broker_url, data_dir=data_dir))
    try:
        users.create_user(ctx, None, "admin", PASSWORD, "admin")
    finally:
        ctx.close()
    return env


@pytest.fixture
def plane(plane_settings: dict[str, str], request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """A control plane with no role started yet; every process and Spark run is gone after the test."""
    _ensure_rabbit_running()
    data_dir = Path(plane_settings["SPARKPLANE_DATA_DIR"])
    roles = Roles(data_dir, plane_settings, log_dir=data_dir / "logs" / request.node.name)
    settings = load_settings(
        database_url=plane_settings["SPARKPLANE_DATABASE_URL"],
        broker_url=plane_settings["SPARKPLANE_BROKER_URL"],
        data_dir=data_dir,
        spark_master="local[1]",
    )
    ctx = build_context(settings)
    plane = ControlPlane(data_dir, roles, ctx, f"http://127.0.0.1:{plane_settings['SPARKPLANE_PORT']}")
    try:
        yield plane
    finally:
        try:
            plane.close()
            roles.stop_all()
            stop_local_runs(settings.run_root())
        finally:
            ctx.close()
    assert not roles.alive(), f"roles left running: {roles.alive()}"


# -- the tests ----------------------------------------------------------------------------------------------


def test_worker_killed_before_spark_submit_launches_exactly_once(plane: ControlPlane) -> None:
    api = plane.start_api()
    plane.start_watcher()
    doomed = plane.start_worker(faults="worker.before_launch")
    plane.wait_ready(api)
    before = plane.run_dirs()

    batch_id = plane.submit(plane.upload(EXAMPLES / "pi.py"), "2")

    # The worker takes the launch, reads the row, and SIGKILLs itself before it calls the backend.
    code = doomed.wait_exit(timeout=DEADLINE)
    assert code == -9, f"the faulty worker did not die at the fault point ({code}):\n{plane.diagnostics()}"
    assert (plane.data_dir / "faults" / "worker.before_launch").exists()
    assert plane.run_dirs() == before, "nothing may have been launched before the fault point"

    worker = plane.start_worker()
    state = plane.wait_final(batch_id, keep_alive=(worker,))

    assert state == "success", plane.diagnostics()
    assert any("Pi is roughly" in line for line in plane.log(batch_id)), plane.diagnostics()
    new_runs = plane.run_dirs() - before
    assert len(new_runs) == 1, f"expected exactly one Spark application, found {sorted(new_runs)}"
    plane.assert_launched_once(batch_id, new_runs)


def test_control_plane_killed_while_a_batch_runs_adopts_it_after_restart(plane: ControlPlane) -> None:
    api = plane.start_api()
    watcher = plane.start_watcher()
    worker = plane.start_worker()
    plane.wait_ready(api)
    before = plane.run_dirs()

    batch_id = plane.submit(plane.upload(EXAMPLES / "sleep.py"), "15")
    plane.wait_state(batch_id, {"running"} | TERMINAL, keep_alive=(worker,))
    assert plane.state(batch_id) == "running", plane.diagnostics()

    plane.roles.kill_all([api, watcher, worker])
    assert [p.returncode for p in (api, watcher, worker)] == [-9, -9, -9]
    uid = plane.batch_uid(batch_id)
    assert uid in plane.active_runs(), "the Spark application must outlive the control plane"

    for process in (api, watcher, worker):
        process.start()  # the same command again; its log goes to <role>.2.log
    plane.wait_ready(api)
    state = plane.wait_final(batch_id, keep_alive=(api, watcher, worker))

    assert state == "success", plane.diagnostics()
    log = plane.log(batch_id)
    assert any("done sleeping" in line for line in log), plane.diagnostics()
    new_runs = plane.run_dirs() - before
    assert new_runs == {uid}, f"expected only this batch's Spark application, found {sorted(new_runs)}"
    plane.assert_launched_once(batch_id, new_runs)
