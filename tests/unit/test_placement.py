"""SharedCpu's decisions, with the system calls that carry them out recorded instead of made
(tests/integration/test_thread_placement.py checks the real ones on the real daemon)."""

from __future__ import annotations

import errno
import logging
import os
import sys

import pytest

from convd import placement
from convd.placement import SharedCpu

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="thread placement is Linux only"
)

LOOP = 4242  # the event loop's thread id; 0 is the calling thread (the writer's)


class _System:
    """Stands in for the kernel: affinity, policies and yields, per thread id; and the clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, policy: int | None = None) -> None:
        self.affinity: dict[int, set[int]] = {}
        policy = os.SCHED_OTHER if policy is None else policy
        self.policy = {LOOP: policy, 0: policy}
        self.yields = 0
        self.now = 100.0
        monkeypatch.setattr(placement, "_cpu_of", lambda tid: 1)
        monkeypatch.setattr(os, "sched_setaffinity", self.affinity.__setitem__)
        monkeypatch.setattr(os, "sched_getaffinity", lambda tid: self.affinity.get(tid, {0, 1}))
        monkeypatch.setattr(os, "sched_getscheduler", self.policy.__getitem__)
        monkeypatch.setattr(os, "sched_setscheduler", self.set_policy)
        monkeypatch.setattr(os, "sched_yield", self.count_yield)

    def queue_up(
        self, shared: SharedCpu, seconds: float = 0.06, writes: int = 6, every: float = 0.002
    ) -> None:
        """Batches of ``writes`` writes, ``every`` seconds apart, for ``seconds``: by default
        3,000 writes a second, writes queueing up."""
        end = self.now + seconds
        while self.now < end:
            shared.before_batch(writes)
            self.now += every
        shared.before_batch(writes)

    def shared_cpu(self) -> SharedCpu:
        return SharedCpu(LOOP, {0, 1}, clock=lambda: self.now)

    def set_policy(self, tid: int, policy: int, param: object) -> None:
        self.policy[tid] = policy

    def count_yield(self) -> None:
        self.yields += 1


def test_queued_writes_pin_both_threads_as_batch_and_a_quiet_second_restores_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    shared.before_batch(1)  # one write: left alone
    assert system.affinity == {} and system.policy == {LOOP: os.SCHED_OTHER, 0: os.SCHED_OTHER}
    system.queue_up(shared, seconds=0.03)  # a burst (50 subscriptions at once): left alone
    assert system.affinity == {}
    system.now += 0.03  # ... and a gap ends it
    system.queue_up(shared, seconds=0.03)
    assert system.affinity == {}
    system.queue_up(shared, seconds=0.03)  # the same streak, now 60 ms long
    assert system.affinity == {LOOP: {1}, 0: {1}}
    assert system.policy == {LOOP: os.SCHED_BATCH, 0: os.SCHED_BATCH}
    system.now += 0.5
    shared.before_batch(1)  # within the second: held
    assert system.affinity == {LOOP: {1}, 0: {1}}
    system.now += 1.0
    shared.before_batch(1)
    assert system.affinity == {LOOP: {0, 1}, 0: {0, 1}}
    assert system.policy == {LOOP: os.SCHED_OTHER, 0: os.SCHED_OTHER}


def test_a_trickle_of_batches_of_two_does_not_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    """50 processes connecting at once: batches of two now and then, for a while."""
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    for _ in range(60):  # 300 ms: a batch of two every 5 ms, a single write between them
        shared.before_batch(2)
        system.now += 0.0025
        shared.before_batch(1)
        system.now += 0.0025
    assert system.affinity == {} and system.policy[LOOP] == os.SCHED_OTHER
    system.queue_up(shared)  # then writes that queue up for real (60 ms of them): pinned
    assert system.affinity == {LOOP: {1}, 0: {1}}


def test_a_trickle_of_batches_of_two_does_not_hold_a_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes that queued up stop, and 50 processes connect: the pin still ends a second
    after the last 50 ms that queued up."""
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    system.queue_up(shared)
    assert system.affinity == {LOOP: {1}, 0: {1}}
    for _ in range(400):  # 2 s: a batch of two every 5 ms, and nothing between them
        system.now += 0.005
        shared.before_batch(2)
        if system.affinity[LOOP] != {1}:
            break
    assert system.affinity == {LOOP: {0, 1}, 0: {0, 1}}
    assert system.policy == {LOOP: os.SCHED_OTHER, 0: os.SCHED_OTHER}
    assert 1.0 <= system.now - 100.0 <= 1.2  # a second after the queued writes, not later


def test_a_window_counts_only_the_writes_after_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 20 every 16 ms are 1,250 writes a second: not a queue, however the first
    batch of a window falls."""
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    system.queue_up(shared, seconds=0.5, writes=20, every=0.016)
    assert system.affinity == {}
    system.queue_up(shared, seconds=0.1, writes=20, every=0.012)  # 1,667 a second: a queue
    assert system.affinity == {LOOP: {1}, 0: {1}}


def test_a_pin_is_released_when_its_second_is_up_with_no_write_at_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    assert shared.idle_timeout() is None  # unpinned: the writer waits as long as it takes
    system.queue_up(shared)
    assert system.affinity == {LOOP: {1}, 0: {1}}
    left = shared.idle_timeout()
    assert left is not None and 0.9 < left <= 1.0  # the pin's second, from its last 50 ms
    system.now += 0.4
    shared.idle()  # woken early: still held
    assert system.affinity == {LOOP: {1}, 0: {1}}
    assert shared.idle_timeout() == pytest.approx(left - 0.4)
    system.now += left - 0.4
    shared.idle()  # the writes stopped a second ago, and none came since
    assert system.affinity == {LOOP: {0, 1}, 0: {0, 1}}
    assert system.policy == {LOOP: os.SCHED_OTHER, 0: os.SCHED_OTHER}
    assert shared.idle_timeout() is None


def test_a_policy_other_than_the_default_is_left_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    system = _System(monkeypatch, policy=os.SCHED_IDLE)
    shared = system.shared_cpu()
    system.queue_up(shared)
    assert system.affinity == {LOOP: {1}, 0: {1}}
    assert system.policy == {LOOP: os.SCHED_IDLE, 0: os.SCHED_IDLE}
    system.now += 2
    shared.before_batch(1)
    assert system.policy == {LOOP: os.SCHED_IDLE, 0: os.SCHED_IDLE}


def test_the_writer_yields_to_the_event_loop_after_a_batch_only_while_pinned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    shared.before_batch(1)
    shared.after_batch()
    assert system.yields == 0  # unpinned, the two run where they like: nothing to give
    system.queue_up(shared)
    shared.after_batch()
    assert system.yields == 1
    system.now += 2
    shared.before_batch(1)
    shared.after_batch()
    assert system.yields == 1


def test_a_policy_changed_by_someone_else_while_pinned_is_left_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    system.queue_up(shared)
    assert system.policy == {LOOP: os.SCHED_BATCH, 0: os.SCHED_BATCH}
    system.policy[LOOP] = os.SCHED_IDLE  # `chrt --idle -p 0 TID` meanwhile
    system.now += 2
    shared.before_batch(1)
    assert system.policy == {LOOP: os.SCHED_IDLE, 0: os.SCHED_OTHER}


def test_a_thread_started_while_pinned_frees_itself_of_the_cpu_and_the_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    system.queue_up(shared)
    assert system.affinity[LOOP] == {1} and system.policy[LOOP] == os.SCHED_BATCH
    # A worker the loop starts now inherits both (0 stands for the calling thread here).
    system.affinity[0], system.policy[0] = {1}, os.SCHED_BATCH
    shared.free_this_thread()
    assert system.affinity[0] == {0, 1} and system.policy[0] == os.SCHED_OTHER
    assert system.affinity[LOOP] == {1} and system.policy[LOOP] == os.SCHED_BATCH  # still pinned


def test_freeing_a_thread_keeps_a_policy_the_daemon_was_started_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = _System(monkeypatch, policy=os.SCHED_BATCH)  # chosen by whoever started convd
    shared = system.shared_cpu()
    system.queue_up(shared)
    system.affinity[0] = {1}
    shared.free_this_thread()
    assert system.affinity[0] == {0, 1} and system.policy[0] == os.SCHED_BATCH


def test_a_pin_undone_by_someone_else_is_noticed_and_made_again_within_their_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    system.queue_up(shared)
    assert system.affinity == {LOOP: {1}, 0: {1}}
    # `taskset -a -p 3 PID` (or a benchmark's harness) while writes keep queuing.
    system.affinity.update({LOOP: {0, 1}, 0: {0, 1}})
    system.queue_up(shared, seconds=0.5)  # checked once a second: not yet
    assert system.affinity == {LOOP: {0, 1}, 0: {0, 1}}
    system.queue_up(shared, seconds=0.6)
    assert system.affinity == {LOOP: {1}, 0: {1}}  # seen, and pinned again
    assert system.policy == {LOOP: os.SCHED_BATCH, 0: os.SCHED_BATCH}
    # Moved to CPUs 1-3 instead: those are what a quiet second gives back.
    system.affinity.update({LOOP: {1, 2, 3}, 0: {1, 2, 3}})
    system.queue_up(shared, seconds=1.1)
    assert system.affinity == {LOOP: {1}, 0: {1}}
    system.now += 2
    shared.before_batch(1)
    assert system.affinity == {LOOP: {1, 2, 3}, 0: {1, 2, 3}}
    assert system.policy == {LOOP: os.SCHED_OTHER, 0: os.SCHED_OTHER}


def test_threads_confined_to_one_cpu_by_someone_else_are_left_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    system.queue_up(shared)
    system.affinity.update({LOOP: {0}, 0: {0}})  # `taskset -a -p 1 PID`
    system.queue_up(shared, seconds=3)
    assert system.affinity == {LOOP: {0}, 0: {0}}  # nothing to pin within one CPU
    assert system.policy == {LOOP: os.SCHED_OTHER, 0: os.SCHED_OTHER}
    system.now += 2
    shared.before_batch(1)
    assert system.affinity == {LOOP: {0}, 0: {0}}  # and nothing given back that they lost


def test_one_thread_moved_by_someone_else_takes_the_other_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    system.queue_up(shared)
    system.affinity[LOOP] = {0, 1, 2}  # `taskset -p 7 PID`: the main thread alone
    system.queue_up(shared, seconds=1.1)
    assert system.affinity == {LOOP: {1}, 0: {1}}  # seen, and pinned again within 0-2
    system.now += 2
    shared.before_batch(1)
    assert system.affinity == {LOOP: {0, 1, 2}, 0: {0, 1, 2}}
    system.queue_up(shared)
    system.affinity[0] = {2}  # the writer alone, to one CPU: no pin within that
    system.queue_up(shared, seconds=1.1)
    assert system.affinity == {LOOP: {2}, 0: {2}}
    assert system.policy == {LOOP: os.SCHED_OTHER, 0: os.SCHED_OTHER}


def test_the_end_of_a_pin_keeps_cpus_someone_else_chose_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = _System(monkeypatch)
    shared = system.shared_cpu()
    system.queue_up(shared)
    system.now += 0.5
    system.affinity.update({LOOP: {0}, 0: {0}})  # between two checks, and writes stop
    system.now += 1.0
    shared.before_batch(1)
    assert system.affinity == {LOOP: {0}, 0: {0}}  # not widened back to 0-1
    assert system.policy == {LOOP: os.SCHED_OTHER, 0: os.SCHED_OTHER}


def test_a_pin_half_made_is_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    system = _System(monkeypatch)

    def refuse_the_writer(tid: int, cpus: set[int]) -> None:
        if tid == 0:
            raise OSError("not permitted")
        system.affinity[tid] = cpus

    monkeypatch.setattr(os, "sched_setaffinity", refuse_the_writer)
    shared = system.shared_cpu()
    system.queue_up(shared)
    assert system.affinity.get(LOOP, {0, 1}) == {0, 1}  # the loop is not left pinned alone
    assert system.policy == {LOOP: os.SCHED_OTHER, 0: os.SCHED_OTHER}


def test_placement_not_permitted_is_reported_once_and_pins_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As under a seccomp filter that refuses sched_setaffinity (SystemCallErrorNumber=EPERM).
    system = _System(monkeypatch)

    def refuse(tid: int, cpus: set[int]) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    shared = system.shared_cpu()
    with caplog.at_level(logging.DEBUG, logger=placement.__name__):
        for _ in range(3):  # tried again every second while writes queue up
            system.queue_up(shared, seconds=1.1)
    assert shared.idle_timeout() is None  # not pinned: no pin's second to wait out
    assert system.policy == {LOOP: os.SCHED_OTHER, 0: os.SCHED_OTHER}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "--no-same-cpu" in warnings[0].getMessage()
    assert "run where the OS puts them" in warnings[0].getMessage()
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) >= 2


def test_a_policy_change_not_permitted_is_reported_as_such(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Pinned all the same: only SCHED_BATCH is refused.
    system = _System(monkeypatch)

    def refuse(tid: int, policy: int, param: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    shared = system.shared_cpu()
    with caplog.at_level(logging.WARNING, logger=placement.__name__):
        system.queue_up(shared)
    assert system.affinity == {LOOP: {1}, 0: {1}}
    (warning,) = caplog.records
    assert "keep their policy" in warning.getMessage()
