"""The PostgreSQL pool hands out working connections without testing each one (see db/base.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from sparkplane.db import base
from sparkplane.db.base import make_engine
from tests.conftest import pg_url, terminate_pg_backend

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = make_engine(pg_url(), pool_size=1, max_overflow=0)  # one connection: every checkout reuses it
    yield engine
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_idle_past_the_ping_age_is_tested_and_replaced(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "IDLE_PING_SECONDS", 0.0)  # every returned connection counts as idle
    first = _backend_pid(engine)
    terminate_pg_backend(first)
    second = _backend_pid(engine)  # no error: the ping found it dead and the pool opened another
    assert second != first


def test_a_connection_returned_moments_ago_is_not_tested(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "IDLE_PING_SECONDS", 3600.0)
    first = _backend_pid(engine)
    terminate_pg_backend(first)
    with pytest.raises(OperationalError):  # handed out untested, so the first query finds it dead...
        _backend_pid(engine)
    assert _backend_pid(engine) != first  # ...and SQLAlchemy invalidated it: the next checkout is a new one
