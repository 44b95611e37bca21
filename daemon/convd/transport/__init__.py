"""Transport: bytes, framing and listeners. Knows nothing of JSON-RPC or conversations."""

from __future__ import annotations

import sys

from convd_schemas.framing import LineReader, LineTooLong

from .channel import (
    SocketChannel,
    StreamChannel,
    UnixChannelListener,
    open_stream_channel,
)
from .peercred import PeerCredentials, describe_peer, peer_credentials
from .pipe import NamedPipeChannelListener, PipeInUse
from .systemd import (
    ActivationError,
    InheritedSocket,
    Notifier,
    check_listening_unix_socket,
    listen_fds,
    pick_listen_fd,
)

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
