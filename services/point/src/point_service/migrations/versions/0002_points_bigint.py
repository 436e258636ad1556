"""Points and balances as bigint: the order API accepts totals up to
numeric(14,2), whose points (and a customer's sum of them) overflow a
32-bit integer; the database would refuse such a grant, and it would be
dead-lettered.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.alter_column("point_balances", "balance", type_=sa.BigInteger(), existing_nullable=False)
    op.alter_column("point_ledger", "points", type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    op.alter_column("point_ledger", "points", type_=sa.Integer(), existing_nullable=False)
    op.alter_column("point_balances", "balance", type_=sa.Integer(), existing_nullable=False)
