"""Where and how the event loop's and the SQLite writer's threads run while writes queue up:
on one CPU, as SCHED_BATCH.

The two take turns holding Python's GIL, several times per write (each SQLite statement on
the writer's thread lets the GIL go and takes it back). On two CPUs, a turn that finds the
GIL held by the other thread has to wake it on the other CPU, a cross-CPU wake-up that
costs tens of microseconds on a VM; on one CPU it is a switch on the same CPU. Paired runs
with 8 writing processes on a 2-vCPU VM (8 rounds each, both threads on one CPU against
``--no-same-cpu``) gave 2,986 -> 3,757 writes/s (everysec) and 2,132 -> 2,526 (full).
Pinning only the writer to wherever the event loop last ran gained a third of that: the
event loop moves between CPUs too often.

So the pair is pinned only while writes queue up (batches of two or more, none more than
20 ms apart, for 50 ms, carrying at least 1,500 writes a second), and released after a
second without such 50 ms, whether single writes, a trickle of batches of two or nothing
came meanwhile (the writer's wait for work ends when the second is up): one writer gains
nothing from it (the threads then work in turn anyway), and a pinned event loop cannot
leave a CPU that other processes crowd, which made each event sent to 50 subscriber
processes cost ~4 us more per subscriber (and more once SCHED_BATCH, below, keeps it from
preempting them).

The 50 ms keep a burst from pinning, and the rate a trickle: 50 subscriber processes
connecting at once (a subscribe each, ~2.6 ms apart) made batches of two often enough to
pin the pair through the first second of the events they then waited for. In one traced
run the benchmark's fan-out to 50 subscribers spent that second with the event loop on one
CPU as SCHED_BATCH among the 50 processes it was waking, and the writer's yield after each
batch took ~1.7 ms; in another, the same burst pinned nothing.

Released only by a single write, a pin also outlived the writes that made it for as long
as none came, and the next writer's first second ran pinned (a fan-out to 50 subscribers
that followed 24,000 writes from 8 processes was pinned, sampled every 0.1 s, through the
first 0.9 s of its 2.1 s).

Every other thread (reads, WAL checkpoints and syncs, the start-up check) stays where the
OS puts it: they are all started before any pin. A thread the event loop starts while
pinned inherits its CPU and policy (Linux copies both): only a backup's worker thread can
be one, and it frees itself first (``free_this_thread``).

While pinned, both threads are also SCHED_BATCH (when they were SCHED_OTHER, Linux's
default): a thread of that policy does not preempt the running one when it wakes. On one
CPU such a preemption is waste: the woken thread (the event loop, woken by a client's
request; the writer, by a write in its inbox) mostly needs the GIL the preempted one holds,
and both switch back at once. Per write there were ~2.6 context switches, mostly those;
with SCHED_BATCH ~0.55, each thread runs until it waits, batches grow (3.1 -> 4.1 writes),
and the event loop's CPU per write fell from ~98 to ~75 us. Paired runs, 8 writing
processes, 6 rounds each: ``everysec`` 4,331 -> 5,094 writes/s, ``full`` 3,714 -> 3,839
(within its noise: there the writer also waits for fsync). The policy goes back with the
pin; a thread an administrator gave another policy (idle, real-time, batch) keeps it.

A writer that does not preempt is also not preempted: after each commit it yields the CPU
(``after_batch``), so that the event loop answers that batch's writers before the writer
runs the next batch, not after. In ``full`` that overlaps the answered writers' own work
(on the other CPU) with the next batch, instead of the fsync wait alone: paired runs, 8
rounds, ``full`` 3,254 -> 4,053 writes/s (7 of 8 won), ``everysec`` 4,639 -> 4,894.

The CPUs the pair goes back to are those the writer's thread may use when the pin begins,
whoever set them (``taskset``, a cpuset): convd only narrows them. While writes queue up the
pin is checked once a second, and when it ends: a thread moved by someone else meanwhile
(``taskset -a -p``, or ``-p`` for one thread; a benchmark's harness) gives the CPUs it was
moved to, which both threads then take, and within which the pair is pinned again while
writes still queue up (never within one CPU). Before that check, a pin undone behind
convd's back stayed undone for as long as writes kept queuing (the writer believed it
held): the threads then ran apart, still SCHED_BATCH and yielding after each batch. Paired
runs, 8 writing processes, every thread's affinity reset 1.5 s into 8 s (as
``bench/run.py`` did after each round): 5,751 writes/s then, 7,415 with the check
(``everysec``, medians of 3).

Linux only (``os.sched_setaffinity`` on a thread id, and /proc): elsewhere, with a single
allowed CPU, or with ``convd --no-same-cpu``, nothing is pinned.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Final

__all__ = ["SharedCpu", "name_thread"]

logger = logging.getLogger(__name__)

#: Field 39 of /proc/<pid>/task/<tid>/stat ("processor"), counted after the command name.
_PROCESSOR_FIELD: Final = 39 - 3
#: How long the pair stays on one CPU after the last batch of two or more writes.
_HOLD_SECONDS: Final = 1.0
#: Writes queue up when batches of two or more come this long without a gap ...
_SETTLE_SECONDS: Final = 0.05
#: ... of more than this ...
_STREAK_GAP_SECONDS: Final = 0.02
#: ... and carry at least this many writes a second (each window of 50 ms judged apart:
#: one that does not also holds a pin no longer). 50 processes that connect at once (a
#: subscribe each, which goes through the writer: ~400 a second, some in batches of two)
#: made a streak, and pinned the event loop through the first second of the events they
#: then waited for; 8 writing processes queue up 5,000-7,000 writes a second.
_QUEUED_WRITES_PER_SECOND: Final = 1500.0
#: What a placement the system does not permit leaves undone (SharedCpu._refused).
_UNPINNED: Final = "the event loop and the writer run where the OS puts them"
_UNBATCHED: Final = "the pinned threads keep their policy and may preempt each other"
#: While pinned, how often the pin is checked to be still in place; while writes queue up
#: and a pin could not be made (a single allowed CPU, a thread whose CPU cannot be read or
#: set), how often it is tried again.
_RECHECK_SECONDS: Final = 1.0


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


def _set_policy(tid: int, policy: int) -> None:
    os.sched_setscheduler(tid, policy, os.sched_param(0))


class SharedCpu:
    """Puts the event loop's thread and the writer's on one CPU, as SCHED_BATCH, while
    writes queue up.

    The writer's thread calls ``before_batch``, ``after_batch`` and ``idle`` (``store.writer
    .BatchPacing``), and only it (no lock needed)."""

    __slots__ = (
        "_allowed",
        "_batched",
        "_clock",
        "_cpu",
        "_default_policy",
        "_last_queued",
        "_loop_tid",
        "_pinned",
        "_queued_since",
        "_queued_writes",
        "_recheck_at",
        "_release_at",
        "_warned",
    )

    def __init__(
        self, loop_tid: int, allowed: set[int], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._loop_tid = loop_tid
        self._allowed = allowed
        self._clock = clock
        #: The loop's policy before any pin: what a thread started while pinned goes back to.
        try:
            self._default_policy: int | None = os.sched_getscheduler(loop_tid)
        except OSError:
            self._default_policy = None
        self._pinned = False
        #: The CPU of the pin.
        self._cpu = -1
        #: When the pin is next checked (pinned), or a pin next tried (not pinned).
        self._recheck_at = -float("inf")
        #: The threads (0: the writer, the calling one) made SCHED_BATCH by the pin.
        self._batched: list[int] = []
        self._release_at = 0.0
        #: Batches of two or more: when the current window of them began (a new one every
        #: _SETTLE_SECONDS, and after a gap), the writes of those after its start, and the
        #: last one.
        self._queued_since = self._last_queued = -float("inf")
        self._queued_writes = 0
        #: Whether a placement refused as not permitted has been reported (once).
        self._warned = False

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
            self._count_queued(writes)
        else:
            self._release_if_due()

    def idle_timeout(self) -> float | None:
        """How long the writer's thread may wait for work before ``idle`` is due: while
        pinned, until the pin's second is up; else as long as it takes (None)."""
        if not self._pinned:
            return None
        return max(0.0, self._release_at - self._clock())

    def idle(self) -> None:
        """On the writer's thread, which has waited ``idle_timeout`` with nothing to do."""
        self._release_if_due()

    def after_batch(self) -> None:
        """On the writer's thread, once a batch's outcome is the event loop's to hand out.

        While pinned, give the CPU to the event loop (which that hand-over has just woken)
        before the next batch: as SCHED_BATCH it would otherwise wait for the writer to
        finish that batch too, and the writers it answers (running on the other CPU) would
        wait with it. ``os.sched_yield`` lets the GIL go (CPython 3.11.1 and later; on
        3.11.0 the loop gets the CPU but waits for the GIL, and the two switch back: a few
        microseconds lost), so the loop takes it at once.
        """
        if self._pinned:
            os.sched_yield()

    def free_this_thread(self) -> None:
        """On a worker thread that the event loop may have started while pinned: every
        allowed CPU again, and the policy the daemon started with if the thread inherited
        the pin's SCHED_BATCH (a backup would otherwise share the pinned CPU and yield)."""
        try:
            os.sched_setaffinity(0, self._allowed)
            if (
                self._default_policy == os.SCHED_OTHER
                and os.sched_getscheduler(0) == os.SCHED_BATCH
            ):
                _set_policy(0, os.SCHED_OTHER)
        except OSError as exc:
            logger.debug("cannot free a worker thread from the pin: %s", exc)

    def _pin(self, now: float) -> None:
        self._recheck_at = now + _RECHECK_SECONDS
        try:
            # What the pair goes back to: the CPUs it may use now, whoever chose them.
            allowed = os.sched_getaffinity(0)
        except OSError as exc:
            logger.debug("cannot read the writer's CPUs: %s", exc)
            return
        cpu = _cpu_of(self._loop_tid)
        if len(allowed) < 2 or cpu not in allowed or not self._place({cpu}):
            return
        self._allowed = allowed
        self._cpu = cpu
        self._pinned = True
        self._batch()

    def _count_queued(self, writes: int) -> None:
        """A batch of two or more: writes may be queueing up. Judged over windows of
        _SETTLE_SECONDS: one that carries enough writes pins the pair, or holds the pin a
        second longer; one that does not (a trickle) holds nothing, and a pin made before
        ends when its second is up."""
        now = self._clock()
        if now - self._last_queued > _STREAK_GAP_SECONDS:
            # A window opens after this batch: only what comes later counts in it.
            self._queued_since, self._queued_writes = now, 0
        else:
            self._queued_writes += writes
        self._last_queued = now
        if self._pinned and now >= self._recheck_at:
            self._check_pin(now)
        settled = now - self._queued_since
        if settled < _SETTLE_SECONDS:
            return
        queued = self._queued_writes >= _QUEUED_WRITES_PER_SECOND * settled
        self._queued_since, self._queued_writes = now, 0  # the next window
        if queued:
            self._release_at = now + _HOLD_SECONDS
            if not self._pinned and now >= self._recheck_at:
                self._pin(now)
        else:
            self._release_if_due()

    def _release_if_due(self) -> None:
        if self._pinned and self._clock() >= self._release_at:
            self._unpin(self._moved_to() or self._allowed)

    def _check_pin(self, now: float) -> None:
        """If someone else has moved either thread since the pin, take the pin as undone."""
        self._recheck_at = now + _RECHECK_SECONDS
        moved = self._moved_to()
        if moved is not None:
            logger.debug("the event loop or the writer was moved off CPU %d", self._cpu)
            self._unpin(moved)
            self._recheck_at = now  # pinned again at once, within the CPUs now allowed

    def _moved_to(self) -> set[int] | None:
        """The CPUs someone else has given either thread since the pin (both threads' if
        both were moved), or None if both are still on the pin's CPU (or cannot be read).
        Confined by someone else to the pin's CPU itself, they look pinned, and the pin's end
        gives them the CPUs from before it."""
        try:
            moved = [
                cpus
                for cpus in (os.sched_getaffinity(0), os.sched_getaffinity(self._loop_tid))
                if cpus != {self._cpu}
            ]
        except OSError as exc:
            logger.debug("cannot check the pin: %s", exc)
            return None
        return set().union(*moved) if moved else None

    def _unpin(self, cpus: set[int]) -> None:
        """End the pin: both threads on ``cpus`` (one moved by someone else may already
        be), and the policy they had before it."""
        self._allowed = cpus
        self._place(cpus)
        self._pinned = False
        self._unbatch()

    def _place(self, cpus: set[int]) -> bool:
        try:
            before = os.sched_getaffinity(self._loop_tid)
            os.sched_setaffinity(self._loop_tid, cpus)
        except OSError as exc:  # a CPU taken offline, a cpuset changed under us
            self._refused("cannot place the event loop", exc, _UNPINNED)
            return False
        try:
            os.sched_setaffinity(0, cpus)
        except OSError as exc:
            self._refused("cannot place the writer", exc, _UNPINNED)
            with suppress(OSError):  # not half a pin
                os.sched_setaffinity(self._loop_tid, before)
            return False
        return True

    def _batch(self) -> None:
        for tid in (self._loop_tid, 0):
            try:
                if os.sched_getscheduler(tid) != os.SCHED_OTHER:
                    continue  # chosen by whoever started convd: theirs to keep
                _set_policy(tid, os.SCHED_BATCH)
            except OSError as exc:  # not permitted here (a seccomp filter), or gone
                self._refused(f"cannot make thread {tid} SCHED_BATCH", exc, _UNBATCHED)
                continue
            self._batched.append(tid)

    def _refused(self, what: str, exc: OSError, consequence: str) -> None:
        """Log a placement the system refused: the first one refused as not permitted at
        all (a seccomp filter, such as a convd.service older than its allowing these calls)
        as a warning, since --same-cpu then does not do all it should; the others for
        debugging."""
        if exc.errno == errno.EPERM and not self._warned:
            self._warned = True
            logger.warning(
                "%s: %s. Thread placement (--same-cpu) is not permitted here: %s (allow the "
                "system calls sched_setaffinity and sched_setscheduler, or pass --no-same-cpu)",
                what,
                exc,
                consequence,
            )
        else:
            logger.debug("%s: %s", what, exc)

    def _unbatch(self) -> None:
        for tid in self._batched:
            try:
                if os.sched_getscheduler(tid) != os.SCHED_BATCH:
                    continue  # changed meanwhile by someone else: theirs to keep
                _set_policy(tid, os.SCHED_OTHER)
            except OSError as exc:
                logger.debug("cannot make thread %d SCHED_OTHER again: %s", tid, exc)
        self._batched.clear()
