"""An index on idempotency_keys.created_at, for the retention purge.

The purge (messaging.inbox.retention) deletes the oldest expired keys in
batches; without the index every batch scans the whole table. Built
concurrently: the table may already be large, and POST /orders writes to it.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "idempotency_keys_created_at",
            "idempotency_keys",
            ["created_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "idempotency_keys_created_at",
            table_name="idempotency_keys",
            postgresql_concurrently=True,
            if_exists=True,
        )
