"""The wire's framing: one message per ``\\n``-terminated line, with a hard bound on a line.

Shared by the daemon (for requests) and the client (for responses and notifications).
"""

from __future__ import annotations

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream
from anyio.streams.memory import MemoryObjectReceiveStream

__all__ = ["LineReader", "LineTooLong", "send_queued"]

# Queued lines joined into one socket write when several are waiting.
_COALESCE = 64

_CHUNK = 65536
_CR = 0x0D


class LineTooLong(Exception):
    """A line grew past the limit; the stream cannot be resynchronised and must be closed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"line exceeds {limit} bytes")
        self.limit = limit


class LineReader:
    """Reads ``\\n``-terminated lines (a trailing ``\\r`` is dropped) from a byte stream.

    Written by hand rather than on anyio's BufferedByteReceiveStream because that one enforces
    ``max_bytes`` only softly (a long line arriving in one chunk passes) and reports a clean
    EOF between lines the same way as a truncated line.
    """

    def __init__(self, stream: ByteReceiveStream, max_line: int) -> None:
        self._stream = stream
        self._max_line = max_line
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already known to hold no newline
        self._eof = False

    async def receive_line(self) -> bytes | None:
        """The next line without its terminator, or None at end of stream.

        A final line without a newline is returned as a line, so ``printf`` without ``\\n``
        still works from a shell.
        """
        while True:
            index = self._buffer.find(b"\n", self._scanned)
            if index >= 0:
                # The limit excludes the terminator, "\r\n" as well as "\n".
                end = index - 1 if index and self._buffer[index - 1] == _CR else index
                if end > self._max_line:
                    raise LineTooLong(self._max_line)
                line = bytes(self._buffer[:end])
                del self._buffer[: index + 1]
                self._scanned = 0
                return line
            self._scanned = len(self._buffer)
            # One byte over is allowed while it is a "\r" whose "\n" is still on its way.
            over = self._scanned - self._max_line
            if over > 1 or (over == 1 and self._buffer[-1] != _CR):
                raise LineTooLong(self._max_line)
            if self._eof:
                if not self._buffer:
                    return None
                line = bytes(self._buffer)
                self._buffer.clear()
                self._scanned = 0
                return line[:-1] if line.endswith(b"\r") else line
            try:
                self._buffer += await self._stream.receive(_CHUNK)
            except anyio.EndOfStream:
                self._eof = True


async def send_queued(queue: MemoryObjectReceiveStream[bytes], stream: ByteSendStream) -> None:
    """Send every line put on ``queue`` until it is closed and drained.

    Lines already waiting are joined into one write, so a burst (a fan-out of events, a
    pipelined batch of replies) costs one system call instead of one per line. Errors of
    ``stream`` propagate to the caller, who decides what a broken peer means.
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
