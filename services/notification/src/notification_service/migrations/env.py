"""Alembic environment of the notification database."""

from messaging.migrations import run_environment
from notification_service.adapters.orm import metadata
from notification_service.settings import NotificationServiceSettings

settings = NotificationServiceSettings()
run_environment(metadata, settings, settings.startup_timeout_s)
