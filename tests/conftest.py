"""Shared fixtures. Tests run against both databases where it matters (SQLite embedded, PostgreSQL)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from sparkplane.backends.fake import FakeBackend, FakeSessionBackend
from sparkplane.backends.fake_cluster import FakeClusterProvider
from sparkplane.db import migrate
from sparkplane.db.base import Base, make_engine
from sparkplane.domain.clock import Clock
from sparkplane.services import users
from sparkplane.services.context import Backends, Context, build_context
from sparkplane.settings import Settings, load_settings

T = TypeVar("T")

ADMIN_PASSWORD = "admin-password-1"


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    """argon2 is slow on purpose; tests create many users, so they use the cheapest valid parameters."""
    from argon2 import PasswordHasher

    from sparkplane.services import security

    original = security._hasher
    security._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    yield
    security._hasher = original


def pg_url() -> str:
    url = os.environ.get("SPARKPLANE_TEST_PG_URL")
    if not url:
        pytest.fail("SPARKPLANE_TEST_PG_URL is not set: run the suite with scripts/test, which starts PostgreSQL")
    return url


def on_own_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a thread of its own: the browser tests leave an event loop running on this one (Playwright's
    sync API keeps one), where asyncio.run refuses."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="own-loop") as pool:
        return pool.submit(asyncio.run, main).result()


def terminate_pg_backend(pid: int) -> None:
    """What a database restart does to a pooled connection: its server process is gone."""
    admin = make_engine(pg_url())
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one() is True
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """The test database, migrated once per run with alembic (so the migrations themselves are exercised)."""
    url = pg_url()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate.upgrade(engine)
    engine.dispose()
    yield url


def _truncate_pg(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


class FakeClock:
    def __init__(self, start: Clock) -> None:
        self.current = start.now()

    def now(self):  # type: ignore[no-untyped-def]
        return self.current

    def advance(self, seconds: float) -> None:
        import datetime as dt

        self.current += dt.timedelta(seconds=seconds)


class RecordingDispatcher:
    """Records what would be published; `broker_up = False` simulates a broker that is down."""

    def __init__(self) -> None:
        self.published: list[tuple[str, int]] = []
        self.broker_up = True
        self.warmed = 0

    def publish(self, task: str, entity_id: int) -> bool:
        if not self.broker_up:
            return False
        self.published.append((task, entity_id))
        return True

    def warm(self) -> None:
        self.warmed += 1


@pytest.fixture(params=["sqlite", "postgres"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_settings(tmp_path: Path, db_kind: str, request: pytest.FixtureRequest, **overrides: object) -> Settings:
    if db_kind == "postgres":
        url = request.getfixturevalue("pg_schema")
        _truncate_pg(url)
    else:
        url = f"sqlite:///{tmp_path / 'sparkplane.sqlite'}"
    return load_settings(
        data_dir=tmp_path / "data", database_url=url, backend="fake", cluster_provider="fake", **overrides
    )


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def fake_sessions() -> FakeSessionBackend:
    return FakeSessionBackend(auto_advance=True)


@pytest.fixture
def fake_clusters() -> FakeClusterProvider:
    return FakeClusterProvider()


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def ctx(
    tmp_path: Path,
    db_kind: str,
    request: pytest.FixtureRequest,
    fake_backend: FakeBackend,
    fake_sessions: FakeSessionBackend,
    fake_clusters: FakeClusterProvider,
    dispatcher: RecordingDispatcher,
) -> Iterator[Context]:
    """A service context on the chosen database, with the fake backend and a recording dispatcher."""
    from sparkplane.domain.clock import SystemClock

    settings = make_settings(tmp_path, db_kind, request)
    context = build_context(
        settings,
        dispatcher=dispatcher,
        backends=Backends(
            {"fake": lambda: fake_backend},
            sessions={"fake": lambda: fake_sessions},
            clusters={"fake": lambda: fake_clusters},
        ),
        clock=FakeClock(SystemClock()),
    )
    if db_kind == "sqlite":
        migrate.upgrade(context.db.engine)
    users.create_user(context, None, "admin", ADMIN_PASSWORD, "admin")
    users.create_user(context, None, "alice", "alice-password", "user")
    users.create_user(context, None, "bob", "bob-password-1", "user")
    yield context
    context.close()
