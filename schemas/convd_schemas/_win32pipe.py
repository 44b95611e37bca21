"""The Win32 side of convd's named pipe: pywin32 creates, opens and identifies, asyncio's IOCP
proactor (the Windows default event loop, the one anyio's asyncio backend runs on) carries the
overlapped reads and writes.

Windows only: imported by ``winpipe.win32_pipes()``. None of this has run on the Linux machine
convd is developed on; the rest of the pipe code is tested there against a fake of
``winpipe.PipeSystem``, and this module by the Windows CI job (tests/*/test_pipe*.py, the tests
marked for Windows). ``mypy --platform win32`` type-checks it against pywin32's stubs.
"""

from __future__ import annotations

import sys

assert sys.platform == "win32"  # on other platforms, mypy skips the rest of the module

import asyncio  # noqa: E402
from asyncio import windows_utils  # noqa: E402
from typing import Any, Protocol, cast  # noqa: E402

import pywintypes  # noqa: E402
import win32api  # noqa: E402
import win32con  # noqa: E402
import win32file  # noqa: E402
import win32pipe  # noqa: E402
import win32security  # noqa: E402

from .winpipe import (  # noqa: E402
    CLIENT_FLAGS,
    SERVER_PIPE_MODE,
    ClientPipe,
    ServerPipe,
    server_open_mode,
)

__all__ = ["Win32Pipes"]

# Each direction's buffer (advisory for the kernel); the framing reads 64 KiB at a time.
_BUFFER = 65536


class _Proactor(Protocol):
    # The IocpProactor methods used by asyncio's own start_serving_pipe and pipe transports
    # (CPython Lib/asyncio/windows_events.py); not public API, unchanged since Python 3.4.
    def recv(self, conn: Any, nbytes: int, flags: int = 0) -> asyncio.Future[bytes]: ...
    def send(self, conn: Any, buf: bytes, flags: int = 0) -> asyncio.Future[int]: ...
    def accept_pipe(self, pipe: Any) -> asyncio.Future[Any]: ...


def _proactor() -> _Proactor:
    loop = asyncio.get_running_loop()
    proactor = getattr(loop, "_proactor", None)
    if not isinstance(loop, asyncio.ProactorEventLoop) or proactor is None:
        raise RuntimeError(
            "convd's named pipe needs asyncio's proactor event loop (the Windows default); "
            f"this loop is {type(loop).__module__}.{type(loop).__name__}"
        )
    return cast(_Proactor, proactor)


def _os_error(exc: pywintypes.error) -> OSError:
    # pywin32's error is not an OSError. Given a winerror, OSError picks errno and subclass
    # (2 -> FileNotFoundError, 5 -> PermissionError, 109/232 -> BrokenPipeError).
    return OSError(0, f"{exc.funcname}: {exc.strerror}", None, exc.winerror)


def _detach(handle: object) -> int:
    # A PyHANDLE closes its handle when collected; from here on windows_utils.PipeHandle
    # owns it (the proactor wants an object with fileno()).
    value = int(cast(Any, handle))
    cast(Any, handle).Detach()
    return value


def _token_user_sid(process: int) -> str:
    try:
        token = win32security.OpenProcessToken(process, win32security.TOKEN_QUERY)
    except pywintypes.error as exc:
        raise _os_error(exc) from None
    try:
        sid, _attributes = win32security.GetTokenInformation(token, win32security.TokenUser)
        return str(win32security.ConvertSidToStringSid(sid))
    except pywintypes.error as exc:
        raise _os_error(exc) from None
    finally:
        win32api.CloseHandle(token)


class _PipeEnd:
    def __init__(self, handle: int) -> None:
        self._pipe = windows_utils.PipeHandle(handle)

    def _handle(self) -> int:
        handle = self._pipe.handle
        if handle is None:
            raise OSError(0, "the pipe is closed", None, 6)  # ERROR_INVALID_HANDLE
        return int(handle)

    async def read(self, max_bytes: int) -> bytes:
        # ERROR_BROKEN_PIPE (the other end closed) comes back as b"" from the proactor.
        return await _proactor().recv(self._pipe, max_bytes)

    async def write(self, data: bytes) -> int:
        return await _proactor().send(self._pipe, data)

    def close(self) -> None:
        # Closing the handle ends pending overlapped I/O with ERROR_OPERATION_ABORTED, which
        # the proactor raises as ConnectionResetError (PipeStream maps it to "closed").
        self._pipe.close()


class _ServerPipe(_PipeEnd):
    async def wait_for_client(self) -> None:
        # accept_pipe also handles a client that connected before ConnectNamedPipe was called
        # (ERROR_PIPE_CONNECTED).
        await _proactor().accept_pipe(self._pipe)

    def client_pid(self) -> int:
        try:
            return int(win32pipe.GetNamedPipeClientProcessId(self._handle()))
        except pywintypes.error as exc:
            raise _os_error(exc) from None


class _ClientPipe(_PipeEnd):
    def server_pid(self) -> int:
        try:
            return int(win32pipe.GetNamedPipeServerProcessId(self._handle()))
        except pywintypes.error as exc:
            raise _os_error(exc) from None


class Win32Pipes:
    """The real ``PipeSystem``."""

    def current_user_sid(self) -> str:
        # GetCurrentProcess returns a pseudo-handle: nothing to close.
        return _token_user_sid(win32api.GetCurrentProcess())

    def process_user_sid(self, pid: int) -> str:
        try:
            process = win32api.OpenProcess(win32con.PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        except pywintypes.error as exc:
            raise _os_error(exc) from None
        try:
            return _token_user_sid(process)
        finally:
            win32api.CloseHandle(process)

    def create_server_pipe(self, name: str, sddl: str, *, first: bool) -> ServerPipe:
        attributes = win32security.SECURITY_ATTRIBUTES()
        attributes.bInheritHandle = False
        # With first: a second convd, or another account that created the name first, makes
        # ours refuse to start instead of sharing the name.
        open_mode = server_open_mode(first=first)
        try:
            attributes.SECURITY_DESCRIPTOR = (
                win32security.ConvertStringSecurityDescriptorToSecurityDescriptor(
                    sddl, win32security.SDDL_REVISION_1
                )
            )
            handle = win32pipe.CreateNamedPipe(
                name,
                open_mode,
                SERVER_PIPE_MODE,
                win32pipe.PIPE_UNLIMITED_INSTANCES,
                _BUFFER,
                _BUFFER,
                0,
                attributes,
            )
        except pywintypes.error as exc:
            raise _os_error(exc) from None
        return _ServerPipe(_detach(handle))

    def open_client_pipe(self, name: str) -> ClientPipe:
        try:
            handle = win32file.CreateFile(
                name,
                win32file.GENERIC_READ | win32file.GENERIC_WRITE,
                0,
                None,
                win32file.OPEN_EXISTING,
                CLIENT_FLAGS,
                None,
            )
        except pywintypes.error as exc:
            raise _os_error(exc) from None
        return _ClientPipe(_detach(handle))
