"""deliveries.order_id: the order a mail is about (order and points mails,
from their command's CloudEvents subject), nullable (other mails, and those
delivered before), indexed for GET /deliveries?order_id=... . Adding a
nullable column without a default only changes the catalogue; the index is
built concurrently, as every delivery writes to the table.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from messaging.migrations import create_index_concurrently, drop_index_concurrently

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("order_id", sa.Uuid(), nullable=True))
    create_index_concurrently(op, "deliveries_order_id", "deliveries", ["order_id"])


def downgrade() -> None:
    drop_index_concurrently(op, "deliveries_order_id", "deliveries")
    op.drop_column("deliveries", "order_id")
