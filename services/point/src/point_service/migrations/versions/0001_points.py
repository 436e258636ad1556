"""Ledger, balances, inbox and outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from messaging.inbox.migration import create_inbox, drop_inbox
from messaging.migrations import now_column
from messaging.outbox.migration import create_outbox, drop_outbox

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "point_balances",
        sa.Column("customer_id", sa.Text(), primary_key=True),
        sa.Column("balance", sa.Integer(), nullable=False),
        now_column("updated_at"),
        sa.CheckConstraint("balance >= 0", name="point_balances_not_negative"),
    )
    op.create_table(
        "point_ledger",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Uuid()),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        now_column("created_at"),
        sa.CheckConstraint("kind in ('grant', 'revoke', 'adjustment')", name="point_ledger_kind"),
    )
    op.create_index(
        "point_ledger_one_per_order",
        "point_ledger",
        ["order_id", "kind"],
        unique=True,
        postgresql_where=sa.text("order_id is not null"),
    )
    op.create_index("point_ledger_by_customer", "point_ledger", ["customer_id", "id"])
    create_inbox(op)
    create_outbox(op)


def downgrade() -> None:
    drop_outbox(op)
    drop_inbox(op)
    op.drop_table("point_ledger")
    op.drop_table("point_balances")
