"""The two halves of systemd's daemon protocol, by hand: sd_notify(3) and sd_listen_fds(3).

Both are no-ops without systemd: no ``NOTIFY_SOCKET`` means nothing is sent, no (or someone
else's) ``LISTEN_FDS`` means no sockets were passed and the daemon binds its own.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping

__all__ = [
    "LISTEN_FDS_START",
    "ActivationError",
    "InheritedSocket",
    "Notifier",
    "check_listening_unix_socket",
    "listen_fds",
    "pick_listen_fd",
]

logger = logging.getLogger(__name__)

#: The first passed descriptor (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3
_ACTIVATION_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ActivationError(Exception):
    """The service manager passed something the daemon cannot serve on."""


class InheritedSocket:
    __slots__ = ("fd", "name")

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name

    def __repr__(self) -> str:
        return f"InheritedSocket(fd={self.fd}, name={self.name!r})"


def listen_fds(
    environ: MutableMapping[str, str] | None = None,
    *,
    pid: int | None = None,
    start: int = LISTEN_FDS_START,
) -> list[InheritedSocket]:
    """The descriptors passed to this process, as sd_listen_fds_with_names(unset=1) does.

    ``LISTEN_PID`` must name this process (else the variables were meant for a parent and
    are ignored). The three variables are removed in every case, so that no child inherits
    them, and the descriptors are made close-on-exec.
    """
    env = os.environ if environ is None else environ
    values = {name: env.pop(name, None) for name in _ACTIVATION_VARS}
    listen_pid, count_text, names_text = (values[name] for name in _ACTIVATION_VARS)
    if listen_pid is None or count_text is None:
        return []
    try:
        target, count = int(listen_pid), int(count_text)
    except ValueError:
        raise ActivationError(
            f"LISTEN_PID={listen_pid!r} / LISTEN_FDS={count_text!r} are not numbers"
        ) from None
    if target != (os.getpid() if pid is None else pid):
        logger.debug("LISTEN_FDS are meant for pid %d, not this process; ignored", target)
        return []
    if count < 0:
        raise ActivationError(f"LISTEN_FDS={count} is negative")
    names = names_text.split(":") if names_text else []
    if len(names) != count:
        # sd_listen_fds_with_names(3) falls back to "unknown" for every fd.
        names = ["unknown"] * count
    passed = [InheritedSocket(start + i, names[i]) for i in range(count)]
    for inherited in passed:
        try:
            os.set_inheritable(inherited.fd, False)
        except OSError as exc:
            raise ActivationError(f"passed descriptor {inherited.fd} is not open: {exc}") from None
    return passed


def pick_listen_fd(passed: list[InheritedSocket], name: str) -> InheritedSocket:
    """The descriptor named ``name`` (``FileDescriptorName=``), or the only one passed."""
    for inherited in passed:
        if inherited.name == name:
            return inherited
    if len(passed) == 1:
        return passed[0]
    raise ActivationError(
        f"systemd passed {len(passed)} sockets ({', '.join(s.name for s in passed)}) and none "
        f"is named {name!r}; set FileDescriptorName={name} in the .socket unit"
    )


def check_listening_unix_socket(fd: int) -> str:
    """Check that ``fd`` is a listening AF_UNIX stream socket; return its address: a path,
    ``@name`` for the abstract namespace, ``""`` if unnamed."""
    # socket.socket(fileno=...) would take ownership of fd; a dup keeps the original open.
    with socket.socket(fileno=os.dup(fd)) as sock:
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ActivationError(
                f"passed descriptor {fd} is a {sock.family.name}/{sock.type.name} socket; "
                "convd needs a Unix stream socket (ListenStream=/path in the .socket unit)"
            )
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ActivationError(f"passed descriptor {fd} is not listening (use Accept=no)")
        address = sock.getsockname()
    if isinstance(address, bytes):  # Linux abstract namespace, or unnamed
        return "@" + address[1:].decode(errors="replace") if address else ""
    return str(address)


class Notifier:
    """Sends sd_notify(3) messages to the manager, if there is one (``NOTIFY_SOCKET``)."""

    def __init__(self, address: str | None) -> None:
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # Linux abstract namespace
        self._address = address or None

    @classmethod
    def from_environ(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) as one datagram; True if sent."""
        if self._address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message)
        except OSError as exc:
            # Never fatal: the daemon serves whether or not the manager hears it.
            logger.warning("cannot notify the service manager (%s): %s", fields[0], exc)
            return False
        return True

    @staticmethod
    def watchdog_interval(environ: MutableMapping[str, str] | None = None) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None."""
        env = os.environ if environ is None else environ
        usec, watchdog_pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
        if not usec:
            return None
        if watchdog_pid and watchdog_pid != str(os.getpid()):
            return None
        try:
            interval = int(usec)
        except ValueError:
            logger.warning("ignoring WATCHDOG_USEC=%r: not a number", usec)
            return None
        return interval / 2 / 1_000_000 if interval > 0 else None
