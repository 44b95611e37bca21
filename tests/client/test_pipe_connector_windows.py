"""The client's named-pipe connector on real Windows pipes, and the client library's default.

Windows only: skipped elsewhere. These have never run on the Linux machine convd is developed
on; the Windows CI job (.github/workflows/windows.yml) runs them. Nothing Windows-only is
imported at module level.
"""

from __future__ import annotations

import os
import sys
import uuid

import anyio
import pytest

from convd.rpc.channel import Channel
from convd.transport import NamedPipeChannelListener
from convd_client import Client, DaemonUnavailable
from convd_client._pipe import NamedPipeConnector
from convd_schemas.winpipe import PipeAttribute, pipe_name, win32_pipes

pytestmark = [
    pytest.mark.skipif(sys.platform != "win32", reason="Windows named pipes need Windows"),
    pytest.mark.anyio,
]


def unique_name() -> str:
    return rf"\\.\pipe\convd-test-{uuid.uuid4().hex}"


async def echo(channel: Channel) -> None:
    while (line := await channel.receive_line()) is not None:
        channel.send(line + b"\n")


async def test_the_connector_reaches_a_pipe_this_user_serves() -> None:
    name = unique_name()
    listener = NamedPipeChannelListener(name, max_line=1024)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo, tg)
            with anyio.fail_after(10):
                stream = await NamedPipeConnector(name)()
                assert stream.extra(PipeAttribute.peer_pid) == os.getpid()
                assert stream.extra(PipeAttribute.peer_sid) == win32_pipes().current_user_sid()
                await stream.send(b"ping\n")
                received = b""
                while not received.endswith(b"\n"):
                    received += await stream.receive()
                assert received == b"ping\n"
                await stream.aclose()
            await listener.aclose()
            tg.cancel_scope.cancel()
    finally:
        listener.close()


async def test_no_pipe_is_daemon_unavailable() -> None:
    with pytest.raises(DaemonUnavailable, match="no such pipe"):
        await NamedPipeConnector(unique_name())()


def test_the_client_library_defaults_to_the_users_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVD_SOCKET", raising=False)
    client = Client()
    connector = client._supervisor._connector
    assert isinstance(connector, NamedPipeConnector)
    assert connector.name == pipe_name(win32_pipes().current_user_sid())
    assert str(client.socket_path) == connector.name
