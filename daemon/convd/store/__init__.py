"""Storage: the domain's Store protocol on SQLite (aiosqlite). The only package with SQL.

The names below load on first use (PEP 562), not with the package: ``convd serve`` starts
``opening.StartedCheck`` (which needs only sqlite3) before it imports the rest of the daemon,
and the check runs on its own thread while those imports go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convd_schemas._lazy import lazy_names

if TYPE_CHECKING:
    from .maintenance import (
        DatabaseInUse,
        MaintenanceError,
        RestoreResult,
        lock_database,
        restore_database,
    )
    from .migrations import SCHEMA_VERSION
    from .opening import DatabaseError, StartedCheck
    from .sqlite import SqliteStore, open_store

__all__ = [
    "SCHEMA_VERSION",
    "DatabaseError",
    "DatabaseInUse",
    "MaintenanceError",
    "RestoreResult",
    "SqliteStore",
    "StartedCheck",
    "lock_database",
    "open_store",
    "restore_database",
]

#: Where each public name lives.
_HOMES = {
    "SCHEMA_VERSION": ".migrations",
    "DatabaseError": ".opening",
    "DatabaseInUse": ".maintenance",
    "MaintenanceError": ".maintenance",
    "RestoreResult": ".maintenance",
    "SqliteStore": ".sqlite",
    "StartedCheck": ".opening",
    "lock_database": ".maintenance",
    "open_store": ".sqlite",
    "restore_database": ".maintenance",
}

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_names(__name__, _HOMES)
