"""An index on idempotency_keys.created_at, for the retention purge.

The purge (messaging.inbox.retention) deletes the oldest expired keys in
batches; without the index every batch scans the whole table. Built
concurrently: the table may already be large, and POST /orders writes to it.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from messaging.migrations import create_index_concurrently, drop_index_concurrently

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    create_index_concurrently(op, "idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    drop_index_concurrently(op, "idempotency_keys_created_at", "idempotency_keys")
