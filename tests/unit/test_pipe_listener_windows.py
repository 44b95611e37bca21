"""The daemon's named-pipe listener on real Windows pipes (pywin32, asyncio's proactor).

Windows only: skipped elsewhere. These have never run on the Linux machine convd is developed
on; the Windows CI job (.github/workflows/windows.yml) runs them. Nothing Windows-only is
imported at module level, so collecting them on Linux imports nothing from pywin32.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from convd.rpc.channel import Channel
from convd.transport import NamedPipeChannelListener, PipeInUse
from convd_schemas.winpipe import (
    LOCAL_SYSTEM_SID,
    PipeAttribute,
    PipeStream,
    pipe_sddl,
    win32_pipes,
)

pytestmark = [
    pytest.mark.skipif(sys.platform != "win32", reason="Windows named pipes need Windows"),
    pytest.mark.anyio,
]


def unique_name() -> str:
    # Not the user's real pipe: a convd running on the same machine is left alone.
    return rf"\\.\pipe\convd-test-{uuid.uuid4().hex}"


class Echo:
    def __init__(self) -> None:
        self.peers: list[str] = []

    async def __call__(self, channel: Channel) -> None:
        self.peers.append(channel.peer)
        while (line := await channel.receive_line()) is not None:
            channel.send(b"echo: " + line[:20] + b" " + str(len(line)).encode() + b"\n")
            if line == b"bye":
                channel.close()
                return


@asynccontextmanager
async def serving(name: str, handler: Echo) -> AsyncIterator[NamedPipeChannelListener]:
    listener = NamedPipeChannelListener(name, max_line=4 << 20)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler, tg)
            yield listener
            await listener.aclose()
            tg.cancel_scope.cancel()
    finally:
        listener.close()


async def open_client(name: str) -> PipeStream:
    system = win32_pipes()
    pipe = system.open_client_pipe(name)
    return PipeStream(pipe, peer_pid=pipe.server_pid())


async def read_line(stream: PipeStream) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        data += await stream.receive()
    return data


async def test_the_owner_is_served_and_identified() -> None:
    name = unique_name()
    handler = Echo()
    me = win32_pipes().current_user_sid()
    async with serving(name, handler) as listener:
        assert listener.owner_sid == me
        with anyio.fail_after(10):
            stream = await open_client(name)
            assert stream.extra(PipeAttribute.peer_pid) == os.getpid()
            await stream.send(b"hello\n")
            assert await read_line(stream) == b"echo: hello 5\n"
            await stream.send(b"bye\n")
            assert await read_line(stream) == b"echo: bye 3\n"
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()
            await stream.aclose()
    assert handler.peers == [f"pid {os.getpid()} sid {me}"]


async def test_a_line_larger_than_the_pipe_buffer_arrives_whole() -> None:
    # Byte mode: a 1 MiB line crosses the 64 KiB pipe buffer in many reads, never as
    # ERROR_MORE_DATA.
    name = unique_name()
    async with serving(name, Echo()):
        with anyio.fail_after(20):
            stream = await open_client(name)
            await stream.send(b"x" * (1 << 20) + b"\n")
            assert await read_line(stream) == b"echo: " + b"x" * 20 + b" 1048576\n"
            await stream.aclose()


async def test_several_clients_at_once() -> None:
    name = unique_name()
    handler = Echo()
    async with serving(name, handler):
        with anyio.fail_after(10):
            streams = [await open_client(name) for _ in range(5)]
            for n, stream in enumerate(streams):
                await stream.send(f"c{n}\n".encode())
            for n, stream in enumerate(streams):
                assert await read_line(stream) == f"echo: c{n} 2\n".encode()
            for stream in streams:
                await stream.aclose()


async def test_a_second_listener_on_the_name_is_refused() -> None:
    name = unique_name()
    async with serving(name, Echo()):
        with pytest.raises(PipeInUse):
            NamedPipeChannelListener(name, max_line=1024)


async def test_after_aclose_the_pipe_is_gone() -> None:
    name = unique_name()
    async with serving(name, Echo()) as listener:
        await listener.aclose()
        await anyio.sleep(0.05)
        with pytest.raises(FileNotFoundError):
            win32_pipes().open_client_pipe(name)


def test_the_pipe_has_the_owner_only_dacl() -> None:
    import win32security  # Windows only: imported here, not at module level

    system = win32_pipes()
    me = system.current_user_sid()
    pipe = system.create_server_pipe(unique_name(), pipe_sddl(me), first=True)
    try:
        descriptor = win32security.GetKernelObjectSecurity(
            pipe._handle(),  # type: ignore[attr-defined]
            win32security.DACL_SECURITY_INFORMATION,
        )
        dacl = descriptor.GetSecurityDescriptorDacl()
        aces = [dacl.GetAce(i) for i in range(dacl.GetAceCount())]
        allowed = {
            win32security.ConvertSidToStringSid(sid)
            for (ace_type, _flags), _mask, sid in aces
            if ace_type == win32security.ACCESS_ALLOWED_ACE_TYPE
        }
        assert len(aces) == 2
        assert allowed == {me, LOCAL_SYSTEM_SID}
    finally:
        pipe.close()


def test_the_current_process_is_looked_up_as_the_current_user() -> None:
    system = win32_pipes()
    assert system.process_user_sid(os.getpid()) == system.current_user_sid()


def test_the_flags_are_the_ones_pywin32_knows() -> None:
    import win32con  # Windows only
    import win32file
    import win32pipe

    from convd_schemas import winpipe

    assert winpipe.PIPE_ACCESS_DUPLEX == win32pipe.PIPE_ACCESS_DUPLEX
    assert winpipe.FILE_FLAG_OVERLAPPED == win32file.FILE_FLAG_OVERLAPPED
    assert winpipe.FILE_FLAG_FIRST_PIPE_INSTANCE == win32pipe.FILE_FLAG_FIRST_PIPE_INSTANCE
    assert winpipe.PIPE_REJECT_REMOTE_CLIENTS == win32pipe.PIPE_REJECT_REMOTE_CLIENTS
    assert winpipe.PIPE_TYPE_MESSAGE == win32pipe.PIPE_TYPE_MESSAGE
    assert winpipe.PIPE_READMODE_MESSAGE == win32pipe.PIPE_READMODE_MESSAGE
    assert win32pipe.PIPE_TYPE_BYTE == win32pipe.PIPE_READMODE_BYTE == win32pipe.PIPE_WAIT == 0
    assert winpipe.SECURITY_SQOS_PRESENT == win32con.SECURITY_SQOS_PRESENT
    assert winpipe.SECURITY_IDENTIFICATION == win32file.SECURITY_IDENTIFICATION
