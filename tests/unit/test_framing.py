"""LineReader: newline-delimited framing over an in-memory byte stream."""

from __future__ import annotations

import anyio
import pytest
from anyio.abc import ByteReceiveStream

from convd.transport import LineReader, LineTooLong
from convd_schemas.limits import MAX_LINE_BYTES

pytestmark = pytest.mark.anyio


class ChunkStream(ByteReceiveStream):
    """Delivers ``chunks`` one per ``receive`` (split only if ``max_bytes`` is smaller), then
    end of stream, or, without ``eof``, waits forever like a peer that went quiet."""

    def __init__(self, chunks: list[bytes], eof: bool) -> None:
        self._chunks = [c for c in chunks if c]
        self._eof = eof
        self.receives = 0

    async def receive(self, max_bytes: int = 65536) -> bytes:
        self.receives += 1
        if not self._chunks:
            if self._eof:
                raise anyio.EndOfStream
            await anyio.sleep_forever()
        chunk = self._chunks.pop(0)
        if len(chunk) > max_bytes:
            self._chunks.insert(0, chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        return chunk

    async def aclose(self) -> None:
        self._chunks.clear()


async def _feed(*chunks: bytes, eof: bool = True) -> ChunkStream:
    return ChunkStream(list(chunks), eof)


async def _lines(reader: LineReader) -> list[bytes]:
    lines = []
    while (line := await reader.receive_line()) is not None:
        lines.append(line)
    return lines


async def test_lines_split_on_newline_across_and_within_chunks() -> None:
    stream = await _feed(b'{"a":1}\n{"b"', b":2}\n", b'{"c":3}\n{"d":4}\n')
    assert await _lines(LineReader(stream, 64)) == [b'{"a":1}', b'{"b":2}', b'{"c":3}', b'{"d":4}']


async def test_crlf_terminator_is_dropped() -> None:
    stream = await _feed(b"one\r\ntwo\r", b"\nthree\n")
    assert await _lines(LineReader(stream, 64)) == [b"one", b"two", b"three"]


async def test_blank_lines_are_returned_empty_for_the_caller_to_skip() -> None:
    # The reader frames; skipping blank lines is the connection's job (tested there too).
    stream = await _feed(b"\n\r\n a \n\n")
    assert await _lines(LineReader(stream, 64)) == [b"", b"", b" a ", b""]


async def test_final_line_without_newline_is_a_line() -> None:
    stream = await _feed(b"first\nlast", b" part")
    assert await _lines(LineReader(stream, 64)) == [b"first", b"last part"]


async def test_final_line_without_newline_drops_trailing_cr() -> None:
    stream = await _feed(b"last\r")
    assert await _lines(LineReader(stream, 64)) == [b"last"]


async def test_eof_is_none_and_stays_none() -> None:
    reader = LineReader(await _feed(b"x\n"), 64)
    assert await reader.receive_line() == b"x"
    assert await reader.receive_line() is None
    assert await reader.receive_line() is None


async def test_eof_on_empty_stream() -> None:
    assert await LineReader(await _feed(), 64).receive_line() is None


async def test_line_of_exactly_the_limit_passes() -> None:
    line = b"x" * 64
    stream = await _feed(line + b"\n" + line)
    assert await _lines(LineReader(stream, 64)) == [line, line]


async def test_line_over_the_limit_in_one_chunk_is_refused() -> None:
    # The whole oversized line and its newline arrive in one receive: still refused.
    stream = await _feed(b"x" * 100 + b"\nok\n")
    reader = LineReader(stream, 64)
    with pytest.raises(LineTooLong) as refused:
        await reader.receive_line()
    assert refused.value.limit == 64


async def test_line_one_byte_over_the_limit_is_refused() -> None:
    stream = await _feed(b"x" * 65 + b"\n")
    with pytest.raises(LineTooLong):
        await LineReader(stream, 64).receive_line()


async def test_oversized_line_after_good_lines() -> None:
    stream = await _feed(b"good\n" + b"y" * 200 + b"\n")
    reader = LineReader(stream, 64)
    assert await reader.receive_line() == b"good"
    with pytest.raises(LineTooLong):
        await reader.receive_line()


async def test_unterminated_line_is_refused_as_soon_as_it_passes_the_limit() -> None:
    # No newline and no EOF: the reader must not wait for the rest of a line that is
    # already too long (it would buffer without bound).
    stream = await _feed(b"z" * 40, b"z" * 40, eof=False)
    with anyio.fail_after(5), pytest.raises(LineTooLong):
        await LineReader(stream, 64).receive_line()


async def test_unterminated_line_at_eof_over_the_limit_is_refused() -> None:
    stream = await _feed(b"z" * 65)
    with pytest.raises(LineTooLong):
        await LineReader(stream, 64).receive_line()


async def test_many_small_chunks_make_one_line() -> None:
    stream = await _feed(*(bytes([b]) for b in b'{"jsonrpc":"2.0"}\r\n'))
    assert await _lines(LineReader(stream, 64)) == [b'{"jsonrpc":"2.0"}']


async def test_protocol_limit_one_mebibyte() -> None:
    exact = b"a" * MAX_LINE_BYTES
    stream = await _feed(exact + b"\n", b"b" * (MAX_LINE_BYTES + 1) + b"\n")
    reader = LineReader(stream, MAX_LINE_BYTES)
    assert await reader.receive_line() == exact
    with pytest.raises(LineTooLong):
        await reader.receive_line()


async def test_crlf_is_not_counted_against_the_limit() -> None:
    # The limit excludes the terminator, and "\r\n" is a terminator like "\n": a line of
    # exactly the limit must pass whichever of the two ends it, also when the "\r" and the
    # "\n" arrive in different chunks.
    line = b"x" * 64
    stream = await _feed(line + b"\r\n" + line + b"\r", b"\n")
    assert await _lines(LineReader(stream, 64)) == [line, line]
