"""Readiness checks for /readyz: can this process reach its database and its broker right now?"""

from __future__ import annotations

from sqlalchemy import text

from sparkplane.services.context import Context


def database_ok(ctx: Context) -> str | None:
    """None when the database answers, else the reason."""
    try:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


def broker_ok(ctx: Context) -> str | None:
    ping = getattr(ctx.dispatcher, "ping", None)
    if ping is None:
        return None
    try:
        ping()
    except Exception as exc:
        return f"broker unreachable: {type(exc).__name__}"
    return None
