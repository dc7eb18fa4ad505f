from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.orm import Session as DbSession

from sparkplane.db.models import LIVE_SESSION_STATES, Session, StateEvent, Statement
from sparkplane.db.repositories import _ids, _rows, tracking
from sparkplane.db.repositories._lookup import ById
from sparkplane.db.repositories.transitions import record_creation, transition
from sparkplane.domain.states import (
    SESSION_TERMINAL,
    SESSION_TRANSITIONS,
    STATEMENT_TERMINAL,
    STATEMENT_TRANSITIONS,
    SessionState,
    StatementState,
)

ACTIVE_SESSION = LIVE_SESSION_STATES
ACTIVE_STATEMENT = [str(s) for s in StatementState if s not in STATEMENT_TERMINAL]
_BY_ID = ById(Session, Session.id, Session.owner_id)
# A statement by its number, read twice per statement run (and per poll): built once, as in _lookup.
_STATEMENT = select(Statement).where(
    Statement.session_id == bindparam("session_id"), Statement.number == bindparam("number")
)
_STATEMENT_FOR_UPDATE = _STATEMENT.with_for_update()


class SessionRepository:
    def __init__(self, db: DbSession) -> None:
        self.db = db

    def add(self, session: Session, now: dt.datetime) -> Session:
        self.db.add(session)
        self.db.flush()
        record_creation(self.db, entity="session", entity_id=session.id, state=SessionState(session.state), now=now)
        return session

    def get(self, session_id: int, *, for_update: bool = False, skip_locked: bool = False) -> Session | None:
        if not _ids.storable(session_id):
            return None
        query = select(Session).where(Session.id == session_id)
        if for_update:
            query = query.with_for_update(skip_locked=skip_locked)
        return self.db.scalars(query).one_or_none()

    def visible(self, owner_id: int | None) -> Select[Session]:
        query = select(Session)
        return query if owner_id is None else query.where(Session.owner_id == owner_id)

    def find(self, ref: str, owner_id: int | None) -> Session | None:
        """By id, or by name (Livy, LIVY-41): a non-numeric path segment names the session; newest first."""
        if (session_id := _ids.id_in_ref(ref)) is not None:
            return _BY_ID(self.db, session_id, owner_id)
        query = self.visible(owner_id)
        return self.db.scalar(query.where(Session.name == ref).order_by(Session.id.desc()).limit(1))

    def active_named(self, owner_id: int, name: str) -> Session | None:
        query = select(Session).where(
            Session.owner_id == owner_id, Session.name == name, Session.state.in_(ACTIVE_SESSION)
        )
        return self.db.scalar(query.limit(1))

    def page(
        self, owner_id: int | None, offset: int, limit: int, state: str | None = None
    ) -> tuple[Sequence[Session], int]:
        query = self.visible(owner_id)
        if state is not None:
            query = query.where(Session.state == state)
        total = int(self.db.scalar(select(func.count()).select_from(query.subquery())) or 0)
        return self.db.scalars(query.order_by(Session.id).offset(_ids.offset(offset)).limit(limit)).all(), total

    def transition(
        self,
        row: Session,
        to: SessionState,
        now: dt.datetime,
        *,
        reason: str | None = None,
        message: str | None = None,
        **values: Any,
    ) -> bool:
        if to in SESSION_TERMINAL:
            values.setdefault("finished_at", now)
            if to != SessionState.SUCCESS and reason is not None:
                values.setdefault("failure_reason", reason)
        if to in (SessionState.IDLE, SessionState.BUSY) and row.started_at is None:
            values.setdefault("started_at", now)
        if message is not None:
            values.setdefault("message", message)
        return transition(
            self.db,
            row,
            entity="session",
            table=SESSION_TRANSITIONS,
            to=to,
            now=now,
            reason=reason,
            message=message,
            values=values,
        )

    def set_fields(self, row: Session, **values: Any) -> None:
        self.db.execute(update(Session).where(Session.id == row.id).values(**values), execution_options=_rows.UNSYNCED)
        _rows.mirror(self.db, row, values)

    def touch_heartbeat(self, session_id: int, now: dt.datetime) -> None:
        self.db.execute(
            update(Session).where(Session.id == session_id).values(last_heartbeat_at=now),
            execution_options=_rows.UNSYNCED,
        )

    def next_number(self, row: Session, now: dt.datetime) -> int:
        """Reserve the session's next statement number (atomic: UPDATE … RETURNING); a new statement is
        activity, recorded in the same statement."""
        number = self.db.execute(
            update(Session)
            .where(Session.id == row.id)
            .values(next_statement=Session.next_statement + 1, last_activity_at=now)
            .returning(Session.next_statement)
            .execution_options(**_rows.UNSYNCED)
        ).scalar_one()
        _rows.mirror(self.db, row, {"next_statement": number, "last_activity_at": now})
        return int(number) - 1

    def mark_active(self, session_id: int, now: dt.datetime) -> None:
        """Record activity on a session not loaded in this unit of work (a statement just ended)."""
        self.db.execute(
            update(Session).where(Session.id == session_id).values(last_activity_at=now),
            execution_options=_rows.UNSYNCED,
        )

    def mark_dispatched(self, session_ids: Sequence[int], now: dt.datetime) -> None:
        # The relay just published their launch: their staleness (redispatch_after_seconds) counts from now.
        tracking.mark_observed(self.db, Session, session_ids, now, skip_locked=False)

    def live_page(self, after_id: int, limit: int) -> list[tracking.LiveRow]:
        return tracking.live_page(self.db, Session, ACTIVE_SESSION, after_id, limit)

    def mark_observed(self, ids: Sequence[int], now: dt.datetime, *, skip_locked: bool) -> None:
        tracking.mark_observed(self.db, Session, ids, now, skip_locked)

    def lock_many(self, ids: Sequence[int], *, skip_locked: bool) -> Sequence[Session]:
        return tracking.lock_many(self.db, Session, ids, skip_locked)

    def load_many(self, ids: Sequence[int]) -> Sequence[Session]:
        return self.db.scalars(select(Session).where(Session.id.in_(ids)).order_by(Session.id)).all() if ids else []

    def counts_by_state(self) -> dict[str, int]:
        rows = self.db.execute(select(Session.state, func.count()).group_by(Session.state)).all()
        return {str(state): int(count) for state, count in rows}

    def active_uids(self, backend: str) -> set[str]:
        query = select(Session.uid).where(Session.backend == backend, Session.state.in_(ACTIVE_SESSION))
        return set(self.db.scalars(query).all())

    def finished_before(self, cutoff: dt.datetime, limit: int) -> Sequence[Session]:
        query = (
            select(Session)
            .where(Session.state.not_in(ACTIVE_SESSION), Session.finished_at < cutoff)
            .order_by(Session.id)
            .limit(limit)
        )
        return self.db.scalars(query).all()

    def events(self, session_id: int) -> Sequence[StateEvent]:
        query = (
            select(StateEvent)
            .where(StateEvent.entity == "session", StateEvent.entity_id == session_id)
            .order_by(StateEvent.id)
        )
        return self.db.scalars(query).all()

    def delete(self, row: Session) -> None:
        self.db.delete(row)


class StatementRepository:
    def __init__(self, db: DbSession) -> None:
        self.db = db

    def add(self, statement: Statement) -> Statement:
        self.db.add(statement)
        self.db.flush()
        return statement

    def get(self, session_id: int, number: int, *, for_update: bool = False) -> Statement | None:
        if not (_ids.storable(session_id) and _ids.storable(number)):
            return None
        query = _STATEMENT_FOR_UPDATE if for_update else _STATEMENT
        return self.db.scalars(query, {"session_id": session_id, "number": number}).one_or_none()

    def page(
        self, session_id: int, offset: int, limit: int, *, descending: bool = False
    ) -> tuple[Sequence[Statement], int]:
        query = select(Statement).where(Statement.session_id == session_id)
        total = int(self.db.scalar(select(func.count()).select_from(query.subquery())) or 0)
        order = Statement.number.desc() if descending else Statement.number
        return self.db.scalars(query.order_by(order).offset(_ids.offset(offset)).limit(limit)).all(), total

    def unfinished(self, session_id: int) -> Sequence[Statement]:
        query = (
            select(Statement)
            .where(Statement.session_id == session_id, Statement.state.in_(ACTIVE_STATEMENT))
            .order_by(Statement.number)
        )
        return self.db.scalars(query).all()

    def sessions_with_unfinished(self, first_id: int, last_id: int) -> set[int]:
        """Ids of the sessions in [first_id, last_id] with a statement not yet final (few: most are idle)."""
        query = select(Statement.session_id).where(
            Statement.state.in_(ACTIVE_STATEMENT), Statement.session_id.between(first_id, last_id)
        )
        return set(self.db.scalars(query.distinct()))

    def transition(self, row: Statement, to: StatementState, now: dt.datetime, **values: Any) -> bool:
        return transition(self.db, row, entity="statement", table=STATEMENT_TRANSITIONS, to=to, now=now, values=values)

    def set_fields(self, row: Statement, **values: Any) -> None:
        self.db.execute(
            update(Statement).where(Statement.id == row.id).values(**values), execution_options=_rows.UNSYNCED
        )
        _rows.mirror(self.db, row, values)
