"""Who is at the other end of a Unix socket: ``SO_PEERCRED`` on Linux, ``getpeereid`` on
the BSDs and macOS.

Both sides use it: the daemon admits only its owner's connections, and a client talks only to
a daemon run by its own user (a socket path in a shared directory could be squatted).
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from typing import NamedTuple

from anyio.abc import AnyByteReceiveStream, SocketAttribute

__all__ = ["PeerCredentials", "describe_peer", "peer_credentials", "raw_unix_socket"]


class PeerCredentials(NamedTuple):
    pid: int | None  # None where the platform does not say
    uid: int
    gid: int | None

    def __str__(self) -> str:
        pid = "?" if self.pid is None else str(self.pid)
        gid = "?" if self.gid is None else str(self.gid)
        return f"pid {pid} uid {self.uid} gid {gid}"


def _getpeereid(sock: socket.socket) -> PeerCredentials:
    # BSD/macOS only: ctypes is imported here so that Linux never pays for it.
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    uid, gid = ctypes.c_uint32(), ctypes.c_uint32()
    if libc.getpeereid(sock.fileno(), ctypes.byref(uid), ctypes.byref(gid)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return PeerCredentials(None, uid.value, gid.value)


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """Who connected ``sock`` (a connected AF_UNIX socket); raises OSError if unknown."""
    if sys.platform == "linux":
        data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", data)
        return PeerCredentials(pid, uid, gid)
    return _getpeereid(sock)


def raw_unix_socket(stream: AnyByteReceiveStream) -> socket.socket | None:
    raw: socket.socket | None = stream.extra(SocketAttribute.raw_socket, None)
    return raw if raw is not None and raw.family == socket.AF_UNIX else None


def describe_peer(stream: AnyByteReceiveStream) -> str:
    """``"pid N uid N gid N"`` for a Unix-socket stream; ``""`` for anything else."""
    raw = raw_unix_socket(stream)
    if raw is None:
        return ""
    try:
        return str(peer_credentials(raw))
    except OSError:
        return ""
