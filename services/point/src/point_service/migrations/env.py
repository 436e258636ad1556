"""Alembic environment of the point database."""

from messaging.migrations import run_environment
from point_service.adapters.orm import metadata
from point_service.settings import PointServiceSettings

run_environment(metadata, PointServiceSettings())
