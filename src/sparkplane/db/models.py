"""Tables. All SQL lives in db/repositories; these are only the shapes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import TextClause

from sparkplane.db.base import Base, JSONType, UTCDateTime
from sparkplane.domain.states import BATCH_TERMINAL, SESSION_TERMINAL, BatchState, SessionState


def state_in(states: Iterable[str]) -> TextClause:
    """`state IN ('a', 'b')` spelled with literals: a query that says it in these words can use the partial
    index that does (with bound parameters instead, the planner cannot prove the index covers the query)."""
    return text("state IN (" + ", ".join(f"'{s}'" for s in sorted(states)) + ")")


LIVE_SESSION_STATES = [str(s) for s in SessionState if s not in SESSION_TERMINAL]
LIVE_BATCH_STATES = [str(s) for s in BatchState if s not in BATCH_TERMINAL]


def _live_index(name: str, states: list[str]) -> Index:
    """The watchers' index: the ids of the unfinished rows only, which a pass walks in order. It holds neither
    `last_observed_at` (re-stamped on quiet rows now and then: an UPDATE that touches no index stays a cheap
    heap-only one) nor the finished rows (most of a long-lived table)."""
    return Index(name, "id", postgresql_where=state_in(states), sqlite_where=state_in(states))


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    # sha256 of the token: tokens are 256 random bits, so a slow hash adds nothing but latency per request.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebLogin(Base):
    """A browser's login: the cookie's secret (stored as sha256, like an API token) and its CSRF token."""

    __tablename__ = "web_logins"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Not a credential on its own (it is useless without the cookie), so kept in clear to put into pages.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class StoredFile(Base):
    __tablename__ = "files"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(1024), unique=True)
    uri: Mapped[str] = mapped_column(String(2048))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (_live_index("ix_batches_live", LIVE_BATCH_STATES),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    # The idempotency key given to the backend: unique across databases, unlike the integer id.
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(255), index=True)
    state: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(32))
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)
    handle: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    native_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    app_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ui_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_key: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_observed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="SET NULL"), nullable=True, index=True
    )
    version: Mapped[int] = mapped_column(Integer, default=0)


class StateEvent(Base):
    """Every transition of every machine: the audit trail and the UI's timeline."""

    __tablename__ = "state_events"
    __table_args__ = (Index("ix_state_events_entity", "entity", "entity_id", "id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    from_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class OutboxEntry(Base):
    """A task to enqueue, written in the same transaction as the row it is about; deleted once published."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Session(Base):
    """An interactive session: one agent (a Spark driver) that keeps state between statements."""

    __tablename__ = "sessions"
    __table_args__ = (_live_index("ix_sessions_live", LIVE_SESSION_STATES),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(32))
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)
    handle: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    native_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    app_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ui_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_key: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    heartbeat_timeout_s: Mapped[int] = mapped_column(Integer, default=0)
    ttl_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    idle_timeout_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_activity_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_statement: Mapped[int] = mapped_column(Integer, default=0)
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="SET NULL"), nullable=True, index=True
    )
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_observed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class Statement(Base):
    __tablename__ = "statements"
    __table_args__ = (
        UniqueConstraint("session_id", "number", name="uq_statements_session_number"),
        Index("ix_statements_state", "state"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # Livy's statement id: 0, 1, 2… within its session
    code: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    submitted: Mapped[bool] = mapped_column(Boolean, default=False)  # handed to the agent
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    started_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    completed_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=0)


class Cluster(Base):
    """A Spark standalone cluster (a master and workers); field names follow Databricks' Clusters API."""

    __tablename__ = "clusters"
    __table_args__ = (Index("ix_clusters_state_observed", "state", "last_observed_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)  # in node keys and provider tags
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    target_workers: Mapped[int] = mapped_column(Integer, default=0)  # what the cluster should have now
    generation: Mapped[int] = mapped_column(Integer, default=0)  # bumped by start and restart: fresh node keys
    next_worker: Mapped[int] = mapped_column(Integer, default=0)  # worker indices are never reused
    master_url: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ui_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    state_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    termination_reason: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # Providers whose nodes push the master's status (EC2): the last report of each node, and the token that
    # authenticates them (one cluster's reports only), sealed with the encryption key: nodes launched later
    # need the same token in their bootstrap, so it is kept, never in clear.
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    report_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Since when each live worker has run no executor (worker key -> ISO time), for scaling down.
    worker_idle_since: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # One converging process at a time, without holding a transaction while nodes start: a lease.
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_activity_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_observed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class ClusterEvent(Base):
    """The cluster's timeline as Databricks shows it (CREATING, RUNNING, RESIZING, AUTOSCALED, NODES_LOST…)."""

    __tablename__ = "cluster_events"
    __table_args__ = (Index("ix_cluster_events_cluster", "cluster_id", "id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Credential(Base):
    """A user's own data-source credential (S3 keys and the like), usable only in that user's runs."""

    __tablename__ = "credentials"
    # Leading with owner_id, the unique constraint also serves "this user's credentials".
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_credentials_owner_name"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    # Fernet token of every field, bound to owner, name and kind (services/credentials.py); never plaintext.
    ciphertext: Mapped[str] = mapped_column(Text)
    # The kind's public fields only (endpoint, region, bucket), kept in clear so a user can tell credentials
    # apart; launches read the encrypted copy, so an altered row cannot redirect the secrets elsewhere.
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class WorkspaceFolder(Base):
    """A folder of a user's workspace; `parent_id` None is the top of the user's tree."""

    __tablename__ = "workspace_folders"
    # Names are unique among a folder's children. `parent_key` is parent_id with 0 for the top, because NULLs
    # never collide in a unique index (and an expression index is not portable between SQLite and PostgreSQL).
    __table_args__ = (UniqueConstraint("owner_id", "parent_key", "name", name="uq_workspace_folders_name"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspace_folders.id", ondelete="CASCADE"), nullable=True, index=True
    )
    parent_key: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Notebook(Base):
    """An ordered list of cells in a folder (or at the top); attached, it runs them in `session_id`."""

    __tablename__ = "notebooks"
    __table_args__ = (UniqueConstraint("owner_id", "folder_key", "name", name="uq_notebooks_name"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspace_folders.id", ondelete="CASCADE"), nullable=True, index=True
    )
    folder_key: Mapped[int] = mapped_column(BigInteger, default=0)  # folder_id, 0 at the top (as parent_key)
    name: Mapped[str] = mapped_column(String(255))
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="SET NULL"), nullable=True, index=True
    )
    owns_session: Mapped[bool] = mapped_column(Boolean, default=False)  # made by attach: detach ends it
    # Run all: the cells still to run, in order, one statement at a time so that an error stops the rest.
    run_queue: Mapped[list[int] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=0)


class NotebookCell(Base):
    __tablename__ = "notebook_cells"
    __table_args__ = (
        Index("ix_notebook_cells_notebook_position", "notebook_id", "position"),
        Index("ix_notebook_cells_state", "state"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    notebook_id: Mapped[int] = mapped_column(ForeignKey("notebooks.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    # The statement of the last run: (session, Livy number). Not a foreign key: the output is copied into
    # the cell when the statement ends, and the cell keeps it after the session's rows are cleaned up.
    statement_session_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    statement_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    execution_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
