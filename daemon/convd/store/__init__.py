"""Storage: the domain's Store protocol on SQLite (aiosqlite). The only package with SQL.

The names below load on first use (PEP 562), not with the package: ``convd serve`` starts
``opening.StartedCheck`` (which needs only sqlite3) before it imports the rest of the daemon,
and the check runs on its own thread while those imports go on.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # once: later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted((*globals(), *__all__))
