"""An index on deliveries.delivered_at, for the retention purge of the
delivery history (messaging.inbox.retention); built concurrently, as the
table may already be large and every delivery writes to it.

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
            "deliveries_delivered_at",
            "deliveries",
            ["delivered_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "deliveries_delivered_at",
            table_name="deliveries",
            postgresql_concurrently=True,
            if_exists=True,
        )
