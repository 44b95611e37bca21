"""Where the daemon listens by default; daemon and clients resolve it the same way."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SOCKET_ENV", "default_runtime_dir", "default_socket_path"]

#: Overrides the socket path for the daemon and every client.
SOCKET_ENV = "CONVD_SOCKET"


def default_runtime_dir() -> tuple[Path, bool]:
    """``$XDG_RUNTIME_DIR/convd``, or a private per-user fallback when the variable is unset.

    The flag is True when the fallback was used (the XDG spec asks callers to warn then).
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "convd", False
    import tempfile  # only this fallback needs it: kept off the daemon's start-up path

    return Path(tempfile.gettempdir()) / f"convd-{os.getuid()}", True


def default_socket_path() -> Path:
    """``$CONVD_SOCKET`` if set, else ``convd.sock`` in the runtime directory."""
    override = os.environ.get(SOCKET_ENV)
    if override:
        return Path(override)
    return default_runtime_dir()[0] / "convd.sock"
