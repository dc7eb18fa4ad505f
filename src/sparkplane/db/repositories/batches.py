from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from sparkplane.db.models import LIVE_BATCH_STATES, Batch, StateEvent
from sparkplane.db.repositories import _ids, _rows, tracking
from sparkplane.db.repositories._lookup import ById
from sparkplane.db.repositories.transitions import record_creation, transition
from sparkplane.domain.states import BATCH_TERMINAL, BATCH_TRANSITIONS, BatchState

ACTIVE_BATCH = LIVE_BATCH_STATES
_BY_ID = ById(Batch, Batch.id, Batch.owner_id)


class BatchRepository:
    def __init__(self, db: Session) -> None:
        self.db = db

    def add(self, batch: Batch, now: dt.datetime) -> Batch:
        self.db.add(batch)
        self.db.flush()
        record_creation(self.db, entity="batch", entity_id=batch.id, state=BatchState(batch.state), now=now)
        return batch

    def get(self, batch_id: int, *, for_update: bool = False, skip_locked: bool = False) -> Batch | None:
        if not _ids.storable(batch_id):
            return None
        query = select(Batch).where(Batch.id == batch_id)
        if for_update:
            query = query.with_for_update(skip_locked=skip_locked)
        return self.db.scalars(query).one_or_none()

    def visible(self, owner_id: int | None) -> Select[Batch]:
        query = select(Batch)
        return query if owner_id is None else query.where(Batch.owner_id == owner_id)

    def find(self, ref: str, owner_id: int | None) -> Batch | None:
        """By id, or by name (Livy lets a non-numeric path segment name the batch); newest first."""
        if (batch_id := _ids.id_in_ref(ref)) is not None:
            return _BY_ID(self.db, batch_id, owner_id)
        query = self.visible(owner_id)
        return self.db.scalar(query.where(Batch.name == ref).order_by(Batch.id.desc()).limit(1))

    def page(
        self, owner_id: int | None, offset: int, limit: int, state: str | None = None
    ) -> tuple[Sequence[Batch], int]:
        query = self.visible(owner_id)
        if state is not None:
            query = query.where(Batch.state == state)
        total = int(self.db.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = self.db.scalars(query.order_by(Batch.id).offset(_ids.offset(offset)).limit(limit)).all()
        return rows, total

    def transition(
        self,
        batch: Batch,
        to: BatchState,
        now: dt.datetime,
        *,
        reason: str | None = None,
        message: str | None = None,
        **values: Any,
    ) -> bool:
        if to in BATCH_TERMINAL:
            values.setdefault("finished_at", now)
            if to != BatchState.SUCCESS and reason is not None:
                values.setdefault("failure_reason", reason)
        if to == BatchState.RUNNING and batch.started_at is None:
            values.setdefault("started_at", now)
        if message is not None:
            values.setdefault("message", message)
        return transition(
            self.db,
            batch,
            entity="batch",
            table=BATCH_TRANSITIONS,
            to=to,
            now=now,
            reason=reason,
            message=message,
            values=values,
        )

    def set_fields(self, batch: Batch, **values: Any) -> None:
        self.db.execute(update(Batch).where(Batch.id == batch.id).values(**values), execution_options=_rows.UNSYNCED)
        _rows.mirror(self.db, batch, values)

    def mark_dispatched(self, batch_ids: Sequence[int], now: dt.datetime) -> None:
        # The relay just published their launch: their staleness (redispatch_after_seconds) counts from now.
        tracking.mark_observed(self.db, Batch, batch_ids, now, skip_locked=False)

    def live_page(self, after_id: int, limit: int) -> list[tracking.LiveRow]:
        return tracking.live_page(self.db, Batch, ACTIVE_BATCH, after_id, limit)

    def mark_observed(self, ids: Sequence[int], now: dt.datetime, *, skip_locked: bool) -> None:
        tracking.mark_observed(self.db, Batch, ids, now, skip_locked)

    def lock_many(self, ids: Sequence[int], *, skip_locked: bool) -> Sequence[Batch]:
        return tracking.lock_many(self.db, Batch, ids, skip_locked)

    def counts_by_state(self) -> dict[str, int]:
        rows = self.db.execute(select(Batch.state, func.count()).group_by(Batch.state)).all()
        return {str(state): int(count) for state, count in rows}

    def finished_before(self, cutoff: dt.datetime, limit: int) -> Sequence[Batch]:
        query = (
            select(Batch)
            .where(Batch.state.not_in(ACTIVE_BATCH), Batch.finished_at < cutoff)
            .order_by(Batch.id)
            .limit(limit)
        )
        return self.db.scalars(query).all()

    def active_uids(self, backend: str) -> set[str]:
        query = select(Batch.uid).where(Batch.backend == backend, or_(Batch.state.in_(ACTIVE_BATCH)))
        return set(self.db.scalars(query).all())

    def events(self, batch_id: int) -> Sequence[StateEvent]:
        query = (
            select(StateEvent)
            .where(StateEvent.entity == "batch", StateEvent.entity_id == batch_id)
            .order_by(StateEvent.id)
        )
        return self.db.scalars(query).all()

    def delete(self, batch: Batch) -> None:
        self.db.delete(batch)
