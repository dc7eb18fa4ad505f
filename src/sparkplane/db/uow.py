"""Unit of work: one transaction, the repositories bound to it. Services open it; routes and tasks never commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

from sparkplane.db.repositories.batches import BatchRepository
from sparkplane.db.repositories.clusters import ClusterRepository
from sparkplane.db.repositories.credentials import CredentialRepository
from sparkplane.db.repositories.files import FileRepository
from sparkplane.db.repositories.outbox import OutboxRepository
from sparkplane.db.repositories.sessions import SessionRepository, StatementRepository
from sparkplane.db.repositories.users import TokenRepository, UserRepository
from sparkplane.db.repositories.web_logins import WebLoginRepository
from sparkplane.db.repositories.workspace import WorkspaceRepository

# The connection of a read running on the event loop (db/loop_reads.py), for `Database.autocommit()`; None
# everywhere else.
LOOP_CONNECTION: ContextVar[Connection | None] = ContextVar("sparkplane_loop_connection", default=None)


class UnitOfWork:
    """The repositories are made when first used: a polled read uses one of the eleven, and making them all
    was a few per cent of a session GET."""

    def __init__(self, db: Session) -> None:
        self.db = db

    @cached_property
    def users(self) -> UserRepository:
        return UserRepository(self.db)

    @cached_property
    def tokens(self) -> TokenRepository:
        return TokenRepository(self.db)

    @cached_property
    def files(self) -> FileRepository:
        return FileRepository(self.db)

    @cached_property
    def batches(self) -> BatchRepository:
        return BatchRepository(self.db)

    @cached_property
    def outbox(self) -> OutboxRepository:
        return OutboxRepository(self.db)

    @cached_property
    def sessions(self) -> SessionRepository:
        return SessionRepository(self.db)

    @cached_property
    def statements(self) -> StatementRepository:
        return StatementRepository(self.db)

    @cached_property
    def clusters(self) -> ClusterRepository:
        return ClusterRepository(self.db)

    @cached_property
    def credentials(self) -> CredentialRepository:
        return CredentialRepository(self.db)

    @cached_property
    def workspace(self) -> WorkspaceRepository:
        return WorkspaceRepository(self.db)

    @cached_property
    def web_logins(self) -> WebLoginRepository:
        return WebLoginRepository(self.db)

    @cached_property
    def skip_locked(self) -> bool:
        return self.db.get_bind().dialect.name == "postgresql"


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._autocommit = sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
        self._on_connection = sessionmaker(expire_on_commit=False)

    @contextmanager
    def uow(self) -> Iterator[UnitOfWork]:
        """Commit on success, roll back on any exception."""
        if LOOP_CONNECTION.get() is not None:
            # Its blocking connection would stop the event loop for every round trip: loud, not slow.
            raise RuntimeError("a transaction was opened inside a read on the event loop (db/loop_reads.py)")
        with self._sessions() as db, db.begin():
            yield UnitOfWork(db)

    @contextmanager
    def autocommit(self) -> Iterator[UnitOfWork]:
        """No transaction: each statement commits on its own. For the hot reads of the API (a token, a session),
        which then cost one round trip per query instead of BEGIN, the queries and COMMIT (and on SQLite take
        no write lock). Only for reads and single-statement stamps: nothing here may need a rollback.
        Inside a call of db/loop_reads.LoopReads it runs on that call's connection, on the event loop."""
        connection = LOOP_CONNECTION.get()
        with self._autocommit() if connection is None else self._on_connection(bind=connection) as db:
            yield UnitOfWork(db)

    @contextmanager
    def process_lock(self, space: int, key: int) -> Iterator[bool | None]:
        """A lock held by this process's own connection, so it dies with the process (PostgreSQL's session
        advisory locks): True when taken, False when another process holds it. None on a database that has
        none (SQLite, one machine): the caller then relies on its own lease."""
        if self.engine.dialect.name != "postgresql":
            yield None
            return
        with self.engine.connect() as conn:
            taken = bool(conn.execute(text("SELECT pg_try_advisory_lock(:s, :k)"), {"s": space, "k": key}).scalar())
            conn.commit()
            try:
                yield taken
            finally:
                if taken:
                    conn.execute(text("SELECT pg_advisory_unlock(:s, :k)"), {"s": space, "k": key})
                    conn.commit()

    def warm(self) -> None:
        """Configure the ORM's mappers now rather than in the first query of the process (tens of ms)."""
        configure_mappers()

    def dispose(self) -> None:
        self.engine.dispose()
