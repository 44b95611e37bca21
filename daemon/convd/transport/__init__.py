"""Transport: bytes, framing and listeners. Knows nothing of JSON-RPC or conversations."""

from __future__ import annotations

from .framing import LineReader, LineTooLong
from .unix import AlreadyRunning, UnsafePath, bind_unix_listener, ensure_private_dir

__all__ = [
    "AlreadyRunning",
    "LineReader",
    "LineTooLong",
    "UnsafePath",
    "bind_unix_listener",
    "ensure_private_dir",
]
