"""convd.allocator: after keep_big_blocks, copying big replies stops faulting in new pages.

Counted in minor page faults (getrusage), not time: a fresh mapping per block faults in
each of its pages on first touch, a block reused from malloc's heap does not. Each check
runs in a fresh interpreter, whose malloc has not been tuned yet.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from convd import allocator

#: Copies 40 pages of ~500 KB as the list path does (a JSON array around a joined page),
#: after a warm-up, and prints the minor page faults they took.
_COPIES = """
import resource, sys
{setup}
page = b"x" * 500_000
for _ in range(5):
    reply = b"[" + page + b"]"
    del reply
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    reply = b"[" + page + b"]"
    del reply
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

# musl names CS_GNU_LIBC_VERSION too, but has no value for it: ask as the module does.
_GLIBC = allocator._glibc()


def _faults(setup: str) -> int:
    # glibc's malloc as it comes: no other allocator preloaded, no tunables from outside (a
    # MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES would tune the "untuned" run).
    env = {
        name: value
        for name, value in os.environ.items()
        if name != "LD_PRELOAD" and name != "GLIBC_TUNABLES" and not name.startswith("MALLOC_")
    }
    result = subprocess.run(
        [sys.executable, "-c", _COPIES.format(setup=setup)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout)


@pytest.mark.skipif(not _GLIBC, reason="glibc's malloc only")
def test_big_blocks_are_reused_instead_of_faulted_in_afresh() -> None:
    # 40 copies of 123 pages each: untuned, glibc maps (or regrows) most of them afresh.
    untuned = _faults("")
    tuned = _faults("from convd.allocator import keep_big_blocks\nassert keep_big_blocks()")
    assert untuned > 1_000, untuned  # else this test shows nothing on this machine
    assert tuned < 100, tuned


def test_it_declines_where_the_libc_is_not_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(name: str) -> str:
        raise ValueError(name)

    monkeypatch.setattr(os, "confstr", no_such_name, raising=False)  # (Windows has none)
    assert allocator.keep_big_blocks() is False


def test_a_libc_without_mallopt_leaves_the_daemon_running(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    def no_libc(name: object) -> object:
        raise OSError("no such library")

    monkeypatch.setattr(allocator, "_glibc", lambda: True)
    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert allocator.keep_big_blocks() is False
