"""Where the event loop's and the SQLite writer's threads run while writes queue up: on one
CPU.

The two take turns holding Python's GIL, several times per write (each SQLite statement on
the writer's thread lets the GIL go and takes it back). On two CPUs, a turn that finds the
GIL held by the other thread has to wake it on the other CPU, a cross-CPU wake-up that
costs tens of microseconds on a VM; on one CPU it is a switch on the same CPU. Paired runs
with 8 writing processes on a 2-vCPU VM (8 rounds each, both threads on one CPU against
``--no-same-cpu``) gave 2,986 -> 3,757 writes/s (everysec) and 2,132 -> 2,526 (full).
Pinning only the writer to wherever the event loop last ran gained a third of that: the
event loop moves between CPUs too often.

So the pair is pinned only while writes queue up (a batch of two or more), and released
after a second of single-write batches: one writer gains nothing from it (the threads
then work in turn anyway), and a pinned event loop cannot leave a CPU that other processes
crowd, which made each event sent to 50 subscriber processes cost ~4 us more per
subscriber. Every other thread (reads, WAL checkpoints, the start-up check, backups) stays
where the OS puts it.

Linux only (``os.sched_setaffinity`` on a thread id, and /proc): elsewhere, with a single
allowed CPU, or with ``convd --no-same-cpu``, nothing is pinned.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Final

__all__ = ["SharedCpu", "name_thread"]

logger = logging.getLogger(__name__)

#: Field 39 of /proc/<pid>/task/<tid>/stat ("processor"), counted after the command name.
_PROCESSOR_FIELD: Final = 39 - 3
#: How long the pair stays on one CPU after the last batch of two or more writes.
_HOLD_SECONDS: Final = 1.0


def _cpu_of(tid: int) -> int | None:
    """The CPU thread ``tid`` (of this process) last ran on."""
    try:
        with open(f"/proc/self/task/{tid}/stat", "rb") as file:
            stat = file.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[_PROCESSOR_FIELD])
    except (OSError, ValueError, IndexError):
        return None


def name_thread(name: str) -> None:
    """Name the calling thread for ``top -H`` and ``ps -L`` (at most 15 bytes)."""
    try:
        with open("/proc/thread-self/comm", "w") as file:
            file.write(name[:15])
    except OSError:
        pass


class SharedCpu:
    """Puts the event loop's thread and the writer's on one CPU while writes queue up.

    ``before_batch`` is called on the writer's thread only (no lock needed)."""

    __slots__ = ("_allowed", "_loop_tid", "_pinned", "_release_at")

    def __init__(self, loop_tid: int, allowed: set[int]) -> None:
        self._loop_tid = loop_tid
        self._allowed = allowed
        self._pinned = False
        self._release_at = 0.0

    @classmethod
    def for_this_thread(cls) -> SharedCpu | None:
        """For the calling thread (the event loop's), if this system lets threads be pinned
        and the process may use more than one CPU; else None."""
        loop_tid = threading.get_native_id()
        if not hasattr(os, "sched_setaffinity") or _cpu_of(loop_tid) is None:
            return None
        allowed = os.sched_getaffinity(0)
        if len(allowed) < 2:
            return None
        return cls(loop_tid, allowed)

    def before_batch(self, writes: int) -> None:
        """On the writer's thread, before a batch of ``writes`` writes."""
        if writes > 1:
            self._release_at = time.monotonic() + _HOLD_SECONDS
            if not self._pinned:
                cpu = _cpu_of(self._loop_tid)
                if cpu in self._allowed and self._place({cpu}):
                    self._pinned = True
        elif self._pinned and time.monotonic() >= self._release_at:
            self._place(self._allowed)
            self._pinned = False

    def _place(self, cpus: set[int]) -> bool:
        try:
            os.sched_setaffinity(self._loop_tid, cpus)
            os.sched_setaffinity(0, cpus)
        except OSError as exc:  # a CPU taken offline, a cpuset changed under us
            logger.debug("cannot place the event loop and the writer on %s: %s", cpus, exc)
            return False
        return True
