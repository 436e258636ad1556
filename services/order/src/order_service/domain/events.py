"""What happened to an order: the order service's own domain events, plain
data. The service layer (service_layer/messages.py) decides which messages
each one sends, and where; nothing here knows the wire."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from order_service.domain.model import Line


@dataclass(frozen=True, kw_only=True)
class OrderPlaced:
    """An order was placed; its customer is told at `customer_email`."""

    order_id: uuid.UUID
    customer_id: str
    customer_email: str
    currency: str
    total: Decimal
    lines: tuple[Line, ...]
    placed_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderCancelled:
    order_id: uuid.UUID
    customer_id: str
    cancelled_at: datetime


Event = OrderPlaced | OrderCancelled
