"""Alembic on real PostgreSQL and SQLite: upgrade from empty, downgrade/upgrade round trip, no drift."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from sparkplane.db import migrate
from sparkplane.db.base import Base, make_engine
from tests.conftest import pg_url


@pytest.fixture(params=["sqlite", "postgres"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/migrations.sqlite")
        yield engine
        engine.dispose()
        return
    pg_url()  # fails clearly when the suite was not started through scripts/test
    admin_url = os.environ["SPARKPLANE_TEST_PG_ADMIN_URL"]
    name = f"sparkplane_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine = make_engine(admin_url.rsplit("/", 1)[0] + "/" + name)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def test_upgrade_from_empty_downgrade_and_upgrade_again(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
    tables = set(inspect(empty_engine).get_table_names())
    assert {"users", "api_tokens", "files", "batches", "state_events", "outbox"} <= tables

    migrate.downgrade(empty_engine, "base")
    assert migrate.current_revision(empty_engine) is None
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}

    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.head_revision()


def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], "the models changed without a migration: run alembic revision --autogenerate"
