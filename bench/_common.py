"""Shared pieces of the benchmark: forked child processes, CPU meters, statistics, tables.

Children are forked (they start in milliseconds and need nothing re-imported); the parent
starts no threads, so forking it is safe. Every child talks to the parent over one pipe and
sends ("ready", value), ("done", value) or ("error", traceback).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

MP = multiprocessing.get_context("fork")
CHILD_TIMEOUT = 90.0

#: Machine busy % (of both vCPUs) that no process of the benchmark explains, above which a row
#: is flagged as measured next to other load.
OTHER_LOAD_LIMIT = 10.0


class BenchError(Exception):
    """The benchmark could not measure: a child failed, a server died, a peer misbehaved."""


def run_child(conn: Connection, body: Callable[[], None]) -> None:
    """Run ``body`` in a child; any failure goes to the parent as ("error", traceback)."""
    try:
        body()
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def sleep_until(deadline_ns: int) -> None:
    delay = deadline_ns - time.monotonic_ns()
    if delay > 0:
        time.sleep(delay / 1e9)


class Children:
    """Forked workers with one pipe each; failures and silence become BenchError."""

    def __init__(self) -> None:
        self.procs: list[tuple[BaseProcess, Connection]] = []

    def spawn(self, target: Callable[..., None], *args: Any) -> None:
        parent_end, child_end = MP.Pipe()
        proc = MP.Process(target=target, args=(child_end, *args), daemon=True)
        proc.start()
        child_end.close()
        self.procs.append((proc, parent_end))

    def receive_all(self, expect: str, timeout: float = CHILD_TIMEOUT) -> list[Any]:
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


# -- CPU ---------------------------------------------------------------------------------------


def thread_ids(pid: int) -> list[int]:
    return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Like ``taskset -a -p``: every existing thread of ``pid`` (new threads inherit it)."""
    for tid in thread_ids(pid):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(tid, cpus)


def thread_sched_ns(pid: int) -> dict[int, tuple[int, int]]:
    """Of each thread of ``pid``, from the scheduler's statistics, in nanoseconds: its CPU
    time, and the time it waited runnable for a CPU (run-queue wait)."""
    times = {}
    for tid in thread_ids(pid):
        with (
            contextlib.suppress(FileNotFoundError, ProcessLookupError),
            open(f"/proc/{pid}/task/{tid}/schedstat") as f,
        ):
            cpu, wait = f.read().split()[:2]
            times[tid] = (int(cpu), int(wait))
    return times


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """CPU time of each thread of ``pid`` from the scheduler's statistics, in nanoseconds."""
    return {tid: cpu for tid, (cpu, _) in thread_sched_ns(pid).items()}


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


def idle_check(seconds: float = 0.5) -> float:
    """Machine busy % over a short sleep."""
    busy0, total0 = machine_ticks()
    time.sleep(seconds)
    busy1, total1 = machine_ticks()
    return 100.0 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


class Meter:
    """A server's CPU (all threads; its main thread apart) and machine busy between start/stop.

    ``pid`` None measures no server (a peer without one, such as direct SQLite).
    """

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.cpu_ns = 0
        self.loop_cpu_ns = 0  # the main thread: convd's event loop, redis-server's main thread
        #: How long the main thread waited runnable for a CPU (run-queue wait).
        self.loop_wait_ns = 0
        self.busy = 0.0
        self.wall_ns = 0
        #: CPU of the benchmark's own client processes in the same window (they report it).
        self.client_cpu_ns = 0
        self._sched0: dict[int, tuple[int, int]] = {}
        self._ticks0 = (0, 0)
        self._wall0 = 0

    def start(self) -> None:
        self._sched0 = thread_sched_ns(self.pid) if self.pid is not None else {}
        self._ticks0 = machine_ticks()
        self._wall0 = time.monotonic_ns()

    def stop(self) -> None:
        sched = thread_sched_ns(self.pid) if self.pid is not None else {}
        self.cpu_ns = self.loop_cpu_ns = self.loop_wait_ns = 0
        for tid, (cpu, wait) in sched.items():
            cpu0, wait0 = self._sched0.get(tid, (0, 0))  # (0, 0): a thread started since
            self.cpu_ns += cpu - cpu0
            if tid == self.pid:
                self.loop_cpu_ns, self.loop_wait_ns = cpu - cpu0, wait - wait0
        self.wall_ns = time.monotonic_ns() - self._wall0
        busy, total = machine_ticks()
        span = total - self._ticks0[1]
        self.busy = 100.0 * (busy - self._ticks0[0]) / span if span else 0.0

    @property
    def other_pct(self) -> float:
        """Machine busy % not explained by the server and the benchmark's clients: other load
        on the machine (or the benchmark's parent, and rounding of the tick counters)."""
        capacity = self.wall_ns * (os.cpu_count() or 1)
        ours = 100.0 * (self.cpu_ns + self.client_cpu_ns) / capacity if capacity else 0.0
        return self.busy - ours


# -- statistics --------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    if not sorted_values:
        return float("nan")
    position = (len(sorted_values) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] * (1 - fraction) + sorted_values[high] * fraction


def us(ns: float) -> float:
    return ns / 1000.0


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else float("nan")


def ratio(a: float | None, b: float | None) -> float:
    """a / b, NaN when either is missing or b is 0."""
    if a is None or b is None or b == 0 or a != a or b != b:
        return float("nan")
    return a / b


# -- output ------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def fmt(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators; '-' for a missing value."""
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"x{value:.3f}" if value < 0.1 else f"x{value:.2f}"
