"""The Windows named pipe's plain logic: its name, its SDDL, who is admitted, busy retries, and
that the pipe modules import nothing Windows-only (and need nothing POSIX-only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from convd_schemas.winpipe import (
    CLIENT_FLAGS,
    FILE_FLAG_FIRST_PIPE_INSTANCE,
    LOCAL_SYSTEM_SID,
    PIPE_READMODE_MESSAGE,
    PIPE_REJECT_REMOTE_CLIENTS,
    PIPE_TYPE_MESSAGE,
    SERVER_PIPE_MODE,
    check_pipe_name,
    check_sid,
    default_pipe_name,
    describe_pipe_peer,
    is_pipe_busy,
    pipe_name,
    pipe_sddl,
    refuse_client,
    refuse_server,
    retry_while_busy,
    server_open_mode,
    win32_pipes,
)
from pipe_support import USER, win_error

OTHER = "S-1-5-21-1111111111-2222222222-3333333333-1002"


def test_the_pipe_is_named_after_the_users_sid() -> None:
    assert pipe_name(USER) == "\\\\.\\pipe\\convd-" + USER
    assert pipe_name(USER) == r"\\.\pipe\convd-S-1-5-21-1111111111-2222222222-3333333333-1001"


@pytest.mark.parametrize(
    "sid",
    [
        "",
        "S-1-5",  # no sub-authority
        "s-1-5-18",
        "S-1-5-21-1)(A;;GA;;;WD",  # would add an ACE for Everyone to the SDDL
        "S-1-5-21-1\\..\\x",  # would change the pipe's name
        "S-1-5-21-1 ",
        "S-1-5-21-1\n",
    ],
)
def test_anything_but_a_string_sid_is_refused(sid: str) -> None:
    with pytest.raises(ValueError, match="not a string SID"):
        check_sid(sid)
    with pytest.raises(ValueError):
        pipe_name(sid)
    with pytest.raises(ValueError):
        pipe_sddl(sid)


def test_the_sddl_lets_in_the_owner_and_localsystem_only() -> None:
    # Protected DACL (nothing inherited), GENERIC_ALL for SYSTEM and the owner, no other ACE:
    # no read for Everyone or Anonymous, as the default DACL would give.
    assert pipe_sddl(USER) == f"D:P(A;;GA;;;S-1-5-18)(A;;GA;;;{USER})"
    assert LOCAL_SYSTEM_SID == "S-1-5-18"


def test_the_pipe_is_byte_mode_local_only_and_its_first_instance_exclusive() -> None:
    # Values from winbase.h: PIPE_ACCESS_DUPLEX 0x3, FILE_FLAG_OVERLAPPED 0x40000000,
    # FILE_FLAG_FIRST_PIPE_INSTANCE 0x80000, PIPE_REJECT_REMOTE_CLIENTS 0x8,
    # SECURITY_SQOS_PRESENT 0x100000, SECURITY_IDENTIFICATION 0x10000.
    assert server_open_mode(first=True) == 0x3 | 0x40000000 | 0x80000
    assert server_open_mode(first=False) == 0x3 | 0x40000000
    assert server_open_mode(first=False) & FILE_FLAG_FIRST_PIPE_INSTANCE == 0
    assert SERVER_PIPE_MODE & PIPE_REJECT_REMOTE_CLIENTS == 0x8
    assert SERVER_PIPE_MODE & (PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE) == 0
    assert CLIENT_FLAGS == 0x40000000 | 0x100000 | 0x10000


def test_convd_socket_overrides_the_pipe_name_but_must_name_a_local_pipe() -> None:
    assert default_pipe_name(USER, {}) == pipe_name(USER)
    assert default_pipe_name(USER, {"CONVD_SOCKET": ""}) == pipe_name(USER)
    assert default_pipe_name(USER, {"CONVD_SOCKET": r"\\.\pipe\convd-test-1"}) == (
        r"\\.\pipe\convd-test-1"
    )
    for bad in (
        "/run/user/1000/convd/convd.sock",
        r"\\server\pipe\convd",
        r"\\.\pipe\\",
        r"\\.\pipe\a\b",
        "\\\\.\\pipe\\" + "x" * 250,
    ):
        with pytest.raises(ValueError):
            default_pipe_name(USER, {"CONVD_SOCKET": bad})
    assert check_pipe_name("\\\\.\\pipe\\" + "x" * 247) == "\\\\.\\pipe\\" + "x" * 247


def test_only_the_owner_is_admitted_not_even_localsystem() -> None:
    assert refuse_client(USER, USER) is None
    other = refuse_client(OTHER, USER)
    assert other is not None and OTHER in other and USER in other
    system = refuse_client(LOCAL_SYSTEM_SID, USER)
    assert system is not None and "LocalSystem" in system


def test_a_client_talks_only_to_a_pipe_its_own_user_serves() -> None:
    assert refuse_server(USER, USER) is None
    problem = refuse_server(OTHER, USER)
    assert problem is not None
    assert problem.startswith("refusing to talk to it: the pipe is served by " + OTHER)
    assert USER in problem


def test_peer_description() -> None:
    assert describe_pipe_peer(42, USER) == f"pid 42 sid {USER}"


@pytest.mark.anyio
async def test_a_busy_pipe_is_retried_with_growing_delays() -> None:
    delays: list[float] = []
    attempts = iter([win_error(231, "busy")] * 9 + [None])

    def open_once() -> str:
        error = next(attempts)
        if error is not None:
            raise error
        return "pipe"

    async def sleep(delay: float) -> None:
        delays.append(delay)

    assert await retry_while_busy(open_once, sleep=sleep) == "pipe"
    assert delays == [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.1, 0.1]


@pytest.mark.anyio
async def test_other_errors_are_not_retried() -> None:
    calls = 0

    def open_once() -> str:
        nonlocal calls
        calls += 1
        raise win_error(2, "The system cannot find the file specified")

    with pytest.raises(FileNotFoundError):
        await retry_while_busy(open_once)
    assert calls == 1
    assert is_pipe_busy(win_error(231, "busy"))
    assert not is_pipe_busy(win_error(5, "denied"))
    assert not is_pipe_busy(OSError("no winerror"))


@pytest.mark.skipif(sys.platform == "win32", reason="tests the refusal off Windows")
def test_the_win32_calls_are_refused_off_windows() -> None:
    with pytest.raises(OSError, match="named pipes are a Windows transport"):
        win32_pipes()


_IMPORT_ALL = """
import convd.transport
import convd.transport.pipe
import convd_client
import convd_client._pipe
import convd_schemas.winpipe
"""


@pytest.mark.skipif(sys.platform == "win32", reason="checks what Linux imports")
def test_the_pipe_modules_import_nothing_windows_only() -> None:
    script = _IMPORT_ALL + (
        "import sys\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('win32', 'pywintypes', "
        "'_win32typing', 'convd_schemas._win32pipe')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


@pytest.mark.skipif(sys.platform == "win32", reason="Windows imports them for real")
def test_the_pipe_modules_need_no_posix_only_module() -> None:
    # A rough stand-in for Windows: the modules Windows lacks cannot be imported, and
    # sys.platform says win32 once asyncio and anyio are loaded (they would pick their Windows
    # parts). This keeps the transport package importable there (unix.py needs fcntl); it
    # proves nothing more.
    blocked = ("fcntl", "termios", "pwd", "grp", "resource", "uvloop")
    script = (
        "import sys, asyncio, anyio, anyio._backends._asyncio, msgspec\n"
        + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
        + "sys.platform = 'win32'\n"
        + _IMPORT_ALL
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
