"""live indexes: the watchers walk unfinished sessions and batches by id through partial indexes

The (state, last_observed_at) indexes they replace were rewritten whenever a pass
re-stamped last_observed_at on a row, and held every finished row too.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


# The unfinished states as they were at this revision (a migration never follows later changes to the models).
_LIVE_SESSION = "state IN ('busy', 'idle', 'not_started', 'recovering', 'shutting_down', 'starting')"
_LIVE_BATCH = "state IN ('not_started', 'running', 'starting')"


def upgrade() -> None:
    op.drop_index("ix_sessions_state_observed", table_name="sessions")
    op.drop_index("ix_batches_state_observed", table_name="batches")
    for name, table, states in (
        ("ix_sessions_live", "sessions", _LIVE_SESSION),
        ("ix_batches_live", "batches", _LIVE_BATCH),
    ):
        where = sa.text(states)
        op.create_index(name, table, ["id"], unique=False, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    op.drop_index("ix_batches_live", table_name="batches")
    op.drop_index("ix_sessions_live", table_name="sessions")
    op.create_index("ix_batches_state_observed", "batches", ["state", "last_observed_at"], unique=False)
    op.create_index("ix_sessions_state_observed", "sessions", ["state", "last_observed_at"], unique=False)
