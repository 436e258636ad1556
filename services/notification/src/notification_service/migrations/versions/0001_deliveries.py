"""Inbox and delivery log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from messaging.inbox.migration import create_inbox, drop_inbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox(op)
    op.create_table(
        "deliveries",
        sa.Column("message_id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "delivered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("deliveries")
    drop_inbox(op)
