"""A subscriber on the async ``Client`` that waits for a given number of events.

Usage: ``client_subscriber.py USER COUNT``. Logs in, subscribes, emits ``ready`` (with the
subscription's ``seq``), then collects events until it has COUNT of them (or 40 s passed),
waits 0.2 s more, and emits ``{"kind": "done", "seqs": [every event's seq, as they came]}``.
"""

from __future__ import annotations

import sys

import anyio
from _proc import emit, start_watchdog

from convd_client import Client, ConvEvent


async def main(user: str, count: int) -> None:
    seqs: list[int] = []
    complete = anyio.Event()

    def on_event(event: ConvEvent) -> None:
        seqs.append(event.seq)
        if len(seqs) >= count:
            complete.set()

    async with Client() as client:
        client.add_event_listener(on_event)
        await client.login(user)
        subscribed = await client.subscribe()
        emit("ready", seq=subscribed.seq)
        with anyio.move_on_after(40):
            await complete.wait()
            await anyio.sleep(0.2)  # anything beyond COUNT (a repeat) would show up too
        emit("done", seqs=seqs)


if __name__ == "__main__":
    start_watchdog()
    anyio.run(main, sys.argv[1], int(sys.argv[2]))
