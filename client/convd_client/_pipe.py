"""The client's connector on Windows: the daemon's named pipe, served by this user only.

The counterpart of :class:`~convd_client._supervisor.UnixConnector`: the client library's
default connector on Windows (see ``Client``), a ``Connector`` returning an anyio byte stream
(:class:`~convd_schemas.winpipe.PipeStream`). Before a byte is sent, the pipe's server process
is looked up (``GetNamedPipeServerProcessId``, then its token's user SID) and refused unless it
runs as this user: the pipe namespace is shared by every account on the machine, so another
one could have created the name first. The Win32 calls are behind ``winpipe.PipeSystem``; the
Linux test suite runs this module against a fake of it (tests/client/test_pipe_connector.py).
"""

from __future__ import annotations

import logging
import os

from anyio.abc import ByteStream

from convd_schemas.winpipe import (
    ERROR_FILE_NOT_FOUND,
    PipeStream,
    PipeSystem,
    check_pipe_name,
    default_pipe_name,
    refuse_server,
    retry_while_busy,
    win32_pipes,
)

from .errors import DaemonUnavailable

__all__ = ["NamedPipeConnector", "default_pipe_connector"]

logger = logging.getLogger("convd_client")


class NamedPipeConnector:
    """Opens the daemon's pipe ``name``, refusing it unless ``expected_sid`` serves it.

    :param name: the pipe (``winpipe.default_pipe_name``)
    :param expected_sid: the user the daemon must run as (default: this process's user)
    :param system: the Win32 calls (default: the real ones; Windows only)
    """

    def __init__(
        self, name: str, expected_sid: str | None = None, *, system: PipeSystem | None = None
    ) -> None:
        self._system = system if system is not None else win32_pipes()
        self.name = name
        self.expected_sid = (
            expected_sid if expected_sid is not None else self._system.current_user_sid()
        )

    async def __call__(self) -> ByteStream:
        try:
            # Every instance busy: poll until one listens (the caller's timeout bounds it).
            pipe = await retry_while_busy(lambda: self._system.open_client_pipe(self.name))
        except OSError as exc:
            if (
                isinstance(exc, FileNotFoundError)
                or getattr(exc, "winerror", None) == ERROR_FILE_NOT_FOUND
            ):
                raise DaemonUnavailable(self.name, "no such pipe (is convd running?)") from exc
            raise
        # Not a byte goes out before we know who serves the pipe.
        try:
            pid = pipe.server_pid()
            sid = self._system.process_user_sid(pid)
            problem = refuse_server(sid, self.expected_sid)
        except OSError as exc:
            pid, sid = 0, ""
            problem = f"refusing to talk to it: cannot tell who serves the pipe ({exc})"
        if problem is not None:
            pipe.close()
            logger.error("refusing convd at %s: %s", self.name, problem)
            raise DaemonUnavailable(self.name, problem)
        return PipeStream(pipe, peer_pid=pid, peer_sid=sid)


def default_pipe_connector(
    socket_path: str | os.PathLike[str] | None = None, *, system: PipeSystem | None = None
) -> NamedPipeConnector:
    """The client's default connector on Windows: the pipe ``socket_path`` names, else
    ``$CONVD_SOCKET``, else ``\\\\.\\pipe\\convd-<this user's SID>``; served by this user only."""
    system = system if system is not None else win32_pipes()
    sid = system.current_user_sid()
    if socket_path is not None:
        name = check_pipe_name(os.fspath(socket_path))
    else:
        name = default_pipe_name(sid)
    return NamedPipeConnector(name, sid, system=system)
