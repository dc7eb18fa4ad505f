"""web_logins: browsers' logins to the web UI (cookie secret hashed, CSRF token, expiry)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sparkplane.db.base

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_logins",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sparkplane.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sparkplane.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sparkplane.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_web_logins_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_logins")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_logins_token_hash")),
    )
    op.create_index(op.f("ix_web_logins_user_id"), "web_logins", ["user_id"], unique=False)
    op.create_index(op.f("ix_web_logins_expires_at"), "web_logins", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_web_logins_expires_at"), table_name="web_logins")
    op.drop_index(op.f("ix_web_logins_user_id"), table_name="web_logins")
    op.drop_table("web_logins")
