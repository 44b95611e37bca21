"""Storage: the domain's Store protocol on SQLite (aiosqlite). The only package with SQL."""

from __future__ import annotations

from .maintenance import (
    DatabaseInUse,
    MaintenanceError,
    RestoreResult,
    lock_database,
    restore_database,
)
from .migrations import SCHEMA_VERSION
from .sqlite import DatabaseError, SqliteStore, open_store

__all__ = [
    "SCHEMA_VERSION",
    "DatabaseError",
    "DatabaseInUse",
    "MaintenanceError",
    "RestoreResult",
    "SqliteStore",
    "lock_database",
    "open_store",
    "restore_database",
]
