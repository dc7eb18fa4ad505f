from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from sparkplane.db.models import OutboxEntry


class OutboxRepository:
    def __init__(self, db: Session) -> None:
        self.db = db

    def add(self, task: str, entity_id: int, now: dt.datetime) -> OutboxEntry:
        entry = OutboxEntry(task=task, entity_id=entity_id, created_at=now, attempts=0)
        self.db.add(entry)
        self.db.flush()
        return entry

    def pending(self, limit: int, *, skip_locked: bool) -> Sequence[OutboxEntry]:
        query = select(OutboxEntry).order_by(OutboxEntry.id).limit(limit)
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        return self.db.scalars(query).all()

    def by_ids(self, ids: Sequence[int], *, skip_locked: bool) -> Sequence[OutboxEntry]:
        query = select(OutboxEntry).where(OutboxEntry.id.in_(ids)).order_by(OutboxEntry.id)
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        return self.db.scalars(query).all()

    def delete(self, ids: Sequence[int]) -> None:
        if ids:
            self.db.execute(delete(OutboxEntry).where(OutboxEntry.id.in_(ids)))

    def bump_attempts(self, ids: Sequence[int]) -> None:
        if ids:
            self.db.execute(
                update(OutboxEntry).where(OutboxEntry.id.in_(ids)).values(attempts=OutboxEntry.attempts + 1)
            )

    def has_pending(self, task: str, entity_id: int) -> bool:
        query = select(exists().where(OutboxEntry.task == task, OutboxEntry.entity_id == entity_id))
        return bool(self.db.scalar(query))
