"""The event loop and the SQLite writer share one CPU (``--same-cpu``, the default on Linux);
``--no-same-cpu`` leaves them where the OS puts them, and the other threads are never pinned."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import DaemonProcess, short_tmpdir, text_draft

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="pinning threads needs Linux and at least two usable CPUs",
)


@pytest.fixture
def root() -> Iterator[Path]:
    with short_tmpdir() as path:
        yield path


def _threads(pid: int) -> dict[int, tuple[str, set[int]]]:
    """Each thread of ``pid``: its name and the CPUs it may run on."""
    found = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        tid = int(entry)
        name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        found[tid] = (name, os.sched_getaffinity(tid))
    return found


def _after_a_write(daemon: DaemonProcess) -> dict[int, tuple[str, set[int]]]:
    with daemon.client() as client:
        client.call("conv.set_draft", {"conv_id": "x", "conv_type": 1, "draft": text_draft("a")})
    assert daemon.process is not None
    return _threads(daemon.process.pid)


def test_the_event_loop_and_the_writer_share_one_cpu(root: Path) -> None:
    daemon = DaemonProcess(root).start()
    try:
        threads = _after_a_write(daemon)
    finally:
        assert daemon.stop() == 0
    assert daemon.process is not None
    _, main = threads[daemon.process.pid]
    (writer,) = [cpus for name, cpus in threads.values() if name == "convd-writer"]
    assert len(main) == 1 and writer == main
    # The reader, the checkpointer and the start-up check may run anywhere.
    free = [cpus for name, cpus in threads.values() if len(cpus) > 1]
    assert len(free) >= 2, threads


def test_no_same_cpu_pins_nothing(root: Path) -> None:
    daemon = DaemonProcess(root, "--no-same-cpu").start()
    try:
        threads = _after_a_write(daemon)
    finally:
        assert daemon.stop() == 0
    allowed = os.sched_getaffinity(0)
    assert all(cpus == allowed for _, cpus in threads.values()), threads
    assert "convd-writer" in {name for name, _ in threads.values()}  # named all the same
