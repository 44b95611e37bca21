"""The daemon's named-pipe listener, over the in-memory fake of the Win32 pipe calls
(tests/pipe_support.py): first instance, admission by SID, a spare instance, refusals, close."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from convd.rpc.channel import Channel
from convd.transport import NamedPipeChannelListener, PipeInUse
from convd_schemas.winpipe import LOCAL_SYSTEM_SID, PipeStream, pipe_name, pipe_sddl
from pipe_support import USER, FakeMachine, win_error

pytestmark = pytest.mark.anyio

NAME = pipe_name(USER)
DAEMON_PID = 100


class Echo:
    """A handler: answers every line with ``echo: <line>``; ``bye`` ends the connection."""

    def __init__(self) -> None:
        self.peers: list[str] = []

    async def __call__(self, channel: Channel) -> None:
        self.peers.append(channel.peer)
        while (line := await channel.receive_line()) is not None:
            channel.send(b"echo: " + line + b"\n")
            if line == b"bye":
                channel.close()
                return


@asynccontextmanager
async def serving(machine: FakeMachine, handler: Echo) -> AsyncIterator[NamedPipeChannelListener]:
    daemon = machine.process(DAEMON_PID)
    listener = NamedPipeChannelListener(NAME, max_line=1024, system=daemon)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler, tg)
        await anyio.wait_all_tasks_blocked()
        yield listener
        await listener.aclose()
        tg.cancel_scope.cancel()


async def read_until_end(stream: PipeStream) -> bytes:
    data = b""
    try:
        while True:
            data += await stream.receive()
    except anyio.EndOfStream:
        return data


async def test_the_owner_is_served_on_a_pipe_only_the_owner_and_system_may_open() -> None:
    machine = FakeMachine()
    handler = Echo()
    async with serving(machine, handler) as listener:
        # Made with the owner's SDDL, the first instance with FILE_FLAG_FIRST_PIPE_INSTANCE.
        assert listener.owner_sid == USER
        assert machine.created[0] == (NAME, pipe_sddl(USER), True)
        assert all(sddl == pipe_sddl(USER) for _, sddl, _ in machine.created)
        client = machine.process(200).open_client_pipe(NAME)
        stream = PipeStream(client)
        await stream.send(b"hello\nbye\n")
        # The handler's last reply still goes out after it returned; then the pipe closes.
        assert await read_until_end(stream) == b"echo: hello\necho: bye\n"
        assert handler.peers == [f"pid 200 sid {USER}"]


async def test_a_second_daemon_is_refused() -> None:
    machine = FakeMachine()
    async with serving(machine, Echo()):
        with pytest.raises(PipeInUse, match="already exists") as caught:
            NamedPipeChannelListener(NAME, max_line=1024, system=machine.process(101))
        assert NAME in str(caught.value)
        # Another account is kept out by the DACL before convd sees it.
        with pytest.raises(PermissionError):
            machine.process(300, "S-1-5-21-1-2-3-1002").open_client_pipe(NAME)


async def test_a_name_taken_by_someone_else_is_refused_too() -> None:
    machine = FakeMachine()
    squatter = machine.process(300, "S-1-5-21-1-2-3-1002")
    squatter.create_server_pipe(NAME, "D:P(A;;GA;;;WD)", first=True)
    with pytest.raises(PipeInUse):
        NamedPipeChannelListener(NAME, max_line=1024, system=machine.process(DAEMON_PID))


async def test_localsystem_passes_the_dacl_but_not_the_sid_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    machine = FakeMachine()
    handler = Echo()
    async with serving(machine, handler):
        system = PipeStream(machine.process(4, LOCAL_SYSTEM_SID).open_client_pipe(NAME))
        assert await read_until_end(system) == b""  # cut without a byte
        # The next client is served as usual.
        owner = PipeStream(machine.process(200).open_client_pipe(NAME))
        await owner.send(b"bye\n")
        assert await read_until_end(owner) == b"echo: bye\n"
    assert handler.peers == [f"pid 200 sid {USER}"]
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert refusals == [
        f"refused connection from pid 4 sid {LOCAL_SYSTEM_SID}: the client runs as LocalSystem "
        f"({LOCAL_SYSTEM_SID}); only {USER} may"
    ]


async def test_a_client_whose_process_cannot_be_looked_up_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    machine = FakeMachine()
    handler = Echo()
    async with serving(machine, handler):
        client = machine.process(200).open_client_pipe(NAME)
        del machine.processes[200]  # exited (or its pid was reused) before it was looked at
        assert await read_until_end(PipeStream(client)) == b""
        other = machine.listening(NAME)[0]
        other.client_pid_error = win_error(5, "Access is denied")
        second = machine.process(201).open_client_pipe(NAME)
        assert await read_until_end(PipeStream(second)) == b""
    assert handler.peers == []
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert messages[0].startswith("refused connection from pid 200: cannot tell who it runs as")
    assert messages[1].startswith("refused connection from a client: cannot tell who it runs as")


async def test_an_instance_always_listens_so_clients_are_served_together() -> None:
    machine = FakeMachine()
    handler = Echo()
    async with serving(machine, handler):
        streams = []
        for pid in (200, 201, 202):
            assert len(machine.listening(NAME)) == 1
            stream = PipeStream(machine.process(pid).open_client_pipe(NAME))
            await stream.send(b"hi\n")
            assert await stream.receive() == b"echo: hi\n"
            streams.append(stream)
        assert len(machine.instances(NAME)) == 4  # three connected, one listening
        for stream in streams:
            await stream.send(b"bye\n")
            assert await read_until_end(stream) == b"echo: bye\n"
    assert sorted(handler.peers) == [f"pid {pid} sid {USER}" for pid in (200, 201, 202)]


async def test_an_instance_that_fails_before_use_is_replaced() -> None:
    machine = FakeMachine()
    handler = Echo()
    async with serving(machine, handler):
        broken = machine.listening(NAME)[0]
        # Its wait fails, as ConnectNamedPipe does for a client that connected and left.
        broken.close()
        await anyio.wait_all_tasks_blocked()
        stream = PipeStream(machine.process(200).open_client_pipe(NAME))
        await stream.send(b"bye\n")
        assert await read_until_end(stream) == b"echo: bye\n"


async def test_failing_to_create_an_instance_is_retried_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    machine = FakeMachine()
    handler = Echo()
    daemon = machine.process(DAEMON_PID)
    daemon.create_failures = 2
    listener = NamedPipeChannelListener(NAME, max_line=1024, system=daemon)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler, tg)
        first = PipeStream(machine.process(200).open_client_pipe(NAME))
        await first.send(b"hi\n")
        assert await first.receive() == b"echo: hi\n"
        with anyio.fail_after(10):
            while not machine.listening(NAME):
                await anyio.sleep(0.01)
        second = PipeStream(machine.process(201).open_client_pipe(NAME))
        await second.send(b"bye\n")
        assert await read_until_end(second) == b"echo: bye\n"
        await listener.aclose()
        tg.cancel_scope.cancel()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert errors[0].startswith(f"cannot create an instance of {NAME} (retrying in 0.05 s)")


async def test_after_aclose_new_clients_find_no_pipe_and_serve_returns() -> None:
    machine = FakeMachine()
    handler = Echo()
    listener = NamedPipeChannelListener(NAME, max_line=1024, system=machine.process(DAEMON_PID))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler, tg)
            await anyio.wait_all_tasks_blocked()
            await listener.aclose()
            # serve() returns on its own: the task group ends without being cancelled.
    assert machine.instances(NAME) == []
    with pytest.raises(FileNotFoundError):
        machine.process(200).open_client_pipe(NAME)
    # The name is free again: a new daemon may start.
    NamedPipeChannelListener(NAME, max_line=1024, system=machine.process(102))
