"""Every table the services declare has a stated bound in docs/messaging.md
("Every store and what bounds it"), and every table named there exists: a
new table cannot land without someone deciding what keeps it from growing
forever."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import MetaData

from notification_service.adapters import orm as notification_orm
from order_service.adapters import orm as order_orm
from point_service.adapters import orm as point_orm

DOC = Path(__file__).resolve().parents[2] / "docs" / "messaging.md"
METADATA: dict[str, MetaData] = {
    "order-service": order_orm.metadata,
    "point-service": point_orm.metadata,
    "notification-service": notification_orm.metadata,
}


def documented_tables() -> dict[str, str]:
    """Table name -> its bound, from the first column of the section's table
    (rows about Kafka or RabbitMQ are broker destinations, not tables)."""
    text = DOC.read_text()
    section = text.split("## Every store and what bounds it", 1)[1].split("\n## ", 1)[0]
    bounds: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in {"store", "---"}:
            continue
        store, bound = cells
        if store.startswith(("Kafka", "RabbitMQ")):
            continue
        for name in re.findall(r"`([a-z_]+)`", store):
            bounds[name] = bound
    return bounds


def test_every_declared_table_has_a_stated_bound() -> None:
    documented = documented_tables()
    declared = {name for metadata in METADATA.values() for name in metadata.tables}
    assert declared, "no table found in the services' metadata"
    assert declared - documented.keys() == set(), "tables without a stated bound"
    assert documented.keys() - declared == set(), "documented tables no service declares"


def test_a_bound_is_a_purge_or_a_business_record() -> None:
    for name, bound in documented_tables().items():
        assert bound.startswith(("purged", "business record", "sent and dropped rows purged")), (
            f"{name}: {bound!r} states neither a purge nor a business record"
        )
