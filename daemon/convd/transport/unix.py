"""A Unix-socket listener that is safe to start twice and cleans up after itself."""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path

import anyio
from anyio.abc import SocketListener

from convd_schemas.peer import peer_credentials

from ..lockfile import LockFile, LockHeld, Role

__all__ = [
    "AlreadyRunning",
    "UnsafePath",
    "bind_unix_listener",
    "claim_socket_path",
    "ensure_private_dir",
    "inherited_unix_listener",
    "listen_on_claimed_path",
    "socket_lock_path",
]

logger = logging.getLogger(__name__)

# sun_path holds 108 bytes on Linux (104 on macOS), the terminating NUL included.
_MAX_SOCKET_PATH = 107


class AlreadyRunning(Exception):
    """Another daemon is serving this socket path."""


class UnsafePath(Exception):
    """The socket's directory or path cannot be used, or could let someone else in; the
    message says the fix."""


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` 0700, or check that the existing one is ours and 0700."""
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        # A runtime directory that is gone (XDG_RUNTIME_DIR kept after logout), a path
        # through a file, a read-only or foreign directory: the user's to fix, in one line.
        raise UnsafePath(
            f"cannot create the socket's directory {directory}: {exc.strerror or exc}; "
            "choose another --socket (or XDG_RUNTIME_DIR)"
        ) from None
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{directory} is not a directory; remove it and start convd again")
    if info.st_uid != os.getuid():
        raise UnsafePath(
            f"{directory} is owned by uid {info.st_uid}, not by you (uid {os.getuid()}); "
            f"another user could replace the socket. Remove it (rm -r {directory}) or "
            "choose another --socket"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise UnsafePath(
            f"{directory} has mode {stat.S_IMODE(info.st_mode):04o}; other users could reach "
            f"the socket. Fix it with: chmod 700 {directory}"
        )


def socket_lock_path(socket_path: Path) -> Path:
    """The lock file a daemon that binds ``socket_path`` holds beside it."""
    return socket_path.with_name(socket_path.name + ".lock")


def _acquire_lock(lock_path: Path, socket_path: Path, role: Role) -> LockFile:
    try:
        return LockFile.acquire(lock_path, role)
    except LockHeld as held:
        if held.holder is None:
            raise AlreadyRunning(
                f"another convd is already serving {socket_path} (it holds {lock_path})"
            ) from None
        raise AlreadyRunning(
            f"another {held.holder.describe()} is already serving {socket_path} "
            f"(it holds {lock_path}); {held.holder.stop_hint()}"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(
                f"{lock_path} is a symbolic link; remove it and start convd again"
            ) from None
        reason = exc.strerror or exc
        raise UnsafePath(
            f"cannot create the lock file {lock_path}: {reason}; choose another --socket"
        ) from None


def _describe_listener(probe: socket.socket) -> str:
    """``another process (pid 42, systemd)``: who accepted the probe, as far as we can tell."""
    with suppress(OSError):
        pid = peer_credentials(probe).pid
        if pid:
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                return f"another process (pid {pid})"
            return f"another process (pid {pid}, {name})"
    return "another process"


def _remove_stale_socket(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        # Never follow or replace a symlink or file planted at the socket path.
        raise UnsafePath(f"{path} exists and is not a socket; remove it and start convd again")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        logger.info("removing stale socket %s left by a daemon that did not stop", path)
        with suppress(FileNotFoundError):
            path.unlink()
    else:
        who = _describe_listener(probe)
        hint = (
            "it is a systemd socket unit: connect to it, or stop it with: "
            "systemctl --user stop convd.socket convd.service"
            if who.endswith(", systemd)")
            else "stop it, or choose another --socket"
        )
        raise AlreadyRunning(f"{who} is accepting connections on {path}; {hint}")
    finally:
        probe.close()


@contextmanager
def claim_socket_path(path: Path, role: Role = "foreground") -> Iterator[None]:
    """Everything that can refuse a socket path, done before the daemon creates anything else.

    Checks the path's length and its directory (created 0700 if missing), takes the lock file
    beside the socket (naming the holder if another convd has it) and removes a socket left by
    a crash. The lock is held, and its file removed, when the block exits.
    """
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise UnsafePath(f"socket path {path} is longer than {_MAX_SOCKET_PATH} bytes")
    ensure_private_dir(path.parent)
    lock = _acquire_lock(socket_lock_path(path), path, role)
    try:
        _remove_stale_socket(path)
        yield
    finally:
        lock.release()


@asynccontextmanager
async def listen_on_claimed_path(path: Path) -> AsyncIterator[SocketListener]:
    """Listen on ``path`` (mode 0600) inside ``claim_socket_path(path)``; remove it on exit."""
    # Again, right before binding: cheap, and nothing may have appeared since the claim.
    _remove_stale_socket(path)
    listener = await anyio.create_unix_listener(path, mode=0o600)
    bound = os.lstat(path)
    try:
        yield listener
    finally:
        with anyio.CancelScope(shield=True):
            await listener.aclose()
        # Remove the file only if it is still the socket we bound.
        with suppress(FileNotFoundError):
            current = os.lstat(path)
            if (current.st_dev, current.st_ino) == (bound.st_dev, bound.st_ino):
                path.unlink()


@asynccontextmanager
async def bind_unix_listener(
    path: Path, role: Role = "foreground"
) -> AsyncIterator[SocketListener]:
    """Listen on ``path`` (mode 0600, in a private directory) until the context exits.

    A lock file beside the socket keeps a second daemon from stealing the path (anyio's
    listener would silently unlink a live socket); a socket left by a crash is removed.
    """
    with claim_socket_path(path, role):
        async with listen_on_claimed_path(path) as listener:
            yield listener


@asynccontextmanager
async def inherited_unix_listener(fd: int, path: str) -> AsyncIterator[SocketListener]:
    """Serve on a listening socket passed by the service manager (socket activation).

    ``path`` is where it is bound (``@name`` if abstract). Its directory must be private, as
    for a socket convd binds itself. The file belongs to the manager: it outlives this
    process (clients that connect while the daemon restarts wait in the backlog) and is
    never unlinked here.
    """
    if path.startswith("/"):
        ensure_private_dir(Path(path).parent)
    listener = await SocketListener.from_socket(fd)
    try:
        yield listener
    finally:
        with anyio.CancelScope(shield=True):
            await listener.aclose()
