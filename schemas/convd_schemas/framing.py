"""The wire's framing: one message per ``\\n``-terminated line, with a hard bound on a line.

Shared by the daemon (for requests) and the client (for responses and notifications).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream
from anyio.streams.memory import MemoryObjectReceiveStream

__all__ = ["LineReader", "LineSplitter", "LineTooLong", "send_queued"]

# Queued lines joined into one socket write when several are waiting.
_COALESCE = 64

_CHUNK = 65536
_CR = 0x0D


class LineTooLong(Exception):
    """A line grew past the limit; the stream cannot be resynchronised and must be closed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"line exceeds {limit} bytes")
        self.limit = limit


class LineSplitter:
    """The framing without I/O: bytes in (``feed``), complete lines out (``lines``).

    A line is at most ``max_line`` bytes, its terminator (``\n`` or ``\r\n``) excluded. Past
    that, ``too_long`` is set and no further line is produced: the stream cannot be
    resynchronised inside an unterminated line. Shared by the blocking-free readers of both
    sides (the daemon's socket protocol, anyio byte streams).
    """

    __slots__ = ("_buffer", "_max_line", "_scanned", "lines", "too_long")

    def __init__(self, max_line: int) -> None:
        self._max_line = max_line
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already known to hold no newline
        self.lines: deque[bytes] = deque()
        self.too_long = False

    def feed(self, data: bytes) -> None:
        """Take ``data``; every line it completes is appended to ``lines``."""
        if self.too_long:
            return
        buffer = self._buffer
        buffer += data
        start = 0
        limit = self._max_line
        while (index := buffer.find(b"\n", max(start, self._scanned))) >= 0:
            # The limit excludes the terminator, "\r\n" as well as "\n".
            end = index - 1 if index > start and buffer[index - 1] == _CR else index
            if end - start > limit:
                self.too_long = True
                break
            self.lines.append(bytes(buffer[start:end]))
            start = index + 1
        if start:
            del buffer[:start]
        self._scanned = len(buffer)
        # One byte over is allowed while it is a "\r" whose "\n" is still on its way.
        over = len(buffer) - limit
        if over > 1 or (over == 1 and buffer[-1] != _CR):
            self.too_long = True

    def finish(self) -> bytes | None:
        """At end of stream: the last line if it had no terminator (so ``printf`` without
        ``\n`` still works from a shell), else None."""
        if self.too_long or not self._buffer:
            return None
        line = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return line[:-1] if line.endswith(b"\r") else line


class LineReader:
    """Reads ``\\n``-terminated lines (a trailing ``\\r`` is dropped) from a byte stream.

    Written by hand rather than on anyio's BufferedByteReceiveStream because that one enforces
    ``max_bytes`` only softly (a long line arriving in one chunk passes) and reports a clean
    EOF between lines the same way as a truncated line.
    """

    def __init__(self, stream: ByteReceiveStream, max_line: int) -> None:
        self._stream = stream
        self._max_line = max_line
        self._splitter = LineSplitter(max_line)
        self._eof = False

    async def receive_line(self) -> bytes | None:
        """The next line without its terminator, or None at end of stream.

        A final line without a newline is returned as a line, so ``printf`` without ``\\n``
        still works from a shell.
        """
        splitter = self._splitter
        while True:
            if splitter.lines:
                return splitter.lines.popleft()
            if splitter.too_long:
                raise LineTooLong(self._max_line)
            if self._eof:
                return splitter.finish()
            try:
                splitter.feed(await self._stream.receive(_CHUNK))
            except anyio.EndOfStream:
                self._eof = True


async def send_queued(
    queue: MemoryObjectReceiveStream[bytes],
    stream: ByteSendStream,
    on_sent: Callable[[int], None] | None = None,
) -> None:
    """Send every line put on ``queue`` until it is closed and drained.

    Lines already waiting are joined into one write, so a burst (a fan-out of events, a
    pipelined batch of replies) costs one system call instead of one per line. Errors of
    ``stream`` propagate to the caller, who decides what a broken peer means. ``on_sent`` is
    told how many lines each completed send carried.
    """
    async with queue:
        async for data in queue:
            chunks = [data]
            while len(chunks) < _COALESCE:
                try:
                    chunks.append(queue.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            await stream.send(b"".join(chunks))
            if on_sent is not None:
                on_sent(len(chunks))
