"""Where the daemon's two busy threads run: its event loop and its SQLite writer, on one CPU.

The two take turns holding Python's GIL, several times per write (each SQLite statement on
the writer's thread lets the GIL go and takes it back). On two CPUs, a turn that finds the
GIL held by the other thread has to wake it on the other CPU, a cross-CPU wake-up that
costs tens of microseconds on a VM; on one CPU it is a switch on the same CPU. Paired runs
with 8 writing processes on a 2-vCPU VM (8 rounds each, ``--no-same-cpu`` against the
default) gave 2,986 -> 3,757 writes/s (everysec, 8 of 8 rounds won) and 2,132 -> 2,526
(full, 7 of 8); with one writer nothing changes, since the threads then work in turn
anyway. The threads that exist before the
event loop's is pinned (reads, WAL checkpoints, the start-up check) stay where the OS puts
them; those it starts later (loading the dispatcher, a backup's copy) inherit its CPU.

Linux only (``os.sched_setaffinity``): elsewhere, with a single allowed CPU, or with
``convd --no-same-cpu``, nothing is pinned.
"""

from __future__ import annotations

import logging
import os
from typing import Final

__all__ = ["SharedCpu", "name_thread"]

logger = logging.getLogger(__name__)

#: Field 39 of /proc/<pid>/task/<tid>/stat ("processor"), counted after the command name.
_PROCESSOR_FIELD: Final = 39 - 3


def _current_cpu() -> int | None:
    """The CPU the calling thread last ran on."""
    try:
        with open("/proc/thread-self/stat", "rb") as file:
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
    """The one CPU the event loop and the writer share."""

    __slots__ = ("cpu",)

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu

    @classmethod
    def choose(cls) -> SharedCpu | None:
        """The CPU the caller runs on now, if this system lets threads be pinned and the
        process may use more than one CPU; else None."""
        if not hasattr(os, "sched_setaffinity"):
            return None
        allowed = os.sched_getaffinity(0)
        if len(allowed) < 2:
            return None
        cpu = _current_cpu()
        return cls(cpu if cpu in allowed else min(allowed))

    def enter(self, name: str | None = None) -> None:
        """Pin the calling thread (only it: threads it starts later inherit the pin) to the
        shared CPU, and name it if ``name`` is given."""
        if name is not None:
            name_thread(name)
        try:
            os.sched_setaffinity(0, {self.cpu})
        except OSError as exc:  # a CPU taken offline, a cpuset changed under us
            logger.info("cannot keep this thread on CPU %d: %s", self.cpu, exc.strerror)
