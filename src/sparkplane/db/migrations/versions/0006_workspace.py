"""workspace: folders, notebooks and their cells

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 03:55:04.926466

Numbered after the web branch's 0005_web_logins, merged into this branch.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import sparkplane.db.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_folders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("parent_key", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sparkplane.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sparkplane.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_workspace_folders_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["workspace_folders.id"],
            name=op.f("fk_workspace_folders_parent_id_workspace_folders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_folders")),
        sa.UniqueConstraint("owner_id", "parent_key", "name", name="uq_workspace_folders_name"),
    )
    with op.batch_alter_table("workspace_folders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workspace_folders_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_workspace_folders_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "notebooks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("folder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("folder_key", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("owns_session", sa.Boolean(), nullable=False),
        sa.Column(
            "run_queue", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("created_at", sparkplane.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sparkplane.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["workspace_folders.id"],
            name=op.f("fk_notebooks_folder_id_workspace_folders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_notebooks_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_notebooks_session_id_sessions"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notebooks")),
        sa.UniqueConstraint("owner_id", "folder_key", "name", name="uq_notebooks_name"),
    )
    with op.batch_alter_table("notebooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notebooks_folder_id"), ["folder_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notebooks_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notebooks_session_id"), ["session_id"], unique=False)

    op.create_table(
        "notebook_cells",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("notebook_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("statement_session_id", sa.BigInteger(), nullable=True),
        sa.Column("statement_number", sa.Integer(), nullable=True),
        sa.Column(
            "output", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("execution_count", sa.Integer(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("updated_at", sparkplane.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["notebook_id"], ["notebooks.id"], name=op.f("fk_notebook_cells_notebook_id_notebooks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notebook_cells")),
    )
    with op.batch_alter_table("notebook_cells", schema=None) as batch_op:
        batch_op.create_index("ix_notebook_cells_notebook_position", ["notebook_id", "position"], unique=False)
        batch_op.create_index("ix_notebook_cells_state", ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notebook_cells", schema=None) as batch_op:
        batch_op.drop_index("ix_notebook_cells_state")
        batch_op.drop_index("ix_notebook_cells_notebook_position")

    op.drop_table("notebook_cells")
    with op.batch_alter_table("notebooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notebooks_session_id"))
        batch_op.drop_index(batch_op.f("ix_notebooks_owner_id"))
        batch_op.drop_index(batch_op.f("ix_notebooks_folder_id"))

    op.drop_table("notebooks")
    with op.batch_alter_table("workspace_folders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workspace_folders_parent_id"))
        batch_op.drop_index(batch_op.f("ix_workspace_folders_owner_id"))

    op.drop_table("workspace_folders")
