"""The client's named-pipe connector over the in-memory fake of the Win32 pipe calls
(tests/pipe_support.py), and the whole stack over it: the client library, the daemon's pipe
listener and its real rpc layer and SQLite store, in this process."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from convd.domain import ConversationService, EventBus
from convd.rpc import ConvListing, RpcServer
from convd.store import open_store
from convd.transport import NamedPipeChannelListener
from convd_client import Client, ConvEvent, DaemonUnavailable, TIMConvType
from convd_client._pipe import NamedPipeConnector, default_pipe_connector
from convd_schemas.openrpc import build_openrpc
from convd_schemas.winpipe import PipeAttribute, PipeStream, pipe_name, pipe_sddl
from pipe_support import USER, FakeMachine

pytestmark = pytest.mark.anyio

NAME = pipe_name(USER)
OTHER = "S-1-5-21-1-2-3-1002"
C2C = TIMConvType.kTIMConv_C2C


async def test_it_opens_a_pipe_its_own_user_serves() -> None:
    machine = FakeMachine()
    server = machine.process(100).create_server_pipe(NAME, pipe_sddl(USER), first=True)
    stream = await NamedPipeConnector(NAME, system=machine.process(200))()
    assert isinstance(stream, PipeStream)
    assert stream.extra(PipeAttribute.peer_pid) == 100
    assert stream.extra(PipeAttribute.peer_sid) == USER
    await stream.send(b"ping\n")
    assert await server.read(100) == b"ping\n"
    await stream.aclose()


async def test_a_pipe_another_user_serves_is_refused_before_a_byte_is_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    machine = FakeMachine()
    # Another account created the name first, with a DACL that lets us in.
    squatter = machine.process(300, OTHER)
    trap = squatter.create_server_pipe(NAME, pipe_sddl(USER), first=True)
    connector = NamedPipeConnector(NAME, system=machine.process(200))
    with pytest.raises(DaemonUnavailable) as caught:
        await connector()
    assert caught.value.reason == (
        f"refusing to talk to it: the pipe is served by {OTHER}, not by this user ({USER}); "
        "another account may have created it first"
    )
    assert NAME in str(caught.value)
    assert trap.client is not None and trap.client.closed
    assert await trap.read(100) == b""  # nothing was sent
    assert any("refusing convd at" in r.getMessage() for r in caplog.records)


async def test_a_server_that_cannot_be_identified_is_refused() -> None:
    machine = FakeMachine()
    daemon = machine.process(100)
    daemon.create_server_pipe(NAME, pipe_sddl(USER), first=True)
    del machine.processes[100]  # OpenProcess fails for the server's pid
    with pytest.raises(DaemonUnavailable, match="cannot tell who serves the pipe"):
        await NamedPipeConnector(NAME, system=machine.process(200))()


async def test_no_pipe_means_convd_is_not_running() -> None:
    machine = FakeMachine()
    with pytest.raises(DaemonUnavailable, match=r"no such pipe \(is convd running\?\)"):
        await NamedPipeConnector(NAME, system=machine.process(200))()


async def test_a_pipe_the_dacl_keeps_us_out_of_is_an_os_error() -> None:
    machine = FakeMachine()
    machine.process(300, OTHER).create_server_pipe(NAME, pipe_sddl(OTHER), first=True)
    with pytest.raises(PermissionError):
        await NamedPipeConnector(NAME, system=machine.process(200))()


async def test_a_busy_pipe_is_waited_for() -> None:
    machine = FakeMachine()
    daemon = machine.process(100)
    taken = daemon.create_server_pipe(NAME, pipe_sddl(USER), first=True)
    machine.process(201).open_client_pipe(NAME)  # every instance is connected
    with pytest.raises(OSError) as busy:
        machine.process(202).open_client_pipe(NAME)
    assert busy.value.winerror == 231  # type: ignore[attr-defined]
    async with anyio.create_task_group() as tg:

        async def free_an_instance() -> None:
            await anyio.sleep(0.05)
            daemon.create_server_pipe(NAME, pipe_sddl(USER), first=False)

        tg.start_soon(free_an_instance)
        with anyio.fail_after(5):
            stream = await NamedPipeConnector(NAME, system=machine.process(200))()
    assert stream.extra(PipeAttribute.peer_pid) == 100
    assert taken.client is not None and taken.client.pid == 201


def test_the_default_connector_names_the_users_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine()
    monkeypatch.delenv("CONVD_SOCKET", raising=False)
    connector = default_pipe_connector(system=machine.process(200))
    assert (connector.name, connector.expected_sid) == (NAME, USER)
    monkeypatch.setenv("CONVD_SOCKET", r"\\.\pipe\convd-test")
    assert default_pipe_connector(system=machine.process(200)).name == r"\\.\pipe\convd-test"
    given = default_pipe_connector(r"\\.\pipe\given", system=machine.process(200))
    assert given.name == r"\\.\pipe\given"
    with pytest.raises(ValueError, match="not a local named pipe"):
        default_pipe_connector("/tmp/convd.sock", system=machine.process(200))


async def test_the_client_library_and_the_daemon_over_the_pipe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="convd")
    machine = FakeMachine()
    daemon = machine.process(100)
    events: list[ConvEvent] = []
    async with open_store(tmp_path / "convd.db", listing=ConvListing()) as store:
        server = RpcServer(
            ConversationService(store, EventBus()),
            build_openrpc,
            socket_path=Path(NAME),
            database_path=tmp_path / "convd.db",
        )
        listener = NamedPipeChannelListener(NAME, max_line=1 << 20, system=daemon)
        async with anyio.create_task_group() as tg:
            await tg.start(server.serve, listener)
            async with (
                Client(NAME, connector=NamedPipeConnector(NAME, system=machine.process(200))) as a,
                Client(NAME, connector=NamedPipeConnector(NAME, system=machine.process(201))) as b,
            ):
                await a.login("alice")
                await b.login("alice")
                b.add_event_listener(events.append)
                await b.subscribe()
                await a.conv_create("bob", C2C)
                await a.conv_set_draft("bob", C2C, "typed on Windows")
                with anyio.fail_after(10):
                    while len(events) < 2:
                        await anyio.sleep(0.005)
                [conv] = await b.conv_get([("bob", C2C)])
                assert conv.conv_draft is not None
                assert conv.conv_draft.draft_msg.message_elem_array[0].text_elem_content == (
                    "typed on Windows"
                )
                status = await b.daemon_status()
                assert status.socket_path == NAME
                assert status.connections == 2
            server.stop()
    assert [e.conversations[0].conv_id for e in events] == ["bob", "bob"]
    opened = [r.getMessage() for r in caplog.records if "opened" in r.getMessage()]
    assert opened == [
        f"connection c1 opened (pid 200 sid {USER})",
        f"connection c2 opened (pid 201 sid {USER})",
    ]
