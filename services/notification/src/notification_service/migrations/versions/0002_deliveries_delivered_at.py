"""An index on deliveries.delivered_at, for the retention purge of the
delivery history (messaging.inbox.retention); built concurrently, as the
table may already be large and every delivery writes to it.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from messaging.migrations import create_index_concurrently, drop_index_concurrently

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    create_index_concurrently(op, "deliveries_delivered_at", "deliveries", ["delivered_at"])


def downgrade() -> None:
    drop_index_concurrently(op, "deliveries_delivered_at", "deliveries")
