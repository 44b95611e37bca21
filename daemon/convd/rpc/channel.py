"""What the rpc layer needs from a transport: a connection as a channel of lines, and a
listener that hands out channels. The transport package implements these protocols (Unix
sockets; in-memory byte streams in tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from anyio.abc import TaskGroup

__all__ = ["Channel", "ChannelListener", "LineTooLong"]

from convd_schemas.framing import LineTooLong


class Channel(Protocol):
    """One client connection, framed as ``\\n``-terminated lines."""

    #: Who is on the other end, for the log ("uid 1000, pid 42"), or "".
    peer: str

    async def receive_line(self) -> bytes | None:
        """The next line without its terminator, or None once the peer has finished sending
        (or the connection is gone). Raises LineTooLong past the channel's line limit."""
        ...

    def send(self, data: bytes) -> None:
        """Queue ``data`` (whole lines) for the peer; never blocks. Queued bytes are sent in
        order; a closed channel drops them."""
        ...

    def interrupt(self) -> None:
        """Make the pending (or next) ``receive_line`` return None: stop reading requests.
        What is queued for the peer still goes out."""
        ...

    def queued_bytes(self) -> int:
        """Bytes queued and not yet taken by the operating system."""
        ...

    async def drain(self) -> None:
        """Wait until the queue is below the channel's high-water mark (or it closed)."""
        ...

    def close(self) -> None:
        """Send what is queued, then close. Returns at once; idempotent."""
        ...

    def abort(self) -> None:
        """Close now, dropping what is queued."""
        ...


class ChannelListener(Protocol):
    """Accepts connections until closed."""

    async def serve(
        self, handler: Callable[[Channel], Awaitable[None]], task_group: TaskGroup
    ) -> None:
        """Run ``handler(channel)`` in ``task_group`` for every accepted connection, until
        cancelled. The handler owns the channel; it is aborted if still open when the
        handler returns."""
        ...

    async def aclose(self) -> None:
        """Stop accepting: new connections are refused from now on."""
        ...
