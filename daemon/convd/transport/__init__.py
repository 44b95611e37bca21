"""Transport: bytes, framing and listeners. Knows nothing of JSON-RPC or conversations."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from convd_schemas.framing import LineReader, LineTooLong

from .channel import (
    SocketChannel,
    StreamChannel,
    UnixChannelListener,
    open_stream_channel,
)
from .peercred import PeerCredentials, describe_peer, peer_credentials
from .systemd import (
    ActivationError,
    InheritedSocket,
    Notifier,
    check_listening_unix_socket,
    listen_fds,
    pick_listen_fd,
)

if TYPE_CHECKING:
    from .pipe import NamedPipeChannelListener, PipeInUse

# Windows (issue 9): unix.py needs fcntl (the lock file), which Windows lacks; skipping it
# there lets the named-pipe listener (transport/pipe.py) import. Linux imports it as before.
if sys.platform != "win32":
    from .unix import (
        AlreadyRunning,
        UnsafePath,
        bind_unix_listener,
        ensure_private_dir,
        inherited_unix_listener,
    )

__all__ = [
    "ActivationError",
    "AlreadyRunning",
    "InheritedSocket",
    "LineReader",
    "LineTooLong",
    "NamedPipeChannelListener",
    "Notifier",
    "PeerCredentials",
    "PipeInUse",
    "SocketChannel",
    "StreamChannel",
    "UnixChannelListener",
    "UnsafePath",
    "bind_unix_listener",
    "check_listening_unix_socket",
    "describe_peer",
    "ensure_private_dir",
    "inherited_unix_listener",
    "listen_fds",
    "open_stream_channel",
    "peer_credentials",
    "pick_listen_fd",
]


def __getattr__(name: str) -> Any:
    # The named pipe (Windows) is imported on first use: on Linux it would only add its
    # import time (and convd_schemas.winpipe's) to the daemon's start-up.
    if name in ("NamedPipeChannelListener", "PipeInUse"):
        from . import pipe

        return getattr(pipe, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
