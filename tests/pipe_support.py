"""An in-memory fake of the Win32 named-pipe calls (``convd_schemas.winpipe.PipeSystem``).

A :class:`FakeMachine` is the pipe namespace and the process table of one Windows machine;
``machine.process(pid, sid)`` is the ``PipeSystem`` one process sees. It keeps the rules of the
real calls that convd's logic depends on, as the Win32 documentation states them:

* ``FILE_FLAG_FIRST_PIPE_INSTANCE`` fails with ERROR_ACCESS_DENIED while any instance of the
  name is open;
* opening a name with no instance fails with ERROR_FILE_NOT_FOUND, with every instance
  connected with ERROR_PIPE_BUSY, and for a SID the DACL does not allow with
  ERROR_ACCESS_DENIED (the fake reads the allow ACEs of the SDDL it was given);
* a read returns ``b""`` once the other end closed and everything it wrote was read; a write
  to an end whose reader closed fails (ERROR_NO_DATA); a write waits while the pipe's buffer is
  full; closing an end makes its pending reads, writes and connect fail, as CloseHandle does
  to overlapped I/O.

It does not model remote clients, message mode or impersonation.
"""

from __future__ import annotations

import re

import anyio
from anyio.lowlevel import checkpoint

__all__ = ["USER", "FakeMachine", "FakeProcess", "connected_pair", "win_error"]

USER = "S-1-5-21-1111111111-2222222222-3333333333-1001"

_ERRORS: dict[int, type[OSError]] = {
    2: FileNotFoundError,
    5: PermissionError,
    109: BrokenPipeError,
    232: BrokenPipeError,
}


def win_error(winerror: int, text: str) -> OSError:
    """An OSError as Python raises it for a Win32 error on Windows (``.winerror`` set)."""
    exc = _ERRORS.get(winerror, OSError)(text)
    exc.winerror = winerror  # type: ignore[attr-defined]
    return exc


class _Direction:
    """One direction of a connected pipe: a buffer, and who has closed their end."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.writer_closed = False
        self.reader_closed = False
        self._changed = anyio.Event()

    def wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def changed(self) -> None:
        await self._changed.wait()


class FakePipeEnd:
    """One end of a connected pipe (``winpipe.PipeEnd``)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        #: At most this many bytes are taken per write (0: all), to test partial writes.
        self.write_limit = 0
        self.closed = False
        self.written: list[bytes] = []
        self._inbound: _Direction | None = None
        self._outbound: _Direction | None = None
        self._connected = anyio.Event()

    def _attach(self, inbound: _Direction, outbound: _Direction) -> None:
        self._inbound, self._outbound = inbound, outbound
        self._connected.set()

    def _aborted(self) -> OSError:
        # What the proactor raises for I/O ended by CloseHandle (ERROR_OPERATION_ABORTED).
        exc = ConnectionResetError("The I/O operation has been aborted")
        exc.winerror = 995  # type: ignore[attr-defined]
        return exc

    async def read(self, max_bytes: int) -> bytes:
        await checkpoint()
        inbound = self._inbound
        assert inbound is not None, "read before the pipe was connected"
        while True:
            if self.closed:
                raise self._aborted()
            if inbound.buffer:
                chunk = bytes(inbound.buffer[:max_bytes])
                del inbound.buffer[:max_bytes]
                inbound.wake()
                return chunk
            if inbound.writer_closed:
                return b""
            await inbound.changed()

    async def write(self, data: bytes) -> int:
        await checkpoint()
        outbound = self._outbound
        assert outbound is not None, "write before the pipe was connected"
        while True:
            if self.closed:
                raise self._aborted()
            if outbound.reader_closed:
                raise win_error(232, "The pipe is being closed")
            if len(outbound.buffer) < self.capacity:
                break
            await outbound.changed()  # the buffer is full: wait for the reader
        taken = data[: self.write_limit] if self.write_limit else data
        outbound.buffer += taken
        self.written.append(taken)
        outbound.wake()
        return len(taken)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for direction in (self._inbound, self._outbound):
            if direction is not None:
                direction.wake()
        if self._outbound is not None:
            self._outbound.writer_closed = True
        if self._inbound is not None:
            self._inbound.reader_closed = True
        self._connected.set()


class FakeServerPipe(FakePipeEnd):
    """One instance of a pipe (``winpipe.ServerPipe``)."""

    def __init__(self, machine: FakeMachine, name: str, sddl: str, owner_pid: int) -> None:
        super().__init__(machine.capacity)
        self.machine = machine
        self.name = name
        self.sddl = sddl
        self.owner_pid = owner_pid
        self.client: FakeClientPipe | None = None
        #: Set to make client_pid() fail (GetNamedPipeClientProcessId failing).
        self.client_pid_error: OSError | None = None

    async def wait_for_client(self) -> None:
        await self._connected.wait()
        if self.closed:
            raise win_error(995, "The I/O operation has been aborted")

    def client_pid(self) -> int:
        if self.client_pid_error is not None:
            raise self.client_pid_error
        assert self.client is not None
        return self.client.pid

    def close(self) -> None:
        super().close()
        self.machine._discard(self)


class FakeClientPipe(FakePipeEnd):
    """A client's end (``winpipe.ClientPipe``)."""

    def __init__(self, machine: FakeMachine, pid: int, server: FakeServerPipe) -> None:
        super().__init__(machine.capacity)
        self.pid = pid
        self.server = server

    def server_pid(self) -> int:
        return self.server.owner_pid


class FakeProcess:
    """The ``PipeSystem`` of process ``pid`` running as ``sid``."""

    def __init__(self, machine: FakeMachine, pid: int, sid: str) -> None:
        self.machine = machine
        self.pid = pid
        self.sid = sid
        #: Fail this many of the next non-first instance creations.
        self.create_failures = 0

    def current_user_sid(self) -> str:
        return self.sid

    def process_user_sid(self, pid: int) -> str:
        process = self.machine.processes.get(pid)
        if process is None:
            raise win_error(87, "The parameter is incorrect")  # OpenProcess: no such process
        return process.sid

    def create_server_pipe(self, name: str, sddl: str, *, first: bool) -> FakeServerPipe:
        if first and self.machine.instances(name):
            raise win_error(5, "Access is denied")
        if not first and self.create_failures:
            self.create_failures -= 1
            raise win_error(1450, "Insufficient system resources exist")
        pipe = FakeServerPipe(self.machine, name, sddl, self.pid)
        self.machine.pipes.setdefault(name, []).append(pipe)
        self.machine.created.append((name, sddl, first))
        return pipe

    def open_client_pipe(self, name: str) -> FakeClientPipe:
        instances = self.machine.instances(name)
        if not instances:
            raise win_error(2, "The system cannot find the file specified")
        allowed = re.findall(r"\(A;;GA;;;([^)]+)\)", instances[0].sddl)
        if self.sid not in allowed:
            raise win_error(5, "Access is denied")
        for server in instances:
            # An instance can be connected to from its creation on, before ConnectNamedPipe.
            if server.client is None:
                break
        else:
            raise win_error(231, "All pipe instances are busy")
        client = FakeClientPipe(self.machine, self.pid, server)
        to_server, to_client = _Direction(), _Direction()
        server.client = client
        client._attach(to_client, to_server)
        server._attach(to_server, to_client)
        return client


class FakeMachine:
    """The pipe namespace and processes of one (fake) Windows machine."""

    def __init__(self, capacity: int = 65536) -> None:
        self.capacity = capacity
        self.pipes: dict[str, list[FakeServerPipe]] = {}
        self.processes: dict[int, FakeProcess] = {}
        #: Every instance created: (name, sddl, first).
        self.created: list[tuple[str, str, bool]] = []

    def process(self, pid: int, sid: str = USER) -> FakeProcess:
        process = FakeProcess(self, pid, sid)
        self.processes[pid] = process
        return process

    def instances(self, name: str) -> list[FakeServerPipe]:
        return [pipe for pipe in self.pipes.get(name, []) if not pipe.closed]

    def listening(self, name: str) -> list[FakeServerPipe]:
        return [pipe for pipe in self.instances(name) if pipe.client is None]

    def _discard(self, pipe: FakeServerPipe) -> None:
        instances = self.pipes.get(pipe.name, [])
        if pipe in instances:
            instances.remove(pipe)


def connected_pair(capacity: int = 65536) -> tuple[FakePipeEnd, FakePipeEnd]:
    """Two connected pipe ends, without a machine around them."""
    a, b = FakePipeEnd(capacity), FakePipeEnd(capacity)
    a_to_b, b_to_a = _Direction(), _Direction()
    a._attach(b_to_a, a_to_b)
    b._attach(a_to_b, b_to_a)
    return a, b
