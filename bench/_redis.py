"""The Redis peer: what a user would otherwise reach for to share a draft (SET it, PUBLISH it).

The benchmark starts its own ``redis-server`` on a private Unix socket (no TCP port) with the
AOF on and ``appendfsync everysec``, drives it with redis-py (+hiredis when installed), and stops
it. Without redis-server or the redis package, the peer columns are skipped.

For the fan-out it also starts a second one with ``appendfsync always``: Redis making convd
``full``'s promise (the SET is on disk before any subscriber hears of it: Redis writes and
fdatasyncs the AOF before it flushes the clients' output buffers). The targets compare with the
first; the second shows what that promise costs Redis itself.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _common import BenchError, run_child, sleep_until
from _convd import conv_ids, draft_text

INSTALL_HINT = (
    "apt-get install redis-server (Debian/Ubuntu) and pip install redis hiredis "
    "(or pip install -e '.[bench]')"
)
CHANNEL = b"drafts"


def unavailable() -> str | None:
    """Why the Redis peer cannot run here, or None."""
    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server is not installed")
    if importlib.util.find_spec("redis") is None:
        missing.append("the redis Python package is not installed")
    if not missing:
        return None
    return "; ".join(missing) + f" (install: {INSTALL_HINT})"


def versions() -> str:
    import redis

    parts = [f"redis-py {redis.__version__}"]
    if importlib.util.find_spec("hiredis") is not None:
        import hiredis

        parts.append(f"hiredis {hiredis.__version__}")
    else:
        parts.append("no hiredis (pure-Python parser)")
    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
        parts.append(out.split()[2] if out.startswith("Redis server") else out.strip())
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return ", ".join(parts)


class RedisServer:
    """redis-server on ``root``/redis.sock with the AOF on, no TCP listener.

    ``appendfsync`` is ``everysec`` (the peer of the targets) or ``always``.
    """

    def __init__(self, root: Path, appendfsync: str = "everysec") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.socket = root / "redis.sock"
        self.log = root / "redis.log"
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            "redis-server",
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.root),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log),
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise BenchError(f"redis-server exited with {self.proc.returncode}: {err}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(str(self.socket))
                    probe.sendall(b"PING\r\n")
                    if probe.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise BenchError("redis-server did not start within 20 s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise BenchError(f"redis-server died with exit code {self.proc.returncode}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _connect(path: str) -> Any:
    import redis

    return redis.Redis(unix_socket_path=path, socket_timeout=30)


def set_publish_op(
    path: str, index: int, pipelined: bool
) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(op, close): op(counter) sets a 200-byte draft under one of this client's 100 keys and
    publishes it: SET then PUBLISH (two round trips), or both in one pipeline (one)."""
    client = _connect(path)
    keys = [f"draft:{conv}".encode() for conv in conv_ids(f"w{index}")]
    if pipelined:
        pipe = client.pipeline(transaction=False)

        def op(counter: int) -> None:
            value = draft_text(counter).encode()
            pipe.set(keys[counter % 100], value)
            pipe.publish(CHANNEL, value)
            pipe.execute()

    else:

        def op(counter: int) -> None:
            value = draft_text(counter).encode()
            client.set(keys[counter % 100], value)
            client.publish(CHANNEL, value)

    return op, client.close


# -- fan-out -------------------------------------------------------------------------------------


def subscriber(conn: Connection, path: str, expected: int) -> None:
    """Subscribe, say ready, then timestamp ``expected`` messages (payload: b"<seq>|draft")."""

    def body() -> None:
        client = _connect(path)
        pubsub = client.pubsub()
        pubsub.subscribe(CHANNEL)
        confirmation = pubsub.get_message(timeout=10)
        if not confirmation or confirmation["type"] != "subscribe":
            raise BenchError(f"no subscribe confirmation: {confirmation!r}")
        conn.send(("ready", 0))
        cpu0 = time.process_time_ns()
        monotonic_ns = time.monotonic_ns
        received: list[tuple[bytes, int]] = []
        # listen() blocks in the parser (no poll before each read, unlike get_message); the
        # socket timeout (30 s) ends a stalled run.
        for message in pubsub.listen():
            now = monotonic_ns()
            if message["type"] == "message":
                received.append((message["data"], now))
                if len(received) == expected:
                    break
        cpu = time.process_time_ns() - cpu0
        receipts = [(int(data.split(b"|", 1)[0]), stamp) for data, stamp in received]
        pubsub.close()
        client.close()
        conn.send(("done", (receipts, cpu)))

    run_child(conn, body)


def writer(conn: Connection, path: str, count: int, interval_ns: int) -> None:
    """Paced pipelined SET+PUBLISH; record (seq, sent, acked) for each."""

    def body() -> None:
        client = _connect(path)
        pipe = client.pipeline(transaction=False)
        keys = [f"draft:f{k}".encode() for k in range(10)]
        conn.send(("ready", None))
        conn.recv()
        cpu0 = time.process_time_ns()
        records: list[tuple[int, int, int]] = []
        monotonic_ns = time.monotonic_ns
        next_ns = monotonic_ns()
        for seq in range(1, count + 1):
            sleep_until(next_ns)
            sent = monotonic_ns()
            value = draft_text(seq).encode()
            pipe.set(keys[seq % 10], value)
            pipe.publish(CHANNEL, b"%d|" % seq + value)
            pipe.execute()
            acked = monotonic_ns()
            records.append((seq, sent, acked))
            next_ns = max(next_ns + interval_ns, acked)
        cpu = time.process_time_ns() - cpu0
        client.close()
        conn.send(("done", (records, cpu)))

    run_child(conn, body)
