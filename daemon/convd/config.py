"""The daemon's configuration: where its socket and database are, and what it keeps.

The defaults that need nothing but the standard library are in ``defaults``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from convd_schemas.limits import DEFAULT_DRAFT_HISTORY, DEFAULT_DRAFT_HISTORY_SECONDS
from convd_schemas.paths import default_runtime_dir, default_socket_path

from .defaults import DEFAULT_KEPT_CHANGES, DEFAULT_KEPT_SECONDS, default_database_path

__all__ = [
    "DEFAULT_KEPT_CHANGES",
    "DEFAULT_KEPT_SECONDS",
    "Config",
    "Durability",
    "default_database_path",
]

#: ``full``: every commit is fsynced before anyone is answered (survives power loss).
#: ``everysec``: commits reach the OS before anyone is answered (survive a crash of convd) and
#: are fsynced at least once a second (power loss may take the last second), as Redis's
#: ``appendfsync everysec``.
Durability = Literal["full", "everysec"]


class Config(msgspec.Struct, frozen=True, kw_only=True):
    socket_path: Path
    database_path: Path
    #: True when XDG_RUNTIME_DIR was unset and a private fallback directory is used.
    runtime_dir_fallback: bool = False
    durability: Durability = "full"
    #: Changes kept per account for subscribers that resume (older ones are pruned).
    kept_changes: int = DEFAULT_KEPT_CHANGES
    #: ... and those younger than this many seconds (0: no age bound), within 10 x that count.
    kept_seconds: int = DEFAULT_KEPT_SECONDS
    #: How this daemon was started, written into its lock files so that a refused second
    #: convd can say how to stop it: "systemd" when a service manager runs it.
    role: Literal["systemd", "foreground"] = "foreground"
    #: Draft history: versions kept per conversation (``--draft-history``, 0: none) ...
    draft_history: int = DEFAULT_DRAFT_HISTORY
    #: ... none older than this many seconds (``--draft-history-for``, 0: no age bound).
    draft_history_seconds: int = DEFAULT_DRAFT_HISTORY_SECONDS
    #: While writes queue up, the event loop and the writer share a CPU (``--same-cpu``).
    same_cpu: bool = True

    @classmethod
    def resolve(
        cls,
        socket: Path | None = None,
        database: Path | None = None,
        *,
        durability: Durability = "full",
        kept_changes: int = DEFAULT_KEPT_CHANGES,
        kept_seconds: int = DEFAULT_KEPT_SECONDS,
        draft_history: int = DEFAULT_DRAFT_HISTORY,
        draft_history_seconds: int = DEFAULT_DRAFT_HISTORY_SECONDS,
        same_cpu: bool = True,
    ) -> Config:
        fallback = False
        if socket is None:
            socket = default_socket_path()
            fallback = "CONVD_SOCKET" not in os.environ and default_runtime_dir()[1]
        return cls(
            socket_path=socket,
            database_path=database or default_database_path(),
            runtime_dir_fallback=fallback,
            durability=durability,
            kept_changes=kept_changes,
            kept_seconds=kept_seconds,
            # systemd sets INVOCATION_ID for every unit it starts.
            role="systemd" if os.environ.get("INVOCATION_ID") else "foreground",
            draft_history=draft_history,
            draft_history_seconds=draft_history_seconds,
            same_cpu=same_cpu,
        )
