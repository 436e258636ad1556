"""An index on orders.created_at, for GET /orders without a customer (the
live page's state: everyone's newest orders); without it each such request
sorts the whole table. Built concurrently: the table may already be large,
and POST /orders writes to it.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from messaging.migrations import create_index_concurrently, drop_index_concurrently

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    create_index_concurrently(op, "orders_created_at", "orders", ["created_at"])


def downgrade() -> None:
    drop_index_concurrently(op, "orders_created_at", "orders")
