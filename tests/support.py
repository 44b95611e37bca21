"""Test support: run the real ``convd`` as a separate process and talk to it over its socket."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from convd_schemas import DaemonStatus

__all__ = [
    "DaemonProcess",
    "LineClient",
    "MemoryByteStream",
    "RpcFailure",
    "memory_byte_stream_pair",
    "short_tmpdir",
    "text_draft",
]

_START_TIMEOUT = 15.0


@contextmanager
def short_tmpdir() -> Iterator[Path]:
    """A private directory with a short path: ``sun_path`` holds at most 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="cvd-", dir="/tmp") as name:
        path = Path(name)
        path.chmod(0o700)
        yield path


class DaemonProcess:
    """The real daemon (``python -m convd``) on a temporary socket and database."""

    def __init__(self, root: Path, *extra_args: str) -> None:
        self.root = root
        self.socket = root / "run" / "convd.sock"
        self.db = root / "data" / "convd.db"
        self.log = root / "convd.log"
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CONVD_SOCKET"] = str(self.socket)
        env["XDG_RUNTIME_DIR"] = str(self.root)
        env["XDG_DATA_HOME"] = str(self.root / "xdg-data")
        env.pop("CONVD_DB", None)
        return env

    def start(self, wait: bool = True) -> DaemonProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "convd",
                    "--socket",
                    str(self.socket),
                    "--db",
                    str(self.db),
                    "--log-level",
                    "debug",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=log,
                env=self.env,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"convd exited with {self.process.returncode}:\n{self.logs()}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(str(self.socket))
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"convd did not start within {_START_TIMEOUT} s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # Not left running: its Popen's ResourceWarning would fail a later test.
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def client(self, user: str | None = "alice") -> LineClient:
        client = LineClient(self.socket)
        if user is not None:
            try:
                client.call("session.login", {"user_id": user})
            except BaseException:
                client.close()
                raise
        return client


class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error
        self.code: int = error["code"]
        self.data: Any = error.get("data")


class LineClient:
    """A blocking NDJSON JSON-RPC client, deliberately independent of ``convd_client``."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except BaseException:
            # Closed here, or it is closed by the collector during some later test, whose
            # ``filterwarnings = error`` then turns the ResourceWarning into that test's error.
            self.sock.close()
            raise
        self._reader = self.sock.makefile("rb")
        self._next_id = 1
        #: Notifications received while waiting for responses, in arrival order.
        self.notifications: list[dict[str, Any]] = []

    def close(self) -> None:
        self._reader.close()
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        line = self._reader.readline()
        if not line:
            raise EOFError("connection closed by convd")
        return line

    def read_json(self) -> Any:
        return json.loads(self.read_line())

    def request(self, method: str, params: Any = None, **extra: Any) -> dict[str, Any]:
        """Send one request; return the whole response object (notifications are kept)."""
        request_id = self._next_id
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            message["params"] = params
        message.update(extra)
        self.send_raw(json.dumps(message).encode() + b"\n")
        while True:
            response = self.read_json()
            if isinstance(response, dict) and "id" not in response:
                self.notifications.append(response)
                continue
            assert response["id"] == request_id, response
            return dict(response)

    def call(self, method: str, params: Any = None) -> Any:
        """Send one request; return its result or raise RpcFailure."""
        response = self.request(method, params)
        if "error" in response:
            raise RpcFailure(response["error"])
        return response["result"]

    def error(self, method: str, params: Any = None) -> dict[str, Any]:
        """Send one request that must fail; return its ``error`` object."""
        response = self.request(method, params)
        assert "error" in response, f"{method} succeeded: {response}"
        assert "result" not in response, response
        return dict(response["error"])

    def send_json(self, message: Any) -> None:
        """Send one JSON text as one line."""
        self.send_raw(json.dumps(message).encode() + b"\n")

    def notify(self, method: str, params: Any = None) -> None:
        """Send a notification (no ``id``): convd owes no reply."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send_json(message)

    def next_notification(self) -> dict[str, Any]:
        if self.notifications:
            return self.notifications.pop(0)
        message = self.read_json()
        assert "id" not in message, message
        return dict(message)


def text_draft(*texts: str, user_define: str = "", edit_time: int | None = None) -> dict[str, Any]:
    """A ``Draft`` wire object holding the given text elements."""
    draft: dict[str, Any] = {
        "draft_msg": {
            "message_elem_array": [{"elem_type": 0, "text_elem_content": t} for t in texts]
        },
        "draft_user_define": user_define,
    }
    if edit_time is not None:
        draft["draft_edit_time"] = edit_time
    return draft


class MemoryByteStream(ByteStream):
    """One end of an in-memory, full-duplex byte stream (for unit tests without sockets).

    ``receive`` honours ``max_bytes`` and keeps the rest of a chunk for the next call, so a
    test controls exactly which bytes arrive together.
    """

    def __init__(
        self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        self._send = send
        self._receive = receive
        self._pending = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._pending:
            # EndOfStream once the other end has closed its sending side.
            self._pending = await self._receive.receive()
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def send(self, item: bytes) -> None:
        await self._send.send(item)

    async def send_eof(self) -> None:
        self._send.close()

    async def aclose(self) -> None:
        self._send.close()
        self._receive.close()


def memory_byte_stream_pair(
    buffer: float = float("inf"),
) -> tuple[MemoryByteStream, MemoryByteStream]:
    """Two connected ends: what one sends, the other receives (``buffer`` chunks each way)."""
    a_send, b_receive = anyio.create_memory_object_stream[bytes](buffer)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](buffer)
    return MemoryByteStream(a_send, a_receive), MemoryByteStream(b_send, b_receive)


async def fixed_status() -> DaemonStatus:
    """A ``daemon.status`` provider for tests that build the rpc layer without a server."""
    return DaemonStatus(
        version="test",
        pid=1,
        uptime_seconds=0.0,
        connections=1,
        socket_path="s",
        database_path="d",
        conversations=0,
    )


def stream_connection(
    stream: ByteStream,
    dispatcher: Any,
    origin: str = "c1",
    *,
    max_line: int = 1 << 20,
    outbox_size: int = 64,
    max_outbound: int | None = None,
) -> tuple[Any, Any]:
    """A daemon-side Connection over an in-memory byte stream: (its StreamChannel, it)."""
    from convd.rpc.connection import MAX_OUTBOUND_BYTES, Connection
    from convd.transport import StreamChannel

    channel = StreamChannel(stream, max_line)
    connection = Connection(
        channel,
        dispatcher,
        origin,
        outbox_size=outbox_size,
        max_outbound=MAX_OUTBOUND_BYTES if max_outbound is None else max_outbound,
    )
    return channel, connection


async def run_stream_connection(channel: Any, connection: Any) -> None:
    """Serve ``connection`` as the daemon does, its channel's writer alongside; returns when
    the connection ended and what it queued was sent (the stream is then closed)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(channel.write_queued)
        try:
            await connection.run()
        finally:
            channel.close()


def settled_bytes(path: Path, timeout: float = 10.0) -> bytes:
    """A running daemon's database file once its background checkpoint (four times a second,
    after writes) has stopped changing it: what a test compares to see that something else
    left the file alone."""
    deadline = time.monotonic() + timeout
    current = path.read_bytes()
    while time.monotonic() < deadline:
        time.sleep(0.6)
        again = path.read_bytes()
        if again == current:
            return current
        current = again
    raise AssertionError(f"{path} kept changing for {timeout} s")


class CommCallback:
    """A TIMCommCallback (the C face's ``cb``) that records its calls, for a test to wait on."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[int, str, str, Any]] = queue.Queue()

    def __call__(self, code: int, desc: str, json_params: str, user_data: Any) -> None:
        self.calls.put((code, desc, json_params, user_data))

    def wait(self) -> tuple[int, str, str, Any]:
        return self.calls.get(timeout=5)
