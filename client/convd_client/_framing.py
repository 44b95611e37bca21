"""NDJSON framing: one JSON text per ``\\n``-terminated line, with a hard bound on a line."""

from __future__ import annotations

import anyio
from anyio.abc import ByteReceiveStream

__all__ = ["DEFAULT_MAX_LINE", "LineReader", "LineTooLong"]

#: Longest response line the client accepts by default. Responses are not bounded by the
#: daemon's request limit (a page of conversations with large drafts can be big), so this is
#: a guard against a runaway peer rather than a protocol limit.
DEFAULT_MAX_LINE = 64 * 1024 * 1024

_CHUNK = 65536


class LineTooLong(Exception):
    """A line grew past the limit; the stream cannot be resynchronised."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a line from convd exceeds {limit} bytes")
        self.limit = limit


class LineReader:
    """Reads lines (without their ``\\n``, a trailing ``\\r`` dropped) from a byte stream.

    The limit is enforced strictly, however the bytes arrive (anyio's buffered stream only
    checks it between chunks).
    """

    def __init__(self, stream: ByteReceiveStream, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._stream = stream
        self._max_line = max_line
        self._buffer = bytearray()
        self._scanned = 0  # leading bytes of the buffer known to hold no newline
        self._eof = False

    async def receive_line(self) -> bytes | None:
        """The next line, or None at the end of the stream.

        A last line without a terminator is returned as a line.

        :raises LineTooLong: the line is longer than the limit
        """
        while True:
            index = self._buffer.find(b"\n", self._scanned)
            if index >= 0:
                if index > self._max_line:
                    raise LineTooLong(self._max_line)
                line = bytes(self._buffer[:index])
                del self._buffer[: index + 1]
                self._scanned = 0
                return line[:-1] if line.endswith(b"\r") else line
            self._scanned = len(self._buffer)
            if self._scanned > self._max_line:
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
