"""Alembic environment of the order database."""

from messaging.migrations import run_environment
from order_service.adapters.orm import metadata
from order_service.settings import OrderServiceSettings

settings = OrderServiceSettings()
run_environment(metadata, settings, settings.startup_timeout_s)
