"""The daemon keeps the memory that big list pages need (convd.allocator): listing an
account in pages of ~500 KB over and over faults in almost no new memory, where glibc's
malloc left as it is mapped most copies of most pages afresh (~7,700 page faults for the
listings below, which cost more time than the copying)."""

from __future__ import annotations

import sys
import time

import pytest

from convd import allocator
from support import DaemonProcess, text_draft

C2C = 1
CONVERSATIONS = 2_000
#: Logged by convd.allocator once it has set malloc's thresholds.
TUNED = "malloc serves blocks up to"


def _minor_faults(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[7])  # field 10, minflt


@pytest.mark.skipif(
    sys.platform != "linux" or not allocator._glibc(), reason="glibc's malloc and /proc"
)
def test_listing_big_pages_again_faults_in_no_new_memory(daemon: DaemonProcess) -> None:
    assert daemon.process is not None
    with daemon.client() as line:
        draft = text_draft("draft " * 80)  # ~500 bytes of rendering each: pages of ~500 KB
        for first in range(0, CONVERSATIONS, 100):
            line.send_json(
                [
                    {
                        "jsonrpc": "2.0",
                        "id": n,
                        "method": "conv.set_draft",
                        "params": {"conv_id": f"u{n}", "conv_type": C2C, "draft": draft},
                    }
                    for n in range(first, first + 100)
                ]
            )
            replies = line.read_json()
            assert all("result" in reply for reply in replies), replies[:1]
        deadline = time.monotonic() + 10
        while TUNED not in daemon.logs():
            assert time.monotonic() < deadline, "convd did not tune malloc once accepting"
            time.sleep(0.05)

        def list_all() -> int:
            seq, listed = 0, 0
            while True:
                page = line.call("conv.list", {"next_seq": seq, "count": 1000})
                listed += len(page["conversation_list_result_conv_list"])
                seq = page["conversation_list_result_next_seq"]
                if page["conversation_list_result_is_finished"]:
                    return listed

        for _ in range(3):
            assert list_all() == CONVERSATIONS
        before = _minor_faults(daemon.process.pid)
        for _ in range(20):
            list_all()
        faults = _minor_faults(daemon.process.pid) - before
    assert faults < 1_000, faults
