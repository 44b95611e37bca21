"""While writes queue up, the event loop and the SQLite writer share one CPU as SCHED_BATCH
(``--same-cpu``, the default on Linux), and a second without queued writes releases them;
``--no-same-cpu`` pins nothing, and the other threads are never pinned."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import DaemonProcess, LineClient, short_tmpdir, text_draft

pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
        reason="pinning threads needs Linux and at least two usable CPUs",
    ),
    pytest.mark.skipif(
        sys.platform.startswith("linux") and os.sched_getscheduler(0) != os.SCHED_OTHER,
        reason="the daemon inherits the test's scheduling policy, which is not the default",
    ),
]


# (getattr: the module is collected, then skipped, where these do not exist)
OTHER, BATCH, IDLE = (getattr(os, f"SCHED_{name}", -1) for name in ("OTHER", "BATCH", "IDLE"))


@pytest.fixture
def root() -> Iterator[Path]:
    with short_tmpdir() as path:
        yield path


def _threads(daemon: DaemonProcess) -> dict[int, tuple[str, set[int]]]:
    """Each thread of the daemon: its name and the CPUs it may run on."""
    assert daemon.process is not None
    pid = daemon.process.pid
    found = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        tid = int(entry)
        name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        found[tid] = (name, os.sched_getaffinity(tid))
    return found


def _policies(daemon: DaemonProcess) -> dict[str, list[int]]:
    """The scheduling policy of each of the daemon's threads, by thread name."""
    assert daemon.process is not None
    found: dict[str, list[int]] = {}
    for tid, (name, _) in _threads(daemon).items():
        found.setdefault(name, []).append(os.sched_getscheduler(tid))
    return found


def _loop_and_writer(daemon: DaemonProcess) -> tuple[set[int], set[int]]:
    assert daemon.process is not None
    threads = _threads(daemon)
    (writer,) = [cpus for name, cpus in threads.values() if name == "convd-writer"]
    return threads[daemon.process.pid][1], writer


def _loop_and_writer_policies(daemon: DaemonProcess) -> tuple[int, int]:
    assert daemon.process is not None
    (writer,) = [tid for tid, (name, _) in _threads(daemon).items() if name == "convd-writer"]
    return os.sched_getscheduler(daemon.process.pid), os.sched_getscheduler(writer)


def _queued_writes(client: LineClient, tag: str) -> None:
    """Twenty writes at once (one JSON-RPC batch): they queue up into group commits."""
    batch: list[dict[str, Any]] = [
        {
            "jsonrpc": "2.0",
            "id": n,
            "method": "conv.set_draft",
            "params": {"conv_id": f"{tag}{n}", "conv_type": 1, "draft": text_draft(tag)},
        }
        for n in range(20)
    ]
    client.send_json(batch)
    assert all("result" in reply for reply in client.read_json())


def _sustained_queued_writes(client: LineClient, tag: str, seconds: float = 0.3) -> None:
    """Writes that keep queueing up for a while, as under load (a burst does not pin)."""
    deadline = time.monotonic() + seconds
    round_ = 0
    while time.monotonic() < deadline:
        _queued_writes(client, f"{tag}{round_}-")
        round_ += 1


def _queue_writes_until_pinned(
    daemon: DaemonProcess, client: LineClient, tag: str, timeout: float = 5.0
) -> None:
    """Sustained queued writes, 0.3 s at a time, until the event loop is pinned (or
    ``timeout`` passed): on a loaded machine, or with the threads made SCHED_IDLE, batches
    can come more than 20 ms apart for a while, and the pin waits for 50 ms of steady
    queueing (seen under two CPU hogs)."""
    deadline = time.monotonic() + timeout
    round_ = 0
    while True:
        _sustained_queued_writes(client, f"{tag}{round_}.")
        round_ += 1
        if len(_loop_and_writer(daemon)[0]) == 1 or time.monotonic() > deadline:
            return


def _lone_write(client: LineClient) -> None:
    client.call("conv.set_draft", {"conv_id": "lone", "conv_type": 1, "draft": text_draft("x")})


def test_queued_writes_put_the_event_loop_and_the_writer_on_one_cpu(root: Path) -> None:
    daemon = DaemonProcess(root).start()
    allowed = os.sched_getaffinity(0)
    try:
        with daemon.client() as client:
            _lone_write(client)
            assert _loop_and_writer(daemon) == (allowed, allowed)  # one writer: left alone
            assert _loop_and_writer_policies(daemon) == (OTHER, OTHER)
            _queued_writes(client, "burst")
            assert _loop_and_writer(daemon) == (allowed, allowed)  # a burst: left alone
            _queue_writes_until_pinned(daemon, client, "a")
            loop, writer = _loop_and_writer(daemon)
            assert len(loop) == 1 and writer == loop
            # ... and neither preempts the other when it wakes.
            assert _loop_and_writer_policies(daemon) == (BATCH, BATCH)
            # The reader, the checkpointer and the start-up check run anywhere, as they were.
            free = [cpus for _, cpus in _threads(daemon).values() if cpus == allowed]
            assert len(free) >= 2
            others = [
                policy
                for name, policies in _policies(daemon).items()
                if name != "convd-writer"
                for policy in policies
            ]
            assert others.count(BATCH) == 1  # the event loop's thread alone
            _lone_write(client)
            assert _loop_and_writer(daemon) == (loop, loop)  # held for a second ...
            time.sleep(1.2)
            _lone_write(client)
            assert _loop_and_writer(daemon) == (allowed, allowed)  # ... then released
            assert _loop_and_writer_policies(daemon) == (OTHER, OTHER)
    finally:
        assert daemon.stop() == 0


def test_a_pin_is_released_a_second_after_the_writes_stop_with_no_write_since(
    root: Path,
) -> None:
    daemon = DaemonProcess(root).start()
    allowed = os.sched_getaffinity(0)
    try:
        with daemon.client() as client:
            _queue_writes_until_pinned(daemon, client, "a")
            assert len(_loop_and_writer(daemon)[0]) == 1
            stopped = time.monotonic()
            while _loop_and_writer(daemon) != (allowed, allowed):  # no write from here on
                assert time.monotonic() - stopped < 5.0, "still pinned"
                time.sleep(0.05)
            # Held for its second first (counted from the last 50 ms that queued up, a little
            # before the last batch; and this test reads /proc after that batch).
            assert time.monotonic() - stopped >= 0.7
            assert _loop_and_writer_policies(daemon) == (OTHER, OTHER)
    finally:
        assert daemon.stop() == 0


def test_a_policy_given_by_whoever_started_convd_is_kept(root: Path) -> None:
    daemon = DaemonProcess(root).start()
    try:
        with daemon.client() as client:
            # Made SCHED_IDLE from outside (as `chrt --idle -a -p 0 PID` would): queued writes
            # pin the threads but leave them idle. (Idle threads run only on an idle CPU: with
            # every CPU kept busy by others, batches come too far apart to pin anything.)
            _lone_write(client)
            assert daemon.process is not None
            for tid in _threads(daemon):
                os.sched_setscheduler(tid, IDLE, os.sched_param(0))
            _queue_writes_until_pinned(daemon, client, "a")
            assert len(_loop_and_writer(daemon)[0]) == 1  # pinned all the same
            assert _loop_and_writer_policies(daemon) == (IDLE, IDLE)
    finally:
        assert daemon.stop() == 0


def test_no_same_cpu_pins_nothing(root: Path) -> None:
    daemon = DaemonProcess(root, "--no-same-cpu").start()
    try:
        with daemon.client() as client:
            _sustained_queued_writes(client, "a")
            threads = _threads(daemon)
            policies_seen = _policies(daemon)
    finally:
        assert daemon.stop() == 0
    allowed = os.sched_getaffinity(0)
    assert all(cpus == allowed for _, cpus in threads.values()), threads
    assert {policy for policies in policies_seen.values() for policy in policies} == {OTHER}
    assert "convd-writer" in {name for name, _ in threads.values()}  # named all the same
