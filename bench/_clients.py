"""What runs in the benchmark's child processes: timed writers, subscribers, the calibration
echo, and the client library's round trips.

A timed writer does one kind of write (``conv.set_draft`` through the raw client, Redis SET and
PUBLISH, or a direct SQLite UPSERT) sequentially until the parent's end time, and reports every
latency, the writes completed inside the window, the errors and its own CPU time.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from _common import BenchError, run_child, sleep_until
from _convd import C2C, RawClient, RpcError, conv_ids, draft_text, login, set_draft_op

#: ("convd", socket, user) | ("redis", socket, pipelined) | ("sqlite", file, synchronous)
WriteSpec = tuple[str, str, Any]
Op = Callable[[int], None]


def _make_op(spec: WriteSpec, index: int) -> tuple[Op, Callable[[], None], tuple[type, ...]]:
    """(op, close, errors that count as a failed write rather than a broken benchmark)."""
    kind, address, option = spec
    if kind == "convd":
        op, close = set_draft_op(address, option, index)
        return op, close, (RpcError,)
    if kind == "redis":
        import redis

        from _redis import set_publish_op

        op, close = set_publish_op(address, index, pipelined=option)
        return op, close, (redis.ResponseError,)
    if kind == "sqlite":
        from _sqlite_peer import upsert_op

        op, close = upsert_op(address, index, option)
        return op, close, (sqlite3.OperationalError,)
    raise ValueError(f"unknown writer kind {kind!r}")


def timed_writer(
    conn: Connection, spec: WriteSpec, index: int, cpu: int | None, warmup: int
) -> None:
    """Sequential writes until the parent's end time; see the module's docstring."""

    def body() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        op, close, countable = _make_op(spec, index)
        counter = index * 10_000_000  # every write of every client differs
        for _ in range(warmup):
            op(counter)
            counter += 1
        conn.send(("ready", None))
        start_ns, end_ns = conn.recv()
        sleep_until(start_ns)
        latencies: list[int] = []
        in_window = 0
        errors = 0
        monotonic_ns = time.monotonic_ns
        cpu0 = time.process_time_ns()
        while True:
            t0 = monotonic_ns()
            try:
                op(counter)
            except countable:
                errors += 1
            else:
                latencies.append(monotonic_ns() - t0)
            t1 = monotonic_ns()
            counter += 1
            if t1 > end_ns:
                break
            in_window += 1
        used = time.process_time_ns() - cpu0
        close()
        conn.send(("done", (latencies, in_window, errors, used)))

    run_child(conn, body)


# -- convd fan-out -------------------------------------------------------------------------------


def subscriber(conn: Connection, path: str, user: str, expected: int) -> None:
    """Subscribe, report the start seq, then timestamp ``expected`` conv.event lines."""

    def body() -> None:
        client = login(path, user)
        seq = client.call("conv.subscribe", {})["seq"]
        conn.send(("ready", seq))
        cpu0 = time.process_time_ns()
        lines: list[bytes] = list(client.notifications)
        stamps: list[int] = [time.monotonic_ns()] * len(lines)
        buf = client.buf
        sock = client.sock
        monotonic_ns = time.monotonic_ns
        # Keep the hot loop minimal (stamp on arrival, parse later): subscriber CPU on a
        # 2-vCPU machine with 50 subscribers would otherwise delay the others' receipts.
        while len(lines) < expected:
            chunk = sock.recv(262144)
            now = monotonic_ns()
            if not chunk:
                raise ConnectionError(f"convd closed the connection after {len(lines)} events")
            buf += chunk
            start = 0
            while (index := buf.find(b"\n", start)) >= 0:
                lines.append(bytes(buf[start:index]))
                stamps.append(now)
                start = index + 1
            del buf[:start]
        cpu = time.process_time_ns() - cpu0
        receipts = []
        for line, stamp in zip(lines, stamps, strict=True):
            note = json.loads(line)
            if note.get("method") != "conv.event":
                raise BenchError(f"unexpected line {line[:200]!r}")
            receipts.append((note["params"]["seq"], stamp))
        client.close()
        conn.send(("done", (receipts, cpu)))

    run_child(conn, body)


def writer(conn: Connection, path: str, user: str, count: int, interval_ns: int) -> None:
    """Paced set_draft: record (seq, sent, acked) for each; seq is the ConvInfo's active time."""

    def body() -> None:
        client = login(path, user)
        ids = [f"f{k}" for k in range(10)]
        conn.send(("ready", None))
        conn.recv()
        cpu0 = time.process_time_ns()
        records: list[tuple[int, int, int]] = []
        monotonic_ns = time.monotonic_ns
        next_ns = monotonic_ns()
        for counter in range(count):
            sleep_until(next_ns)
            sent = monotonic_ns()
            result = client.set_draft(ids[counter % 10], draft_text(counter))
            acked = monotonic_ns()
            records.append((result["conv_active_time"], sent, acked))
            next_ns = max(next_ns + interval_ns, acked)
        cpu = time.process_time_ns() - cpu0
        client.close()
        conn.send(("done", (records, cpu)))

    run_child(conn, body)


# -- calibration ---------------------------------------------------------------------------------


def echo_server(conn: Connection, sock: socket.socket, cpu: int | None) -> None:
    """Echo what arrives until EOF: the calibration's server."""

    def body() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        conn.send(("ready", None))
        while data := sock.recv(64):
            sock.sendall(data)
        conn.send(("done", None))

    run_child(conn, body)


def echo_client(conn: Connection, sock: socket.socket, cpu: int | None, seconds: float) -> None:
    """Sequential 16-byte round trips for ``seconds`` after a warm-up."""

    def body() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        message = b"0123456789abcdef"
        for _ in range(1000):
            sock.sendall(message)
            sock.recv(64)
        latencies: list[int] = []
        monotonic_ns = time.monotonic_ns
        start = monotonic_ns()
        end = start + int(seconds * 1e9)
        t1 = start
        while t1 < end:
            t0 = monotonic_ns()
            sock.sendall(message)
            sock.recv(64)
            t1 = monotonic_ns()
            latencies.append(t1 - t0)
        sock.shutdown(socket.SHUT_WR)
        conn.send(("done", (latencies, (t1 - start) / 1e9)))

    run_child(conn, body)


# -- the client library --------------------------------------------------------------------------

LIBRARY_KINDS = ("raw socket", "Client (async)", "BlockingClient")


def library_client(
    conn: Connection, kind: str, path: str, user: str, seconds: float, warmup: int
) -> None:
    """``conv.set_draft`` round trips through one client kind for ``seconds``: latencies (ns)."""

    def body() -> None:
        ids = conv_ids("lib")
        counter = 0
        latencies: list[int] = []
        monotonic_ns = time.monotonic_ns

        def loop(call: Callable[[str, str], object]) -> None:
            nonlocal counter
            for _ in range(warmup):
                call(ids[counter % 100], draft_text(counter))
                counter += 1
            end = monotonic_ns() + int(seconds * 1e9)
            t1 = 0
            while t1 < end:
                text = draft_text(counter)  # made outside the timed call, as for every kind
                conv = ids[counter % 100]
                t0 = monotonic_ns()
                call(conv, text)
                t1 = monotonic_ns()
                latencies.append(t1 - t0)
                counter += 1

        if kind == "raw socket":
            client = login(path, user)
            loop(client.set_draft)
            client.close()
        elif kind == "Client (async)":
            import anyio

            from convd_client import Client

            async def run() -> None:
                nonlocal counter
                async with Client(path, reconnect=False) as client:
                    await client.login(user)
                    for _ in range(warmup):
                        await client.conv_set_draft(ids[counter % 100], C2C, draft_text(counter))
                        counter += 1
                    end = monotonic_ns() + int(seconds * 1e9)
                    t1 = 0
                    while t1 < end:
                        text = draft_text(counter)
                        conv = ids[counter % 100]
                        t0 = monotonic_ns()
                        await client.conv_set_draft(conv, C2C, text)
                        t1 = monotonic_ns()
                        latencies.append(t1 - t0)
                        counter += 1

            anyio.run(run, backend="asyncio")
        elif kind == "BlockingClient":
            from convd_client import BlockingClient

            with BlockingClient(path, reconnect=False) as blocking:
                blocking.login(user)
                loop(lambda conv, text: blocking.conv_set_draft(conv, C2C, text))
        else:
            raise ValueError(f"unknown client kind {kind!r}")
        conn.send(("done", latencies))

    run_child(conn, body)


__all__ = [
    "LIBRARY_KINDS",
    "RawClient",
    "WriteSpec",
    "echo_client",
    "echo_server",
    "library_client",
    "subscriber",
    "timed_writer",
    "writer",
]
