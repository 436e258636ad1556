"""Inbox and delivery log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from messaging.inbox.migration import create_inbox, drop_inbox
from messaging.migrations import now_column

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_inbox(op)
    op.create_table(
        "deliveries",
        sa.Column("message_id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        now_column("delivered_at"),
    )


def downgrade() -> None:
    op.drop_table("deliveries")
    drop_inbox(op)
