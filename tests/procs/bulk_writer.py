"""A writer that commits many drafts as fast as it can, one after another (async ``Client``).

Usage: ``bulk_writer.py USER COUNT``. Sets ``COUNT`` drafts (``text <n>`` on conversations
``peer0`` .. ``peer6``, in turn), each call waiting for its response, then emits
``{"kind": "done", "count": COUNT, "elapsed": seconds}`` and exits.
"""

from __future__ import annotations

import sys
import time

import anyio
from _proc import emit, start_watchdog

from convd_client import Client, TIMConvType


async def main(user: str, count: int) -> None:
    async with Client() as client:
        await client.login(user)
        started = time.monotonic()
        for n in range(count):
            await client.conv_set_draft(f"peer{n % 7}", TIMConvType.kTIMConv_C2C, f"text {n}")
        emit("done", count=count, elapsed=time.monotonic() - started)


if __name__ == "__main__":
    start_watchdog()
    anyio.run(main, sys.argv[1], int(sys.argv[2]))
