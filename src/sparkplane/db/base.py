"""Metadata with a naming convention (so alembic autogenerate is stable) and the engine factory."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps stored as UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


# Requests the API serves at once in its thread pool (FastAPI runs sync routes and dependencies there), and in
# the lane of quick reads (api/deps.QuickReads); each holds at most one pooled connection at a time.
API_THREADS = 20
QUICK_READ_THREADS = 4


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take the write lock at the start instead, so two
        # processes never both read a row and then fail to upgrade to a write (SQLITE_BUSY without retry).
        event.listen(engine, "begin", _begin_immediate)
        return engine
    # Kept open: as many as the API's request threads, so a busy API never opens a connection per request.
    # Overflow connections are closed when returned, and each new one forks a PostgreSQL backend: under load
    # that costs more than the query it serves.
    kwargs.setdefault("pool_size", API_THREADS + QUICK_READ_THREADS)
    kwargs.setdefault("max_overflow", 10)
    engine = create_engine(url, **kwargs)
    ping_when_idle(engine)
    return engine


# A pooled connection unused this long is tested before it is handed out. Why not pool_pre_ping: it tests every
# checkout, and that round trip (about 1.9 ms measured) cost more than the session read it guarded. A connection
# returned within the last second was working a second ago; one that breaks in between (a database restart)
# fails its query, is invalidated by SQLAlchemy, and that one request answers 503.
IDLE_PING_SECONDS = 1.0
_RETURNED_AT = "sparkplane_returned_at"


def ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)  # the dialect's own ping leaves no transaction open
        except Exception as exc:  # any failure means this connection is unusable: the pool opens another
            raise DisconnectionError(f"a pooled connection failed its liveness check: {exc}") from exc


def _begin_immediate(conn: Connection) -> None:
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a watcher writes; busy_timeout makes writers wait instead of failing.
    dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
