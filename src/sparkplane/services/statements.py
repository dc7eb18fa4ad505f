"""Statements: run code in a session, read its output, cancel it, complete code.

The API hands a statement straight to the session's agent (one local HTTP hop) rather than through the
queue: a statement's round trip is the product's hot path. If the agent cannot take it right now, the
statement stays `waiting` and not submitted, and the interactive watcher hands it over later. Reads of an
unfinished statement go to the agent and write what changed, so the row always ends with the output.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sparkplane.backends.base import BackendError, Handle, StatementObservation, TransientBackendError
from sparkplane.db.models import Session, Statement
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from sparkplane.domain.specs import STATEMENT_KINDS, normalize_kind
from sparkplane.domain.states import SESSION_TERMINAL, STATEMENT_TERMINAL, SessionState, StatementState
from sparkplane.services import faults, sessions
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal

log = logging.getLogger(__name__)
MAX_CODE_BYTES = 1_000_000
_READY = (SessionState.IDLE, SessionState.BUSY, SessionState.RECOVERING)


@dataclass(frozen=True, slots=True)
class StatementView:
    id: int
    code: str
    kind: str
    state: StatementState
    output: dict[str, Any] | None
    progress: float
    started: int
    completed: int


def _view(row: Statement) -> StatementView:
    return StatementView(
        row.number,
        row.code,
        row.kind,
        StatementState(row.state),
        row.output,
        row.progress,
        row.started_ms,
        row.completed_ms,
    )


def _live_session(uow: UnitOfWork, ctx: Context, principal: Principal, ref: str | int) -> Session:
    row = sessions.owned(uow, principal, ref)
    if row.heartbeat_timeout_s and row.state not in SESSION_TERMINAL:
        uow.sessions.touch_heartbeat(row.id, ctx.clock.now())
    return row


def _require_owner(row: Session, principal: Principal, ref: str | int) -> None:
    """Code runs with the owner's data credentials (they are in the session's Spark configuration), so only
    the owner runs or completes code; admins read and stop anyone's session, as with the Spark Connect URL."""
    if row.owner_id != principal.user_id:
        raise Forbidden(f"only the owner of session '{ref}' can run code in it; admins can read and stop it")


def submit(ctx: Context, principal: Principal, ref: str | int, code: str, kind: str | None) -> StatementView:
    if len(code.encode()) > MAX_CODE_BYTES:
        raise InvalidInput(f"code is larger than {MAX_CODE_BYTES} bytes")
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        row = _live_session(uow, ctx, principal, ref)
        _require_owner(row, principal, ref)
        if row.state in SESSION_TERMINAL or row.state == SessionState.SHUTTING_DOWN:
            raise Conflict(f"Session '{ref}' is {row.state}: start a new session to run code")
        if kind is None and row.kind == "shared":
            raise InvalidInput(
                "this session's kind is shared: each statement needs a kind (pyspark, sql, spark, sparkr)"
            )
        statement_kind = normalize_kind(kind, default=row.kind, allowed=STATEMENT_KINDS, what="kind")
        statement = add(uow, row, code, statement_kind, now)
        number, result = statement.number, _view(statement)
        session_id, backend, handle, state = row.id, row.backend, row.handle, SessionState(row.state)
    faults.point("api.statement_created", ctx.settings.data_dir)
    if handle is not None and state in _READY:
        delivered = _deliver(ctx, session_id, backend, Handle.from_json(handle), number, code, statement_kind)
        return delivered or result
    return result


def add(uow: UnitOfWork, row: Session, code: str, kind: str, now: dt.datetime) -> Statement:
    """A waiting statement in a live session, numbered next, in the caller's unit of work (the caller has
    checked who may run code there; hand it over after the commit with hand_over_if_ready)."""
    if len(code.encode()) > MAX_CODE_BYTES:
        raise InvalidInput(f"code is larger than {MAX_CODE_BYTES} bytes")
    statement = uow.statements.add(
        Statement(
            session_id=row.id,
            number=uow.sessions.next_number(row, now),
            code=code,
            kind=kind,
            state=StatementState.WAITING,
            submitted=False,
            progress=0.0,
            started_ms=0,
            completed_ms=0,
            created_at=now,
            version=0,
        )
    )
    return statement


def hand_over_if_ready(
    ctx: Context, session_id: int, backend: str, handle: dict[str, Any] | None, state: SessionState, number: int
) -> bool:
    """Hand a new statement to a session that can take it now; else the interactive watcher does it later."""
    if handle is None or state not in _READY:
        return False
    hand_over(ctx, session_id, backend, Handle.from_json(handle), number)
    return True


def hand_over(ctx: Context, session_id: int, backend: str, handle: Handle, number: int) -> bool:
    """Give a waiting statement to the agent; False when the agent cannot take it now (retried later)."""
    with ctx.db.uow() as uow:
        statement = uow.statements.get(session_id, number)
        if statement is None or statement.submitted or statement.state in STATEMENT_TERMINAL:
            return False
        code, kind = statement.code, statement.kind
    return _deliver(ctx, session_id, backend, handle, number, code, kind) is not None


def _deliver(
    ctx: Context, session_id: int, backend: str, handle: Handle, number: int, code: str, kind: str
) -> StatementView | None:
    """Submit to the agent (idempotent on the number) and record it, with the output when the agent had it
    within the submit wait; None when the agent cannot take it now."""
    wait = ctx.settings.statement_submit_wait_seconds
    try:
        observed = ctx.backends.session(backend).submit_statement(handle, number, code, kind, wait=wait)
    except TransientBackendError as exc:
        log.info("session %s statement %s: agent busy or unreachable (%s); will retry", session_id, number, exc)
        return None
    faults.point("statement.after_hand_over", ctx.settings.data_dir)
    with ctx.db.uow() as uow:
        statement = uow.statements.get(session_id, number, for_update=True)
        if statement is None:
            return None
        # With the agent's report, one UPDATE for both, unless that report writes nothing.
        if observed is None or not _apply(ctx, uow, statement, observed, submitted=True):
            uow.statements.set_fields(statement, submitted=True)
        return _view(statement)


def refresh(
    ctx: Context, session_id: int, backend: str, handle: Handle, number: int, *, wait: float = 0.0
) -> StatementView | None:
    """Read an unfinished, submitted statement from the agent and store what changed; None if unreadable.
    `wait`: how long the agent may hold its answer for the statement to end (see statement_read_wait_seconds)."""
    try:
        observed = ctx.backends.session(backend).observe_statement(handle, number, wait=wait)
    except TransientBackendError:
        return None
    if observed is None:
        return None
    faults.point("statement.before_store", ctx.settings.data_dir)
    with ctx.db.uow() as uow:
        row = uow.statements.get(session_id, number, for_update=True)
        if row is None:
            return None
        _apply(ctx, uow, row, observed)
        return _view(row)


def _apply(ctx: Context, uow: UnitOfWork, row: Statement, observed: StatementObservation, **extra: Any) -> bool:
    """Write what the agent reports of an unfinished statement onto its row, with `extra` columns in the same
    UPDATE; False when nothing was written (a final row never changes; a transition can lose a race)."""
    if row.state in STATEMENT_TERMINAL:
        return False
    values: dict[str, Any] = {
        **extra,
        "progress": observed.progress,
        "started_ms": observed.started_ms,
        "completed_ms": observed.completed_ms,
    }
    if observed.output is not None:
        values["output"] = dict(observed.output)
    if observed.state != row.state:
        written = uow.statements.transition(row, observed.state, ctx.clock.now(), **values)
    else:
        uow.statements.set_fields(row, **values)
        written = True
    if observed.state in STATEMENT_TERMINAL:
        uow.sessions.mark_active(row.session_id, ctx.clock.now())
    return written


def get(ctx: Context, principal: Principal, ref: str | int, number: int) -> StatementView:
    with ctx.db.uow() as uow:
        session = _live_session(uow, ctx, principal, ref)
        row = uow.statements.get(session.id, number)
        if row is None:
            raise NotFound("Statement not found")
        live = row.submitted and row.state not in STATEMENT_TERMINAL and session.handle is not None
        session_id, backend, handle = session.id, session.backend, session.handle
        result = _view(row)
    if not (live and handle is not None):
        return result
    wait = ctx.settings.statement_read_wait_seconds
    return refresh(ctx, session_id, backend, Handle.from_json(handle), number, wait=wait) or result


def page(
    ctx: Context, principal: Principal, ref: str | int, offset: int, limit: int, *, descending: bool = False
) -> tuple[list[StatementView], int]:
    with ctx.db.uow() as uow:
        session = _live_session(uow, ctx, principal, ref)
        rows, total = uow.statements.page(session.id, offset, limit, descending=descending)
        return [_view(r) for r in rows], total


def cancel(ctx: Context, principal: Principal, ref: str | int, number: int) -> StatementView:
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        session = _live_session(uow, ctx, principal, ref)
        row = uow.statements.get(session.id, number, for_update=True)
        if row is None:
            raise NotFound("Statement not found")
        if row.state in STATEMENT_TERMINAL:
            return _view(row)
        if not row.submitted:  # never reached the agent: nothing runs, cancel here
            uow.statements.transition(row, StatementState.CANCELLED, now)
            return _view(row)
        uow.statements.transition(row, StatementState.CANCELLING, now)
        backend, handle = session.backend, session.handle
    assert handle is not None
    try:
        ctx.backends.session(backend).cancel_statement(Handle.from_json(handle), number)
    except BackendError as exc:
        raise Unavailable(f"could not reach the session to cancel statement {number}: {exc}") from exc
    return get(ctx, principal, ref, number)


def completion(
    ctx: Context, principal: Principal, ref: str | int, code: str, kind: str | None, cursor: int
) -> list[str]:
    with ctx.db.uow() as uow:
        session = _live_session(uow, ctx, principal, ref)
        _require_owner(session, principal, ref)
        statement_kind = normalize_kind(
            kind, default="pyspark" if session.kind == "shared" else session.kind, allowed=STATEMENT_KINDS, what="kind"
        )
        ready = session.handle is not None and session.state in _READY
        backend, handle = session.backend, session.handle
    if not ready or handle is None:
        raise Conflict(f"Session '{ref}' is not ready for completion")
    if not 0 <= cursor <= len(code):
        raise InvalidInput("cursor must be a position inside code")
    try:
        return ctx.backends.session(backend).completion(Handle.from_json(handle), code, statement_kind, cursor)
    except BackendError as exc:
        raise Unavailable(f"could not reach the session for completion: {exc}") from exc
