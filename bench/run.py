"""Benchmark the real convd daemon: ``conv.set_draft`` round trips and ``conv.event`` fan-out.

    python bench/run.py                       # everything, about a minute
    python bench/run.py --quick               # smoke run, well under 20 s
    python bench/run.py --scenario fanout     # latency | throughput | set_draft | fanout | all

The script starts its own daemon (``python -m convd``) on a socket and database in a fresh
directory under /tmp, runs the chosen scenarios with every client in its own OS process (forked;
raw Unix sockets and msgspec, no convd_client), prints tables, stops the daemon with SIGTERM
(checking that it exits 0) and removes the directory.

Scenarios:

* ``latency``: one client process doing sequential ``conv.set_draft`` request/response, in two
  placements, alternating over a few rounds: daemon (every thread) and client pinned to the same
  vCPU (what ``taskset -a -c 0`` does), and unpinned (left to the scheduler).
* ``throughput``: 8 client processes, unpinned, each on its own connection and its own
  conversations, all logged in as the same account (a per-user daemon serves one user's apps).
* ``set_draft``: both of the above.
* ``fanout``: one writer process sets a draft every 5 ms; N = 1, 10, 50 subscriber processes
  (same account, all subscribed before the first write) record when each ``conv.event`` arrives.

Every ``conv.set_draft`` writes a different ~200-byte text, so every call commits (and fsyncs:
the daemon runs SQLite with synchronous=FULL). Times are ``time.monotonic_ns`` (CLOCK_MONOTONIC,
system-wide on Linux, so comparable between processes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import msgspec

# Fork: children start in milliseconds (50 subscribers) and need nothing re-imported. The
# parent starts no threads, so forking it is safe.
_MP = multiprocessing.get_context("fork")

_STARTUP_TIMEOUT = 20.0
_CHILD_TIMEOUT = 60.0
_SOCKET_TIMEOUT = 30.0
_FILLER = b"x" * 180  # the draft text is "bench <counter> " + this: about 200 bytes

# One request line, varied by id, conversation and counter (so no write is a no-op).
_SET_DRAFT = (
    b'{"jsonrpc":"2.0","id":%d,"method":"conv.set_draft","params":{"conv_id":"%s",'
    b'"conv_type":1,"draft":{"draft_msg":{"message_elem_array":[{"elem_type":0,'
    b'"text_elem_content":"bench %d ' + _FILLER + b'"}]}}}}\n'
)


# -- a minimal blocking NDJSON JSON-RPC client --------------------------------------------------


class _Response(msgspec.Struct):
    id: int | None = None
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: dict[str, Any] | None = None


class _ActiveTime(msgspec.Struct):
    conv_active_time: int


class _EventParams(msgspec.Struct):
    seq: int


class _Notification(msgspec.Struct):
    method: str
    params: _EventParams


_response_decoder = msgspec.json.Decoder(_Response)
_active_time_decoder = msgspec.json.Decoder(_ActiveTime)
_notification_decoder = msgspec.json.Decoder(_Notification)
_encoder = msgspec.json.Encoder()


class RpcError(Exception):
    pass


class RawClient:
    """One connection; sequential request/response; notifications are kept aside."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(_SOCKET_TIMEOUT)
        self.sock.connect(path)
        self.buf = bytearray()
        self.next_id = 1
        self.notifications: list[bytes] = []

    def close(self) -> None:
        self.sock.close()

    def read_line(self) -> bytes:
        while True:
            index = self.buf.find(b"\n")
            if index >= 0:
                line = bytes(self.buf[:index])
                del self.buf[: index + 1]
                return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("convd closed the connection")
            self.buf += chunk

    def take_id(self) -> int:
        request_id = self.next_id
        self.next_id += 1
        return request_id

    def read_response(self, request_id: int) -> _Response:
        while True:
            line = self.read_line()
            response = _response_decoder.decode(line)
            if response.id is None and response.error is None:
                self.notifications.append(line)  # a notification: no id, no error
                continue
            if response.error is not None:
                raise RpcError(f"request {request_id}: {response.error}")
            if response.id != request_id:
                raise RpcError(f"expected a reply to id {request_id}, got {line[:200]!r}")
            return response

    def call(self, method: str, params: dict[str, Any]) -> Any:
        request_id = self.take_id()
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.sock.sendall(_encoder.encode(message) + b"\n")
        return msgspec.json.decode(self.read_response(request_id).result)

    def set_draft(self, conv_id: bytes, counter: int) -> _Response:
        """One ``conv.set_draft``; the reply is checked (id, no error), not fully parsed."""
        request_id = self.take_id()
        self.sock.sendall(_SET_DRAFT % (request_id, conv_id, counter))
        return self.read_response(request_id)


def _login(path: str, user: str) -> RawClient:
    client = RawClient(path)
    client.call("session.login", {"user_id": user})
    return client


def _child(conn: Connection, body: Callable[[], None]) -> None:
    """Run ``body`` in a child; any failure goes to the parent as ("error", traceback)."""
    try:
        body()
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _sleep_until(deadline_ns: int) -> None:
    delay = deadline_ns - time.monotonic_ns()
    if delay > 0:
        time.sleep(delay / 1e9)


# -- child processes -------------------------------------------------------------------------


def _set_draft_client(
    conn: Connection, path: str, user: str, index: int, cpu: int | None, warmup: int
) -> None:
    """Sequential set_draft on this client's own 100 conversations until the parent's end time."""

    def body() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        client = _login(path, user)
        convs = [f"w{index}-{k}".encode() for k in range(100)]
        counter = 0
        for _ in range(warmup):
            client.set_draft(convs[counter % 100], counter)
            counter += 1
        conn.send(("ready", None))
        start_ns, end_ns = conn.recv()
        _sleep_until(start_ns)
        latencies: list[int] = []
        in_window = 0
        monotonic_ns = time.monotonic_ns
        cpu0 = time.process_time_ns()
        while True:
            t0 = monotonic_ns()
            client.set_draft(convs[counter % 100], counter)
            t1 = monotonic_ns()
            counter += 1
            latencies.append(t1 - t0)
            if t1 > end_ns:
                break
            in_window += 1
        used = time.process_time_ns() - cpu0
        client.close()
        conn.send(("done", (latencies, in_window, used)))

    _child(conn, body)


def _subscriber(conn: Connection, path: str, user: str, expected: int) -> None:
    """Subscribe, report the start seq, then timestamp ``expected`` conv.event lines."""

    def body() -> None:
        client = _login(path, user)
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
            note = _notification_decoder.decode(line)
            if note.method != "conv.event":
                raise RpcError(f"unexpected line {line[:200]!r}")
            receipts.append((note.params.seq, stamp))
        client.close()
        conn.send(("done", (receipts, cpu)))

    _child(conn, body)


def _writer(conn: Connection, path: str, user: str, count: int, interval_ns: int) -> None:
    """Paced set_draft: record (seq, sent, acked) for each; seq is the ConvInfo's active time."""

    def body() -> None:
        client = _login(path, user)
        convs = [f"f{k}".encode() for k in range(10)]
        conn.send(("ready", None))
        conn.recv()
        cpu0 = time.process_time_ns()
        records: list[tuple[int, int, int]] = []
        monotonic_ns = time.monotonic_ns
        next_ns = monotonic_ns()
        for counter in range(count):
            _sleep_until(next_ns)
            sent = monotonic_ns()
            response = client.set_draft(convs[counter % 10], counter)
            acked = monotonic_ns()
            seq = _active_time_decoder.decode(response.result).conv_active_time
            records.append((seq, sent, acked))
            next_ns = max(next_ns + interval_ns, acked)
        cpu = time.process_time_ns() - cpu0
        client.close()
        conn.send(("done", (records, cpu)))

    _child(conn, body)


def _echo_server(conn: Connection, sock: socket.socket, cpu: int | None) -> None:
    """Echo what arrives until EOF: the calibration's server."""

    def body() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        conn.send(("ready", None))
        while data := sock.recv(64):
            sock.sendall(data)
        conn.send(("done", None))

    _child(conn, body)


def _echo_client(conn: Connection, sock: socket.socket, cpu: int | None, seconds: float) -> None:
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

    _child(conn, body)


# -- the parent's side of children -------------------------------------------------------------


class Children:
    """Forked workers with one pipe each; failures and silence become BenchError."""

    def __init__(self) -> None:
        self.procs: list[tuple[BaseProcess, Connection]] = []

    def spawn(self, target: Callable[..., None], *args: Any) -> None:
        parent_end, child_end = _MP.Pipe()
        proc = _MP.Process(target=target, args=(child_end, *args), daemon=True)
        proc.start()
        child_end.close()
        self.procs.append((proc, parent_end))

    def receive_all(self, expect: str, timeout: float = _CHILD_TIMEOUT) -> list[Any]:
        deadline = time.monotonic() + timeout
        values = []
        for index, (proc, conn) in enumerate(self.procs):
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise BenchError(f"child {index} (pid {proc.pid}) sent nothing for {timeout} s")
            try:
                kind, value = conn.recv()
            except EOFError:
                raise BenchError(
                    f"child {index} (pid {proc.pid}) died (exit code {proc.exitcode})"
                ) from None
            if kind == "error":
                raise BenchError(f"child {index} (pid {proc.pid}) failed:\n{value}")
            if kind != expect:
                raise BenchError(f"child {index} sent {kind!r}, expected {expect!r}")
            values.append(value)
        return values

    def send_all(self, value: Any) -> None:
        for _, conn in self.procs:
            conn.send(value)

    def close(self) -> None:
        for proc, conn in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            conn.close()
        self.procs.clear()


@contextlib.contextmanager
def children() -> Iterator[Children]:
    group = Children()
    try:
        yield group
    finally:
        group.close()


class BenchError(Exception):
    pass


# -- the daemon ------------------------------------------------------------------------------


class Daemon:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "run" / "convd.sock"
        self.db = root / "data" / "convd.db"
        self.log = root / "convd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.allowed_cpus: set[int] = os.sched_getaffinity(0)

    def start(self) -> None:
        env = dict(os.environ)
        for name in ("CONVD_SOCKET", "CONVD_DB"):
            env.pop(name, None)
        env["XDG_RUNTIME_DIR"] = str(self.root)
        env["XDG_DATA_HOME"] = str(self.root / "xdg-data")
        command = [sys.executable, "-m", "convd", "--socket", str(self.socket)]
        command += ["--db", str(self.db), "--log-level", "info"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"convd exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(str(self.socket))
                return
            except OSError:
                time.sleep(0.02)
        raise BenchError(f"convd did not start within {_STARTUP_TIMEOUT} s:\n{self.logs()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise BenchError(f"convd died with exit code {self.proc.returncode}:\n{self.logs()}")

    def stop(self) -> int:
        """SIGTERM and wait; BenchError if it had died already or does not exit."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise BenchError(f"convd had already exited with {self.proc.returncode}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise BenchError("convd did not exit within 20 s of SIGTERM; killed") from None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _thread_ids(self) -> list[int]:
        return [int(tid) for tid in os.listdir(f"/proc/{self.pid}/task")]

    def set_affinity(self, cpus: set[int]) -> None:
        """Like ``taskset -a -p``: every existing thread (new threads inherit it)."""
        for tid in self._thread_ids():
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(tid, cpus)

    def cpu_ns(self) -> dict[int, int]:
        """CPU time of each of the daemon's threads (scheduler statistics, nanoseconds)."""
        times = {}
        for tid in self._thread_ids():
            with (
                contextlib.suppress(FileNotFoundError, ProcessLookupError),
                open(f"/proc/{self.pid}/task/{tid}/schedstat") as f,
            ):
                times[tid] = int(f.read().split()[0])
        return times


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


class Meter:
    """Daemon CPU (event-loop thread, other threads) and machine busy between start/stop."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.cpu_ns = 0
        self.loop_cpu_ns = 0  # the main thread: asyncio loop, JSON-RPC, domain logic
        self.busy = 0.0
        self.wall_ns = 0
        #: CPU of the benchmark's own client processes in the same window (they report it).
        self.client_cpu_ns = 0
        self._cpu0: dict[int, int] = {}
        self._ticks0 = (0, 0)
        self._wall0 = 0

    def start(self) -> None:
        self._cpu0 = self.daemon.cpu_ns()
        self._ticks0 = _machine_ticks()
        self._wall0 = time.monotonic_ns()

    def stop(self) -> None:
        cpu = self.daemon.cpu_ns()
        deltas = {tid: ns - self._cpu0.get(tid, 0) for tid, ns in cpu.items()}
        self.cpu_ns = sum(deltas.values())
        self.loop_cpu_ns = deltas.get(self.daemon.pid, 0)
        self.wall_ns = time.monotonic_ns() - self._wall0
        busy, total = _machine_ticks()
        span = total - self._ticks0[1]
        self.busy = 100.0 * (busy - self._ticks0[0]) / span if span else 0.0

    @property
    def other_pct(self) -> float:
        """Machine busy % not explained by the daemon and the benchmark's clients: other load
        on the machine (or the benchmark's parent, and rounding of the tick counters)."""
        capacity = self.wall_ns * (os.cpu_count() or 1)
        ours = 100.0 * (self.cpu_ns + self.client_cpu_ns) / capacity if capacity else 0.0
        return self.busy - ours


# -- statistics ------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    if not sorted_values:
        return float("nan")
    position = (len(sorted_values) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] * (1 - fraction) + sorted_values[high] * fraction


def _us(ns: float) -> float:
    return ns / 1000.0


# -- scenarios -------------------------------------------------------------------------------


@dataclass
class Plan:
    quick: bool
    clients: int
    latency_rounds: int
    latency_seconds: float
    throughput_seconds: float
    warmup_ops: int
    fanout_sizes: tuple[int, ...]
    fanout_events: int
    fanout_warmup: int
    fanout_interval_ms: float
    calibration_seconds: float

    @classmethod
    def make(cls, quick: bool, clients: int) -> Plan:
        if quick:
            return cls(quick, clients, 1, 1.0, 1.5, 50, (1, 10, 50), 60, 5, 5.0, 0.5)
        return cls(quick, clients, 3, 4.0, 10.0, 300, (1, 10, 50), 400, 20, 5.0, 1.5)


@dataclass
class SetDraftRow:
    placement: str
    clients: int
    rounds: int
    ops: int
    ops_per_s: float
    ops_per_s_min: float
    ops_per_s_max: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    daemon_cpu_us_per_op: float
    daemon_loop_cpu_us_per_op: float
    client_cpu_us_per_op: float
    machine_busy_pct: float
    other_load_pct: float  # the worst round


@dataclass
class FanoutRow:
    subscribers: int
    events: int
    receipts: int
    missing: int
    send_p50_us: float
    send_p99_us: float
    ack_p50_us: float
    ack_p99_us: float
    ack_last_p50_us: float
    ack_last_p99_us: float
    send_last_p50_us: float
    send_last_p99_us: float
    before_ack_pct: float
    writer_rtt_p50_us: float
    writer_rtt_p99_us: float
    daemon_cpu_us_per_event: float
    daemon_loop_cpu_us_per_event: float
    client_cpu_us_per_event: float  # the writer and all subscribers
    machine_busy_pct: float
    other_load_pct: float
    notes: list[str] = field(default_factory=list)


def _run_set_draft_round(
    daemon: Daemon, plan: Plan, clients: int, cpu: int | None, seconds: float, user: str
) -> Round:
    """One timed round; returns (latencies ns, ops in window, window seconds, meter)."""
    meter = Meter(daemon)
    with children() as group:
        for index in range(clients):
            group.spawn(_set_draft_client, str(daemon.socket), user, index, cpu, plan.warmup_ops)
        group.receive_all("ready")
        start_ns = time.monotonic_ns() + 50_000_000
        end_ns = start_ns + int(seconds * 1e9)
        group.send_all((start_ns, end_ns))
        _sleep_until(start_ns)
        meter.start()
        _sleep_until(end_ns)
        meter.stop()
        results = group.receive_all("done")
    daemon.check_alive()
    meter.client_cpu_ns = sum(cpu for _, _, cpu in results)
    latencies = [value for lat, _, _ in results for value in lat]
    in_window = sum(count for _, count, _ in results)
    return Round(latencies, in_window, seconds, meter)


@dataclass
class Round:
    latencies: list[int]
    ops: int  # completed inside the timed window
    seconds: float
    meter: Meter


def _set_draft_row(placement: str, clients: int, rounds: list[Round]) -> SetDraftRow:
    latencies = sorted(v for r in rounds for v in r.latencies)
    rates = [r.ops / r.seconds for r in rounds]
    ops = sum(r.ops for r in rounds)
    cpu = sum(r.meter.cpu_ns for r in rounds)
    loop_cpu = sum(r.meter.loop_cpu_ns for r in rounds)
    client_cpu = sum(r.meter.client_cpu_ns for r in rounds)
    return SetDraftRow(
        placement=placement,
        clients=clients,
        rounds=len(rounds),
        ops=len(latencies),
        ops_per_s=statistics.median(rates),
        ops_per_s_min=min(rates),
        ops_per_s_max=max(rates),
        p50_us=_us(percentile(latencies, 50)),
        p90_us=_us(percentile(latencies, 90)),
        p99_us=_us(percentile(latencies, 99)),
        p999_us=_us(percentile(latencies, 99.9)),
        max_us=_us(latencies[-1]),
        daemon_cpu_us_per_op=_us(cpu / ops) if ops else float("nan"),
        daemon_loop_cpu_us_per_op=_us(loop_cpu / ops) if ops else float("nan"),
        client_cpu_us_per_op=_us(client_cpu / ops) if ops else float("nan"),
        machine_busy_pct=statistics.median(r.meter.busy for r in rounds),
        other_load_pct=max(r.meter.other_pct for r in rounds),
    )


@dataclass
class EchoRow:
    placement: str
    ops_per_s: float
    p50_us: float
    p99_us: float


def scenario_calibration(daemon: Daemon, plan: Plan) -> list[EchoRow]:
    rows = []
    for placement in _placements(daemon.allowed_cpus):
        name = placement.name
        server_end, client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with children() as server, children() as client:
            server.spawn(_echo_server, server_end, placement.server_cpu)
            server.receive_all("ready")
            client.spawn(_echo_client, client_end, placement.client_cpu, plan.calibration_seconds)
            server_end.close()
            client_end.close()
            ((latencies, seconds),) = client.receive_all("done")
            server.receive_all("done")
        latencies.sort()
        rows.append(
            EchoRow(
                name,
                len(latencies) / seconds,
                _us(percentile(latencies, 50)),
                _us(percentile(latencies, 99)),
            )
        )
    return rows


@dataclass(frozen=True)
class Placement:
    name: str
    server_cpu: int | None  # every thread of the server (daemon); None: unpinned
    client_cpu: int | None


def _placements(allowed: set[int]) -> list[Placement]:
    """Same CPU and split (when there are two CPUs to use), then unpinned."""
    cpus = sorted(allowed)
    placements = []
    if len(cpus) > 1:
        a, b = cpus[:2]
        placements.append(Placement(f"1 client, same CPU ({a})", a, a))
        placements.append(Placement(f"1 client, split (daemon {a}, client {b})", a, b))
    placements.append(Placement("1 client, unpinned", None, None))
    return placements


def scenario_latency(daemon: Daemon, plan: Plan) -> list[SetDraftRow]:
    allowed = daemon.allowed_cpus
    placements = _placements(allowed)
    rounds: dict[str, list[Round]] = {p.name: [] for p in placements}
    # Alternate the placements round by round so that drift hits them alike.
    for _ in range(plan.latency_rounds):
        for p in placements:
            daemon.set_affinity({p.server_cpu} if p.server_cpu is not None else allowed)
            try:
                rounds[p.name].append(
                    _run_set_draft_round(
                        daemon, plan, 1, p.client_cpu, plan.latency_seconds, "bench"
                    )
                )
            finally:
                daemon.set_affinity(allowed)
    return [_set_draft_row(p.name, 1, rounds[p.name]) for p in placements]


def scenario_throughput(daemon: Daemon, plan: Plan) -> list[SetDraftRow]:
    daemon.set_affinity(daemon.allowed_cpus)
    result = _run_set_draft_round(
        daemon, plan, plan.clients, None, plan.throughput_seconds, "bench"
    )
    return [_set_draft_row(f"{plan.clients} clients, unpinned", plan.clients, [result])]


def _fanout_once(daemon: Daemon, plan: Plan, subscribers: int) -> FanoutRow:
    user = f"fan{subscribers}"
    total = plan.fanout_warmup + plan.fanout_events
    interval_ns = int(plan.fanout_interval_ms * 1e6)
    meter = Meter(daemon)
    notes: list[str] = []
    with children() as subs, children() as writer:
        for _ in range(subscribers):
            subs.spawn(_subscriber, str(daemon.socket), user, total)
        start_seqs = set(subs.receive_all("ready"))
        if len(start_seqs) != 1:
            notes.append(f"subscribers started at different seqs {sorted(start_seqs)}")
        writer.spawn(_writer, str(daemon.socket), user, total, interval_ns)
        writer.receive_all("ready")
        meter.start()
        writer.send_all("go")
        ((records, writer_cpu),) = writer.receive_all("done")
        meter.stop()
        sub_results = subs.receive_all("done")
    daemon.check_alive()
    receipts = [r for r, _ in sub_results]
    meter.client_cpu_ns = writer_cpu + sum(cpu for _, cpu in sub_results)

    measured = records[plan.fanout_warmup :]
    by_seq = {seq: (sent, acked) for seq, sent, acked in measured}
    start_seq = min(start_seqs)
    expected = list(range(start_seq + 1, start_seq + total + 1))
    if [seq for seq, _, _ in records] != expected:
        notes.append("writer's seqs (ConvInfo.conv_active_time) are not consecutive")
    from_send: list[int] = []
    from_ack: list[int] = []
    last_recv: dict[int, int] = {}
    missing = 0
    for per_sub in receipts:
        got = dict(per_sub)
        for seq, (sent, acked) in by_seq.items():
            stamp = got.get(seq)
            if stamp is None:
                missing += 1
                continue
            from_send.append(stamp - sent)
            from_ack.append(stamp - acked)
            last_recv[seq] = max(last_recv.get(seq, stamp), stamp)
    from_send.sort()
    from_ack.sort()
    last_ack = sorted(last_recv[seq] - by_seq[seq][1] for seq in last_recv)
    last_send = sorted(last_recv[seq] - by_seq[seq][0] for seq in last_recv)
    rtt = sorted(acked - sent for _, sent, acked in measured)
    before_ack = sum(1 for value in from_ack if value < 0)
    return FanoutRow(
        subscribers=subscribers,
        events=len(measured),
        receipts=len(from_ack),
        missing=missing,
        send_p50_us=_us(percentile(from_send, 50)),
        send_p99_us=_us(percentile(from_send, 99)),
        ack_p50_us=_us(percentile(from_ack, 50)),
        ack_p99_us=_us(percentile(from_ack, 99)),
        ack_last_p50_us=_us(percentile(last_ack, 50)),
        ack_last_p99_us=_us(percentile(last_ack, 99)),
        send_last_p50_us=_us(percentile(last_send, 50)),
        send_last_p99_us=_us(percentile(last_send, 99)),
        before_ack_pct=100.0 * before_ack / len(from_ack) if from_ack else float("nan"),
        writer_rtt_p50_us=_us(percentile(rtt, 50)),
        writer_rtt_p99_us=_us(percentile(rtt, 99)),
        daemon_cpu_us_per_event=_us(meter.cpu_ns / total),
        daemon_loop_cpu_us_per_event=_us(meter.loop_cpu_ns / total),
        client_cpu_us_per_event=_us(meter.client_cpu_ns / total),
        machine_busy_pct=meter.busy,
        other_load_pct=meter.other_pct,
        notes=notes,
    )


def scenario_fanout(daemon: Daemon, plan: Plan) -> list[FanoutRow]:
    daemon.set_affinity(daemon.allowed_cpus)
    return [_fanout_once(daemon, plan, n) for n in plan.fanout_sizes]


# -- output ----------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _f(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


CALIBRATION_TITLE = "== machine calibration: Unix socket round trip, no convd (us) =="
SET_DRAFT_TITLE = "== conv.set_draft round trip (latency in microseconds) =="
FANOUT_TITLE = "== conv.event fan-out: writer's set_draft -> receipt in every subscriber (us) =="


def _pair(a: float, b: float) -> str:
    return f"{_f(a)} / {_f(b)}"


def print_calibration(rows: list[EchoRow]) -> None:
    print(CALIBRATION_TITLE)
    print(
        "Two processes, 16-byte ping-pong over a socketpair, blocking Python, no JSON: the "
        "floor that placement\nalone sets. peer-baselines.md measured 136k ops/s p50 7.1 (same "
        "CPU) and 17.0k ops/s p50 67 (unpinned),\non its machine; compare convd with them "
        "through these ratios, not absolute figures."
    )
    headers = ["placement", "ops/s", "p50", "p99"]
    table_rows = [[r.placement, _f(r.ops_per_s), _f(r.p50_us, 1), _f(r.p99_us, 1)] for r in rows]
    print(_table(headers, table_rows) + "\n")


def print_set_draft(rows: list[SetDraftRow], plan: Plan) -> None:
    print(SET_DRAFT_TITLE)
    print(
        "Each client: its own process and connection, session.login as user 'bench' (all the "
        "same account),\nsequential request/response on its own 100 conversations, a new "
        "~200-byte text every call (every call commits)."
    )
    headers = ["placement", "rounds", "ops", "ops/s", "ops/s range"]
    headers += ["p50", "p90", "p99", "p99.9", "max", "CPU/op: daemon (loop) clients"]
    headers += ["busy % (other)"]
    table_rows = [
        [
            r.placement,
            str(r.rounds),
            _f(r.ops),
            _f(r.ops_per_s),
            f"{_f(r.ops_per_s_min)}..{_f(r.ops_per_s_max)}",
            _f(r.p50_us),
            _f(r.p90_us),
            _f(r.p99_us),
            _f(r.p999_us),
            _f(r.max_us),
            f"{_f(r.daemon_cpu_us_per_op)} ({_f(r.daemon_loop_cpu_us_per_op)}) "
            f"{_f(r.client_cpu_us_per_op)}",
            f"{_f(r.machine_busy_pct)} ({_f(r.other_load_pct)})",
        ]
        for r in rows
    ]
    print(_table(headers, table_rows))
    print(
        "ops/s: median over rounds (rounds alternate placements); percentiles pool every "
        "round's samples.\n'same CPU' pins every daemon thread and the client to one vCPU "
        "(like taskset -a -c). CPU/op: all daemon threads\n(schedstat), in brackets its "
        "event-loop thread alone (the rest is the SQLite threads), then all clients.\nbusy %: "
        "both vCPUs = 100 (/proc/stat); (other) = busy not explained by daemon + clients: "
        "other load\non the machine, when it is more than a few %.\n"
    )


def print_fanout(rows: list[FanoutRow], plan: Plan) -> None:
    print(FANOUT_TITLE)
    print(
        f"One writer process sets a draft every {plan.fanout_interval_ms:g} ms "
        f"({plan.fanout_events} measured events after {plan.fanout_warmup} warm-up); N "
        "subscriber processes, all the\nsame account, all subscribed before the first write; "
        "unpinned. send = writer about to send the request;\nack = writer has read the reply; "
        "recv = subscriber's recv() returned the event's bytes. Pairs are p50 / p99."
    )
    headers = ["subscribers", "receipts", "missing", "send->recv p50 / p99"]
    headers += ["last sub send->recv", "ack->recv", "last sub ack->recv", "recv before ack %"]
    headers += ["writer RTT", "CPU/event: daemon (loop) clients", "busy % (other)"]
    table_rows = [
        [
            str(r.subscribers),
            _f(r.receipts),
            str(r.missing),
            _pair(r.send_p50_us, r.send_p99_us),
            _pair(r.send_last_p50_us, r.send_last_p99_us),
            _pair(r.ack_p50_us, r.ack_p99_us),
            _pair(r.ack_last_p50_us, r.ack_last_p99_us),
            _f(r.before_ack_pct, 1),
            _pair(r.writer_rtt_p50_us, r.writer_rtt_p99_us),
            f"{_f(r.daemon_cpu_us_per_event)} ({_f(r.daemon_loop_cpu_us_per_event)}) "
            f"{_f(r.client_cpu_us_per_event)}",
            f"{_f(r.machine_busy_pct)} ({_f(r.other_load_pct)})",
        ]
        for r in rows
    ]
    print(_table(headers, table_rows))
    print(
        "Percentiles over all receipts (events x subscribers); 'last sub' = the slowest "
        "subscriber of each event.\nsend->recv includes the writer's whole set_draft (SQLite "
        "commit with fsync). ack->recv is negative\nwhen the event reached the subscriber "
        "before the writer had read its own reply: the daemon queues\nnotifications at commit, "
        "before the reply.\n"
    )
    for r in rows:
        for note in r.notes:
            print(f"note (N={r.subscribers}): {note}")


def _idle_check(seconds: float = 0.5) -> float:
    """Machine busy % over a short sleep before anything starts."""
    busy0, total0 = _machine_ticks()
    time.sleep(seconds)
    busy1, total1 = _machine_ticks()
    return 100.0 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


_OTHER_LOAD_LIMIT = 10.0


def _warn_other_load(set_draft: list[SetDraftRow], fanout: list[FanoutRow]) -> None:
    loaded = [
        f"{r.placement} ({r.other_load_pct:.0f} %)"
        for r in set_draft
        if r.other_load_pct > _OTHER_LOAD_LIMIT
    ]
    loaded += [
        f"fan-out N={r.subscribers} ({r.other_load_pct:.0f} %)"
        for r in fanout
        if r.other_load_pct > _OTHER_LOAD_LIMIT
    ]
    if loaded:
        print(
            "WARNING: something else was using the CPUs during: "
            + ", ".join(loaded)
            + ".\nThose rows are not clean; rerun on an idle machine.\n"
        )


def _environment() -> str:
    parts = [
        f"python {platform.python_version()}",
        f"msgspec {msgspec.__version__}",
        f"{platform.system()} {platform.release()}",
        f"{os.cpu_count()} CPUs (allowed {sorted(os.sched_getaffinity(0))})",
        "load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    ]
    return ", ".join(parts)


# -- main ------------------------------------------------------------------------------------

SCENARIOS = ("latency", "throughput", "set_draft", "fanout", "all")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 20 s)")
    parser.add_argument("--scenario", choices=SCENARIOS, default="all")
    parser.add_argument("--clients", type=int, default=8, help="clients for 'throughput'")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick, args.clients)
    wanted = {args.scenario}
    if args.scenario == "all":
        wanted = {"latency", "throughput", "fanout"}
    elif args.scenario == "set_draft":
        wanted = {"latency", "throughput"}

    began = time.monotonic()
    print(f"convd benchmark ({'quick' if args.quick else 'full'} run): {_environment()}")
    idle = _idle_check()
    print(f"machine {idle:.0f} % busy just before the start", end="")
    print(" (NOT idle: expect noisy results)" if idle > _OTHER_LOAD_LIMIT else "")
    root = Path(tempfile.mkdtemp(prefix="cvb-", dir="/tmp"))
    root.chmod(0o700)
    daemon = Daemon(root)
    calibration_rows: list[EchoRow] = []
    set_draft_rows: list[SetDraftRow] = []
    fanout_rows: list[FanoutRow] = []
    failed = False
    try:
        daemon.start()
        print(f"daemon pid {daemon.pid}, socket {daemon.socket}\n")
        if "latency" in wanted:
            calibration_rows = scenario_calibration(daemon, plan)
            print_calibration(calibration_rows)
            set_draft_rows += scenario_latency(daemon, plan)
        if "throughput" in wanted:
            set_draft_rows += scenario_throughput(daemon, plan)
        if set_draft_rows:
            print_set_draft(set_draft_rows, plan)
        if "fanout" in wanted:
            fanout_rows = scenario_fanout(daemon, plan)
            print_fanout(fanout_rows, plan)
        _warn_other_load(set_draft_rows, fanout_rows)
    except BenchError as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        failed = True
    finally:
        if daemon.proc is not None:
            try:
                code = daemon.stop()
                if code != 0:
                    print(f"convd exited with {code} on SIGTERM", file=sys.stderr)
                    failed = True
            except BenchError as exc:
                print(str(exc), file=sys.stderr)
                failed = True
        complaints = [
            line
            for line in daemon.logs().splitlines()
            if " WARNING " in line or " ERROR " in line or "Traceback" in line
        ]
        if complaints:
            print(f"daemon log: {len(complaints)} warning/error line(s):", file=sys.stderr)
            for line in complaints[:20]:
                print(f"  {line}", file=sys.stderr)
            failed = True
        shutil.rmtree(root, ignore_errors=True)
    if args.json is not None:
        summary = {
            "quick": args.quick,
            "environment": _environment(),
            "calibration": [asdict(r) for r in calibration_rows],
            "set_draft": [asdict(r) for r in set_draft_rows],
            "fanout": [asdict(r) for r in fanout_rows],
        }
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    outcome = "FAILED" if failed else "daemon stopped (SIGTERM, exit 0)"
    print(f"total {time.monotonic() - began:.1f} s; {outcome}; {root} removed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
