"""Unit of work: one transaction, the repositories bound to it. Services open it; routes and tasks never commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from sparkplane.db.repositories.batches import BatchRepository
from sparkplane.db.repositories.clusters import ClusterRepository
from sparkplane.db.repositories.credentials import CredentialRepository
from sparkplane.db.repositories.files import FileRepository
from sparkplane.db.repositories.outbox import OutboxRepository
from sparkplane.db.repositories.sessions import SessionRepository, StatementRepository
from sparkplane.db.repositories.users import TokenRepository, UserRepository
from sparkplane.db.repositories.web_logins import WebLoginRepository
from sparkplane.db.repositories.workspace import WorkspaceRepository


class UnitOfWork:
    def __init__(self, db: Session) -> None:
        self.db = db
        self.users = UserRepository(db)
        self.tokens = TokenRepository(db)
        self.files = FileRepository(db)
        self.batches = BatchRepository(db)
        self.outbox = OutboxRepository(db)
        self.sessions = SessionRepository(db)
        self.statements = StatementRepository(db)
        self.clusters = ClusterRepository(db)
        self.credentials = CredentialRepository(db)
        self.workspace = WorkspaceRepository(db)
        self.web_logins = WebLoginRepository(db)
        self.skip_locked = db.get_bind().dialect.name == "postgresql"


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._autocommit = sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)

    @contextmanager
    def uow(self) -> Iterator[UnitOfWork]:
        """Commit on success, roll back on any exception."""
        with self._sessions() as db, db.begin():
            yield UnitOfWork(db)

    @contextmanager
    def autocommit(self) -> Iterator[UnitOfWork]:
        """No transaction: each statement commits on its own. For the hot reads of the API (a token, a session),
        which then cost one round trip per query instead of BEGIN, the queries and COMMIT (and on SQLite take
        no write lock). Only for reads and single-statement stamps: nothing here may need a rollback."""
        with self._autocommit() as db:
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

    def dispose(self) -> None:
        self.engine.dispose()
