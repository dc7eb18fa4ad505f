"""The one way a row changes state: compare-and-set on (id, state), plus an event row.

`UPDATE … SET state=:to, version=version+1 WHERE id=:id AND state=:from`. Zero rows updated means someone
else moved it first: that is logged and returned as False, never raised (a lost race changes nothing).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.orm import Session

from sparkplane.db.models import StateEvent
from sparkplane.db.repositories._rows import mirror

log = logging.getLogger(__name__)


class _Stateful(Protocol):
    id: Any
    state: Any
    version: Any


def transition(
    db: Session,
    row: _Stateful,
    *,
    entity: str,
    table: Mapping[Any, frozenset[Any]],
    to: enum.StrEnum,
    now: dt.datetime,
    reason: str | None = None,
    message: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Move `row` to `to`; False (and nothing written) if the table forbids it or a race was lost."""
    current = row.state
    allowed = {str(s) for s in table.get(current, frozenset())}
    if str(to) not in allowed:
        log.info("%s %s: %s -> %s is not a legal transition; ignored", entity, row.id, current, to)
        return False
    model = type(row)
    version = db.execute(
        update(model)
        .where(model.id == row.id, model.state == current)
        .values(state=str(to), version=model.version + 1, **(values or {}))
        .returning(model.version)
        .execution_options(synchronize_session=False)
    ).scalar()
    if version is None:
        log.info("%s %s: lost the race moving %s -> %s; someone else moved it first", entity, row.id, current, to)
        db.expire(row)
        return False
    # Flushed with the transaction's next statement or its commit: a watcher settling a page of rows sends
    # its events together instead of one round trip each.
    db.add(
        StateEvent(
            entity=entity,
            entity_id=row.id,
            from_state=str(current),
            to_state=str(to),
            reason=reason,
            message=message,
            created_at=now,
        )
    )
    mirror(db, row, {**(values or {}), "state": str(to), "version": version})
    log.info("%s %s: %s -> %s (%s)", entity, row.id, current, to, reason or "-")
    return True


def record_creation(db: Session, *, entity: str, entity_id: int, state: enum.StrEnum, now: dt.datetime) -> None:
    db.add(StateEvent(entity=entity, entity_id=entity_id, from_state=None, to_state=str(state), created_at=now))
