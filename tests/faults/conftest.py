"""The fault suite's services and control plane: a PostgreSQL (behind a TCP proxy) and a RabbitMQ node of
its own (services.py), every role its own process (the harness in harness.py), and nothing left running at
the end. One plane serves the whole suite: the roles start once (tens of seconds on a loaded machine), a
cell restarts only the role it killed, and the matrix runs on a plane that has just survived the
dependency tests' outages (test_dependencies.py runs first).

Plain `pytest` (scripts/test) runs the short subset: the tests marked `faults_short`, which between them kill
every role and cover every phase. The others are deselected at collection (reported as deselected, not
skipped) unless named by their id on the command line; `scripts/test-faults` sets SPARKPLANE_FAULTS_FULL=1
and runs them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from sparkplane.db import migrate
from sparkplane.db.base import make_engine
from sparkplane.services import users
from sparkplane.services.context import build_context
from sparkplane.services.encryption import new_key
from sparkplane.settings import load_settings
from tests.e2e.roles import Roles, free_port, stop_local_runs

from .harness import PASSWORD, Plane, write_stand_in
from .services import PrivatePostgres, PrivateRabbit, TcpProxy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HERE = Path(__file__).resolve().parent
FULL = "SPARKPLANE_FAULTS_FULL"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without SPARKPLANE_FAULTS_FULL=1, deselect this folder's tests that are not in the short subset."""
    if os.environ.get(FULL) == "1":
        return
    named = {arg for arg in config.args if "::" in arg}  # a cell asked for by its id runs
    # A conftest's collection hook sees every collected item, not only this folder's.
    dropped = [
        i
        for i in items
        if i.path.is_relative_to(HERE) and i.get_closest_marker("faults_short") is None and i.nodeid not in named
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [i for i in items if i not in gone]


def plane_env(db_url: str, amqp_url: str, data_dir: Path) -> dict[str, str]:
    """The environment every role shares: production mode, fast loops, the stand-in spark-submit."""
    stand_in, _ = write_stand_in(data_dir / "stand-in")
    return {
        "SPARKPLANE_ENVIRONMENT": "production",
        "SPARKPLANE_ENCRYPTION_KEY": new_key(),
        "SPARKPLANE_DATABASE_URL": db_url,
        "SPARKPLANE_BROKER_URL": amqp_url,
        "SPARKPLANE_DATA_DIR": str(data_dir),
        "SPARKPLANE_HOST": "127.0.0.1",
        "SPARKPLANE_PORT": str(free_port()),
        "SPARKPLANE_SPARK_MASTER": "local[1]",
        "SPARKPLANE_SPARK_SUBMIT": str(stand_in),
        "SPARKPLANE_POOL_SIZE": "0",  # every session starts cold: one JVM less on two cores
        "SPARKPLANE_REDISPATCH_AFTER_SECONDS": "3",
        "SPARKPLANE_RECONCILE_INTERVAL_SECONDS": "0.5",
        "SPARKPLANE_CANCEL_GRACE_SECONDS": "3",
        "SPARKPLANE_LOCAL_CLUSTER_MEMORY_MB": "2048",
        "SPARKPLANE_LOG_FORMAT": "console",
    }


@pytest.fixture(scope="session")
def private_services() -> Iterator[tuple[PrivatePostgres, PrivateRabbit]]:
    """Both started at once: each is mostly waiting (initdb, an Erlang VM booting)."""
    with ThreadPoolExecutor(2) as pool:
        starting_postgres, starting_rabbit = pool.submit(PrivatePostgres), pool.submit(PrivateRabbit)
    try:
        yield starting_postgres.result(), starting_rabbit.result()
    finally:  # whichever of them did start
        if starting_postgres.exception() is None:
            starting_postgres.result().close()
        if starting_rabbit.exception() is None:
            starting_rabbit.result().close()


@pytest.fixture(scope="session")
def postgres(private_services: tuple[PrivatePostgres, PrivateRabbit]) -> PrivatePostgres:
    return private_services[0]


@pytest.fixture(scope="session")
def rabbit(private_services: tuple[PrivatePostgres, PrivateRabbit]) -> PrivateRabbit:
    return private_services[1]


@pytest.fixture(scope="session")
def proxy(postgres: PrivatePostgres) -> Iterator[TcpProxy]:
    tcp = TcpProxy(postgres.port)
    try:
        yield tcp
    finally:
        tcp.close()


@pytest.fixture(scope="session")
def database_url(postgres: PrivatePostgres, proxy: TcpProxy) -> str:
    """The roles reach the private PostgreSQL through the proxy, which test_dependencies.py cuts."""
    admin = sa.create_engine(postgres.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE sparkplane"))
    finally:
        admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/sparkplane"


@pytest.fixture(scope="session")
def broker_url(rabbit: PrivateRabbit) -> str:
    return rabbit.url


@pytest.fixture(scope="session")
def plane(database_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """All four roles running, shared by every cell; at the end no role, run or agent is left."""
    data_dir = tmp_path_factory.mktemp("faults")
    env = plane_env(database_url, broker_url, data_dir)
    roles = Roles(data_dir, env)
    engine = make_engine(database_url)
    try:  # in process: one interpreter start less than `sparkplane db upgrade`, the same alembic migrations
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    settings = load_settings(database_url=database_url, broker_url=broker_url, data_dir=data_dir)
    ctx = build_context(settings)
    users.create_user(ctx, None, "admin", PASSWORD, "admin")
    url = f"http://127.0.0.1:{env['SPARKPLANE_PORT']}"
    plane = Plane(data_dir, roles, ctx, url, data_dir / "stand-in" / "launches.log")
    try:
        plane.start_all()
        yield plane
    finally:
        try:
            plane.close()
            roles.stop_all()
            for root in (settings.run_root(), settings.session_run_root(), settings.cluster_run_root()):
                stop_local_runs(root)
        finally:
            ctx.close()
    assert not roles.alive(), f"roles left running: {roles.alive()}"
    plane.assert_no_strays()


@pytest.fixture(scope="session")
def app_file(plane: Plane) -> str:
    """An uploaded application: the stand-in spark-submit never reads it, but the backend checks it exists."""
    with open(EXAMPLES / "sleep.py", "rb") as file:
        response = plane.http.post("/api/v1/files", files={"file": ("sleep.py", file, "text/x-python")})
    assert response.status_code == 201, response.text
    return str(response.json()["uri"])
