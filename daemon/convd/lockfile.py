"""Lock files that say who holds them: one convd per socket, one user of a database at a time.

A lock is an exclusive ``flock`` on a small file holding ``"<pid> <role>"``, so that a refused
process can name the holder and say how to stop it. The file is removed when the lock is
released: a clean shutdown leaves nothing behind. A process that opened the old file just
before it was removed finds, once it gets the lock, that the path no longer names the file it
locked, and starts over with the new one; so removing the file never lets two processes in.
"""

from __future__ import annotations

import errno
import fcntl
import os
from contextlib import suppress
from pathlib import Path
from typing import Final, Literal

__all__ = ["Holder", "LockFile", "LockHeld", "Role", "is_locked", "read_holder"]

#: How the holder runs: under systemd (a unit), in the foreground (a terminal, a script),
#: or as ``convd restore``. It decides which way to stop it a refusal suggests.
Role = Literal["systemd", "foreground", "restore"]
_ROLES: Final = frozenset({"systemd", "foreground", "restore"})


class Holder:
    """Who holds a lock, as written in its file."""

    __slots__ = ("pid", "role")

    def __init__(self, pid: int, role: Role) -> None:
        self.pid = pid
        self.role: Role = role

    def __repr__(self) -> str:
        return f"Holder({self.pid}, {self.role!r})"

    def describe(self) -> str:
        """``convd (pid 42)``, ``convd restore (pid 42)``."""
        what = "convd restore" if self.role == "restore" else "convd"
        return f"{what} (pid {self.pid})"

    def stop_hint(self) -> str:
        """How to stop the holder, for the way it was started."""
        if self.role == "systemd":
            return "stop it with: systemctl --user stop convd.socket convd.service"
        if self.role == "restore":
            return "wait for it to finish"
        return f"stop it with: kill {self.pid} (or Ctrl-C where it runs)"


class LockHeld(Exception):
    """Someone else holds the lock; ``holder`` is None when its file does not say who."""

    def __init__(self, path: Path, holder: Holder | None) -> None:
        who = holder.describe() if holder else "another process"
        super().__init__(f"{path} is locked by {who}")
        self.path = path
        self.holder = holder


def _parse(text: str) -> Holder | None:
    fields = text.split()
    if len(fields) != 2 or not fields[0].isdigit() or fields[1] not in _ROLES:
        return None
    role: Role = fields[1]  # type: ignore[assignment]
    return Holder(int(fields[0]), role)


def _read_fd(fd: int) -> Holder | None:
    try:
        return _parse(os.pread(fd, 64, 0).decode("ascii", "replace"))
    except OSError:
        return None


def is_locked(path: Path) -> bool:
    """True while someone holds the lock at ``path``. Only looks: creates and takes nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        # A shared lock conflicts only with the holder's exclusive one; let go at once.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def read_holder(path: Path) -> Holder | None:
    """Who holds the lock at ``path`` as its file says (None if it does not say, or no file).

    Does not check that the lock is held: see ``is_locked``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        return _read_fd(fd)
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


class LockFile:
    """An exclusive lock on ``path``, held until ``release()``."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, role: Role) -> LockFile:
        """Take the lock or raise LockHeld. Never follows a symlink (OSError ELOOP)."""
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_fd(fd)
                os.close(fd)
                raise LockHeld(path, holder) from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, path):
                break
            # The previous holder removed the file between our open and our lock.
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {role}\n".encode(), 0)
        except OSError:
            os.close(fd)
            raise
        return cls(path, fd)

    def release(self) -> None:
        """Remove the file (still under the lock, so no one else holds it), then unlock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, path := self.path):
                with suppress(FileNotFoundError):
                    path.unlink()
        except OSError as exc:  # a read-only directory: the file stays, harmlessly
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
        finally:
            os.close(fd)
