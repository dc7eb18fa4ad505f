"""What a watcher pass reads and writes in bulk, shared by the session and batch repositories.

A pass reads the live rows a page at a time as plain tuples (no ORM objects), observes them outside any
transaction, then writes only what changed: locked ORM rows for the few that move, and now and then one
UPDATE that re-stamps `last_observed_at` on the rows whose backend said nothing new.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sparkplane.db.models import Batch, state_in
from sparkplane.db.models import Session as SessionRow
from sparkplane.db.repositories import _rows

Tracked = TypeVar("Tracked", SessionRow, Batch)


class LiveRow(NamedTuple):
    """The columns a watcher needs to decide whether a row has anything to do."""

    id: int
    state: str
    backend: str
    handle: dict[str, Any] | None
    native_state: str | None
    app_id: str | None
    ui_url: str | None
    cancel_requested_at: dt.datetime | None
    last_observed_at: dt.datetime | None


def live_page(db: Session, model: type[Tracked], active: Sequence[str], after_id: int, limit: int) -> list[LiveRow]:
    """Unfinished rows with an id above `after_id`, in id order: keyset pages that never skip or repeat."""
    query = (
        select(
            model.id,
            model.state,
            model.backend,
            model.handle,
            model.native_state,
            model.app_id,
            model.ui_url,
            model.cancel_requested_at,
            model.last_observed_at,
        )
        .where(state_in(active), model.id > after_id)
        .order_by(model.id)
        .limit(limit)
    )
    return [LiveRow(*row) for row in db.execute(query)]


def mark_observed(db: Session, model: type[Tracked], ids: Sequence[int], now: dt.datetime, skip_locked: bool) -> None:
    """Stamp `last_observed_at` on rows whose observation changed nothing, in one statement. A row another
    transaction holds (a worker launching it, a request stopping it) is skipped, not waited for: the next
    pass stamps it, and no two writers can deadlock on the page."""
    if not ids:
        return
    targets = select(model.id).where(model.id.in_(ids))
    if skip_locked:
        targets = targets.with_for_update(skip_locked=True)
    db.execute(
        update(model).where(model.id.in_(targets.scalar_subquery())).values(last_observed_at=now),
        execution_options=_rows.UNSYNCED,
    )


def lock_many(db: Session, model: type[Tracked], ids: Sequence[int], skip_locked: bool) -> Sequence[Tracked]:
    """The rows, locked for this transaction; rows another transaction holds are left for the next pass."""
    if not ids:
        return []
    query = select(model).where(model.id.in_(ids)).order_by(model.id).with_for_update(skip_locked=skip_locked)
    return db.scalars(query).all()
