"""Storage: the domain's Store protocol on SQLite (aiosqlite). The only package with SQL."""

from __future__ import annotations

from .migrations import SCHEMA_VERSION
from .sqlite import DatabaseError, SqliteStore, open_store

__all__ = ["SCHEMA_VERSION", "DatabaseError", "SqliteStore", "open_store"]
