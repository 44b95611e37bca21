"""The daemon-less peer: every process writes one shared SQLite file directly.

What an application could do instead of asking convd: stdlib ``sqlite3``, WAL, one UPSERT per
transaction (autocommit), ``synchronous`` FULL (like ``convd --durability=full``) or NORMAL (like
``--durability=everysec``, minus the once-a-second fsync), a 5 s busy timeout. It has no events,
no revisions checked across processes and no validation: a floor for the storage alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from _convd import conv_ids, draft_text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS draft (
    conv_id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    revision INTEGER NOT NULL,
    edit_time INTEGER NOT NULL
)
"""
_UPSERT = (
    "INSERT INTO draft (conv_id, text, revision, edit_time) VALUES (?, ?, 1, ?) "
    "ON CONFLICT (conv_id) DO UPDATE SET text = excluded.text, "
    "revision = draft.revision + 1, edit_time = excluded.edit_time"
)


def version() -> str:
    return f"SQLite {sqlite3.sqlite_version}"


def create(path: Path) -> None:
    """A fresh WAL database with the peer's one table."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
    finally:
        db.close()


def upsert_op(
    path: str, index: int, synchronous: str
) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(op, close): op(counter) is one UPSERT in its own transaction on this process's 100 ids;
    ``sqlite3.OperationalError`` (e.g. "database is locked" past the busy timeout) propagates and
    is counted by the caller as an error."""
    db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    db.execute(f"PRAGMA synchronous={synchronous}")
    ids = conv_ids(f"w{index}")

    def op(counter: int) -> None:
        db.execute(_UPSERT, (ids[counter % 100], draft_text(counter), counter))

    return op, db.close
