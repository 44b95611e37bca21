"""Where the daemon keeps its database, and how much change history it keeps, by default.

Apart from ``config`` (whose ``Config`` needs msgspec) so that ``convd serve`` can start the
database's check before it imports anything heavy: the check then runs on its own thread
while the rest loads (``store.StartedCheck``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATABASE_ENV", "DEFAULT_KEPT_CHANGES", "DEFAULT_KEPT_SECONDS", "default_database_path"]

#: Overrides the database path (``--db`` overrides it in turn).
DATABASE_ENV = "CONVD_DB"

#: Changes kept per account so that a subscriber can resume (``--keep-changes``).
DEFAULT_KEPT_CHANGES = 10_000
#: And every change younger than this, within ten times that count (``--keep-changes-for``).
DEFAULT_KEPT_SECONDS = 7 * 86400


def default_database_path() -> Path:
    """``$CONVD_DB``, else ``$XDG_DATA_HOME/convd/convd.db`` (``~/.local/share`` by default)."""
    override = os.environ.get(DATABASE_ENV)
    if override:
        return Path(override)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "convd" / "convd.db"
