"""Alembic environment of the point database."""

from messaging.migrations import run_environment
from point_service.adapters.orm import metadata
from point_service.settings import PointServiceSettings

settings = PointServiceSettings()
run_environment(metadata, settings, settings.startup_timeout_s)
