"""Windows named pipes: what the daemon and the client share.

On Windows convd listens on ``\\\\.\\pipe\\convd-<user SID>`` instead of a Unix socket. This
module holds everything about that pipe that is plain Python, so that the Linux test suite
covers it: the pipe's name, its security descriptor (SDDL), the decision who may be at the
other end (given SIDs), the retry of a busy pipe, and :class:`PipeStream`, the anyio byte
stream over one connected pipe end. The Win32 calls themselves (pywin32, and asyncio's
proactor for the overlapped I/O) are in ``_win32pipe.py``, imported only on Windows by
:func:`win32_pipes`; both sides reach them only through the :class:`PipeSystem` protocol, which
the tests replace with an in-memory fake.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import anyio
from anyio import ResourceGuard, TypedAttributeSet, typed_attribute
from anyio.abc import ByteStream
from anyio.lowlevel import checkpoint

from .paths import SOCKET_ENV

__all__ = [
    "CLIENT_FLAGS",
    "ERROR_ACCESS_DENIED",
    "ERROR_FILE_NOT_FOUND",
    "ERROR_PIPE_BUSY",
    "LOCAL_SYSTEM_SID",
    "PIPE_PREFIX",
    "SERVER_PIPE_MODE",
    "ClientPipe",
    "PipeAttribute",
    "PipeEnd",
    "PipeStream",
    "PipeSystem",
    "ServerPipe",
    "check_pipe_name",
    "check_sid",
    "default_pipe_name",
    "describe_pipe_peer",
    "is_pipe_busy",
    "pipe_name",
    "pipe_sddl",
    "refuse_client",
    "refuse_server",
    "retry_while_busy",
    "server_open_mode",
    "win32_pipes",
]

#: Every local named pipe's name starts with this (``\\.\pipe\``).
PIPE_PREFIX = "\\\\.\\pipe\\"
#: LocalSystem, the one account besides the owner that the pipe's DACL lets in.
LOCAL_SYSTEM_SID = "S-1-5-18"

# Win32 error codes the logic here tells apart (winerror.h).
ERROR_FILE_NOT_FOUND = 2  # no instance of the pipe exists
ERROR_ACCESS_DENIED = 5  # the DACL says no; or FILE_FLAG_FIRST_PIPE_INSTANCE and it exists
ERROR_PIPE_BUSY = 231  # every instance is connected: wait for one to listen again

# The flags convd creates and opens its pipe with (winbase.h / WinNT.h values).
PIPE_ACCESS_DUPLEX = 0x00000003
FILE_FLAG_OVERLAPPED = 0x40000000
FILE_FLAG_FIRST_PIPE_INSTANCE = 0x00080000
PIPE_TYPE_MESSAGE = 0x00000004  # not used: named here so that tests can say so
PIPE_READMODE_MESSAGE = 0x00000002  # not used either
PIPE_REJECT_REMOTE_CLIENTS = 0x00000008
SECURITY_SQOS_PRESENT = 0x00100000
SECURITY_IDENTIFICATION = 0x00010000  # SecurityIdentification << 16

#: dwPipeMode: byte stream (PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT are all 0), remote
#: clients refused by the kernel. Byte mode rather than asyncio's message mode: the NDJSON
#: framing needs no message boundaries, and a byte-mode read never ends in ERROR_MORE_DATA.
SERVER_PIPE_MODE = PIPE_REJECT_REMOTE_CLIENTS
#: The client's flags: overlapped, and the server may identify it but not impersonate it (a
#: pipe squatted by another account must not be able to act as this user).
CLIENT_FLAGS = FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION


def server_open_mode(*, first: bool) -> int:
    """dwOpenMode of an instance: duplex, overlapped; the first instance also with
    FILE_FLAG_FIRST_PIPE_INSTANCE, which fails (ERROR_ACCESS_DENIED) if the name exists."""
    mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED
    return mode | FILE_FLAG_FIRST_PIPE_INSTANCE if first else mode


# A string SID: "S-1-", the identifier authority, then one or more sub-authorities. Checked
# before a SID goes into a pipe name or an SDDL string, where other characters would change
# their meaning.
_SID = re.compile(r"S-1-[0-9]+(?:-[0-9]+)+\Z")
# The longest pipe name Windows accepts (256 characters, the "\\.\pipe\" prefix included).
_MAX_PIPE_NAME = 256


def check_sid(sid: str) -> str:
    """``sid`` if it is a string SID (``S-1-5-21-...``); else ValueError."""
    if not _SID.match(sid):
        raise ValueError(f"not a string SID: {sid!r}")
    return sid


def check_pipe_name(name: str) -> str:
    """``name`` if it is a local pipe name (``\\\\.\\pipe\\NAME``); else ValueError."""
    rest = name[len(PIPE_PREFIX) :]
    if not name.startswith(PIPE_PREFIX) or not rest:
        raise ValueError(f"not a local named pipe (\\\\.\\pipe\\NAME): {name!r}")
    if "\\" in rest:
        raise ValueError(f"a pipe's name cannot contain a backslash after the prefix: {name!r}")
    if len(name) > _MAX_PIPE_NAME:
        raise ValueError(f"a pipe name is at most {_MAX_PIPE_NAME} characters: {name!r}")
    return name


def pipe_name(user_sid: str) -> str:
    """The daemon's pipe for the user ``user_sid``: ``\\\\.\\pipe\\convd-<SID>``.

    The SID, unlike the user name, is unique on the machine and never reused, so another
    account cannot have a user of the same name whose daemon collides with ours.
    """
    return check_pipe_name(f"{PIPE_PREFIX}convd-{check_sid(user_sid)}")


def default_pipe_name(user_sid: str, environ: Mapping[str, str] = os.environ) -> str:
    """``$CONVD_SOCKET`` when set (it must then name a local pipe), else :func:`pipe_name`."""
    override = environ.get(SOCKET_ENV)
    if override:
        return check_pipe_name(override)
    return pipe_name(user_sid)


def pipe_sddl(owner_sid: str) -> str:
    """The pipe's security descriptor: full access for the owner and LocalSystem, nobody else.

    ``D:P`` is a protected DACL (nothing inherited); ``GA`` is GENERIC_ALL. Without it the pipe
    would get the default DACL, which lets Everyone and Anonymous read.
    """
    return f"D:P(A;;GA;;;{LOCAL_SYSTEM_SID})(A;;GA;;;{check_sid(owner_sid)})"


def refuse_client(client_sid: str, owner_sid: str) -> str | None:
    """Why the daemon turns away a client whose process runs as ``client_sid``; None: admit.

    Only the owner gets in. LocalSystem passes the DACL (as root passes file permissions) but
    is refused here, as root is on the Unix socket: nothing of the owner's should be driven by
    another account.
    """
    if client_sid == owner_sid:
        return None
    if client_sid == LOCAL_SYSTEM_SID:
        return f"the client runs as LocalSystem ({LOCAL_SYSTEM_SID}); only {owner_sid} may"
    return f"the client runs as {client_sid}; only {owner_sid} may use this daemon"


def refuse_server(server_sid: str, expected_sid: str) -> str | None:
    """Why a client must not talk to a pipe served by ``server_sid``; None: it is ours."""
    if server_sid == expected_sid:
        return None
    return (
        f"refusing to talk to it: the pipe is served by {server_sid}, not by this user "
        f"({expected_sid}); another account may have created it first"
    )


def describe_pipe_peer(pid: int, sid: str) -> str:
    """Who is at the other end, for the log: ``"pid 42 sid S-1-5-21-..."``."""
    return f"pid {pid} sid {sid}"


def is_pipe_busy(exc: BaseException) -> bool:
    """True if opening the pipe failed only because every instance is busy."""
    return getattr(exc, "winerror", None) == ERROR_PIPE_BUSY


_T = TypeVar("_T")


async def retry_while_busy(
    open_once: Callable[[], _T],
    *,
    first_delay: float = 0.001,
    max_delay: float = 0.1,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> _T:
    """``open_once()``, retried with a growing delay while it fails with ERROR_PIPE_BUSY.

    There is no overlapped open of a pipe (``WaitNamedPipe`` would block a thread), so this
    polls, as asyncio's own ``connect_pipe`` does. The caller bounds it with a timeout.
    """
    delay = first_delay
    while True:
        try:
            return open_once()
        except OSError as exc:
            if not is_pipe_busy(exc):
                raise
        await sleep(delay)
        delay = min(delay * 2, max_delay)


class PipeEnd(Protocol):
    """One connected end of a named pipe, as overlapped reads and writes."""

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes``; ``b""`` once the other end has closed. Raises OSError."""
        ...

    async def write(self, data: bytes) -> int:
        """Write ``data``; returns how many bytes were taken. Raises OSError."""
        ...

    def close(self) -> None:
        """Close the handle; reads and writes still pending fail with OSError."""
        ...


class ServerPipe(PipeEnd, Protocol):
    """One instance of the daemon's pipe, created and waiting for its client."""

    async def wait_for_client(self) -> None:
        """Until a client has connected (``ConnectNamedPipe``). Raises OSError."""
        ...

    def client_pid(self) -> int:
        """The connected client's process id (``GetNamedPipeClientProcessId``)."""
        ...


class ClientPipe(PipeEnd, Protocol):
    """The client's end of the daemon's pipe."""

    def server_pid(self) -> int:
        """The process id of the pipe's server (``GetNamedPipeServerProcessId``)."""
        ...


class PipeSystem(Protocol):
    """The Win32 calls convd makes for its pipe (``_win32pipe.Win32Pipes``; fakes in tests)."""

    def current_user_sid(self) -> str:
        """This process's user SID."""
        ...

    def process_user_sid(self, pid: int) -> str:
        """The user SID of process ``pid``'s token. Raises OSError (e.g. it has exited)."""
        ...

    def create_server_pipe(self, name: str, sddl: str, *, first: bool) -> ServerPipe:
        """A new instance of pipe ``name`` with security descriptor ``sddl``, rejecting
        remote clients. With ``first``, fails with ERROR_ACCESS_DENIED if the pipe exists
        (``FILE_FLAG_FIRST_PIPE_INSTANCE``). Raises OSError."""
        ...

    def open_client_pipe(self, name: str) -> ClientPipe:
        """Connect to pipe ``name``. Raises OSError: ERROR_FILE_NOT_FOUND when nobody
        serves it, ERROR_PIPE_BUSY when every instance is taken."""
        ...


def win32_pipes() -> PipeSystem:
    """The real :class:`PipeSystem` (pywin32 and asyncio's proactor); Windows only."""
    if sys.platform == "win32":
        from ._win32pipe import Win32Pipes

        return Win32Pipes()
    raise OSError(f"named pipes are a Windows transport; this is {sys.platform}")


class PipeAttribute(TypedAttributeSet):
    """Who is at the other end of a :class:`PipeStream` (checked when it was opened)."""

    #: The other end's process id.
    peer_pid: int = typed_attribute()
    #: The user SID of the other end's process.
    peer_sid: str = typed_attribute()


class PipeStream(ByteStream):
    """An anyio byte stream over one connected pipe end.

    Errors become anyio's: a peer that went away is ``BrokenResourceError``, a stream this side
    closed is ``ClosedResourceError`` (also for a receive it interrupted), a clean end is
    ``EndOfStream``. One task may receive and one send at a time, as with anyio's own streams.

    :param pipe: the connected end; the stream owns it and closes it
    :param peer_pid: the other end's process id, if known
    :param peer_sid: the other end's user SID, if known
    """

    def __init__(
        self, pipe: PipeEnd, *, peer_pid: int | None = None, peer_sid: str | None = None
    ) -> None:
        self._pipe = pipe
        self._peer_pid = peer_pid
        self._peer_sid = peer_sid
        self._closed = False
        self._receive_guard = ResourceGuard("reading from")
        self._send_guard = ResourceGuard("writing to")

    async def receive(self, max_bytes: int = 65536) -> bytes:
        with self._receive_guard:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                data = await self._pipe.read(max_bytes)
            except (OSError, ValueError) as exc:
                # ValueError: the handle was closed under the call (windows_utils.PipeHandle).
                if self._closed:
                    raise anyio.ClosedResourceError from exc
                raise anyio.BrokenResourceError from exc
            if not data:
                if self._closed:
                    raise anyio.ClosedResourceError
                raise anyio.EndOfStream
            return data

    async def send(self, item: bytes) -> None:
        with self._send_guard:
            view = memoryview(item)
            while True:
                if self._closed:
                    raise anyio.ClosedResourceError
                if not view:
                    return
                try:
                    written = await self._pipe.write(bytes(view))
                except (OSError, ValueError) as exc:
                    if self._closed:
                        raise anyio.ClosedResourceError from exc
                    raise anyio.BrokenResourceError from exc
                if written <= 0:
                    # A write that takes nothing would loop forever: the pipe is unusable.
                    raise anyio.BrokenResourceError(f"the pipe took {written} bytes")
                view = view[written:]

    async def send_eof(self) -> None:
        # A pipe end cannot be half-closed: closing it ends both directions.
        raise NotImplementedError("named pipes cannot be half-closed")

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._pipe.close()
        await checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        attributes: dict[Any, Callable[[], Any]] = {}
        if self._peer_pid is not None:
            pid = self._peer_pid
            attributes[PipeAttribute.peer_pid] = lambda: pid
        if self._peer_sid is not None:
            sid = self._peer_sid
            attributes[PipeAttribute.peer_sid] = lambda: sid
        return attributes
