"""Helpers shared by the repositories for rows already loaded in the session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ClauseElement

# For an UPDATE of one row by id whose loaded object the caller mirrors or expires itself: SQLAlchemy's default
# ("evaluate") would test the WHERE clause against every object in the session, which on a watcher's page of
# locked rows costs a Python evaluation per row per update.
UNSYNCED: dict[str, Any] = {"synchronize_session": False}


def mirror(db: Session, row: object, values: Mapping[str, Any]) -> None:
    """Show the values an UPDATE just wrote on the loaded row, without the SELECT that expiring it would
    cost on its next read (a watcher pass reads every row it updates: one round trip per row saved)."""
    if any(isinstance(v, ClauseElement) for v in values.values()):
        db.expire(row)  # an expression (x + 1): only the database knows the result
        return
    for key, value in values.items():
        set_committed_value(row, key, value)
