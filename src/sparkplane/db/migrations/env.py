"""Alembic environment: the URL comes from sparkplane's settings (or the caller's config), never a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from sparkplane.db import models  # noqa: F401  (registers the tables on the metadata)
from sparkplane.db.base import Base, make_engine

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
