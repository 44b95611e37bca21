"""The client's own event loops: keep one known, harmless asyncio report off stderr."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["ignore_cancelled_read_race", "quiet_cancelled_read_race"]


def ignore_cancelled_read_race(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An asyncio exception handler that drops anyio's cancelled-read race and passes on the
    rest.

    anyio's socket reads on asyncio complete a future from an ``add_reader`` callback; when
    the read was cancelled (a connection closed as the program ends), that callback can still
    run, and asyncio reports "Exception in callback Future.set_result ... InvalidStateError"
    (the race of agronholm/anyio#1267, more frequent under uvloop). Nothing is lost: the
    read had been abandoned. Everything else goes to the loop's default handler.
    """
    exc = context.get("exception")
    if isinstance(exc, asyncio.InvalidStateError) and "Future.set_result" in repr(
        context.get("handle")
    ):
        return
    loop.default_exception_handler(context)


def quiet_cancelled_read_race() -> None:
    """Install ``ignore_cancelled_read_race`` on the running loop (one the client owns)."""
    asyncio.get_running_loop().set_exception_handler(ignore_cancelled_read_race)
