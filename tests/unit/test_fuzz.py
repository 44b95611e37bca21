"""Property-based fuzzing (hypothesis, bounded) of the framing and the dispatch path: whatever
bytes arrive, the framing yields exactly the lines that were sent, and every line gets either
nothing (a notification) or exactly one well-formed JSON-RPC response line; nothing raises."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convd.rpc.dispatcher import Dispatcher, InvalidParams, Result, Success
from convd.transport import LineTooLong, SocketChannel

MAX_LINE = 256
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class _Params(msgspec.Struct, forbid_unknown_fields=True):
    text: str = ""
    count: int = 0


async def _echo(session: object, params: msgspec.Raw) -> Result:
    try:
        decoded = msgspec.json.decode(params, type=_Params)
    except msgspec.ValidationError as exc:
        return InvalidParams(str(exc))
    return Success({"text": decoded.text, "count": decoded.count})


async def _boom(session: object, params: msgspec.Raw) -> Result:
    raise RuntimeError("never shown to a client")


DISPATCHER = Dispatcher({"echo": _echo, "boom": _boom}, writes=frozenset({"echo"}))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
        "method": st.sampled_from(["echo", "boom", "nope", ""]) | st.integers(),
        "params": json_values,
        "id": st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text()
        | st.none(),
    },
)


def _check_response(response: Any) -> None:
    assert isinstance(response, dict), response
    assert response["jsonrpc"] == "2.0"
    assert ("result" in response) != ("error" in response)
    if "error" in response:
        assert isinstance(response["error"]["code"], int)
        assert "never shown" not in json.dumps(response)


def _dispatch(line: bytes) -> bytes | None:
    async def run() -> bytes | None:
        return await DISPATCHER.dispatch(line, object())

    return anyio.run(run)


def _check_line(line: bytes) -> None:
    reply = _dispatch(line)
    if reply is None:
        return
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1
    decoded = json.loads(reply)
    if isinstance(decoded, list):
        assert decoded
        for response in decoded:
            _check_response(response)
    else:
        _check_response(decoded)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_get_at_most_one_well_formed_reply(line: bytes) -> None:
    _check_line(line.replace(b"\n", b" "))


@FUZZ
@given(requests | st.lists(requests, max_size=5))
def test_any_json_request_shape_gets_a_well_formed_reply(message: Any) -> None:
    _check_line(json.dumps(message).encode())


@FUZZ
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8), st.data())
def test_framing_yields_exactly_the_lines_sent_however_they_are_split(
    lines: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]

    async def run() -> list[bytes]:
        channel = SocketChannel(MAX_LINE)
        for chunk in chunks:
            if chunk:
                channel.data_received(chunk)
        channel.eof_received()
        received = []
        while (line := await channel.receive_line()) is not None:
            received.append(line)
        return received

    expected = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    assert asyncio.run(run()) == expected


@FUZZ
@given(st.integers(MAX_LINE + 2, MAX_LINE * 3), st.integers(1, 64))
def test_a_line_over_the_limit_is_refused_whatever_the_chunking(size: int, chunk: int) -> None:
    stream = b"ok\n" + b"x" * size + b"\n"

    async def run() -> list[bytes]:
        channel = SocketChannel(MAX_LINE)
        for start in range(0, len(stream), chunk):
            channel.data_received(stream[start : start + chunk])
        received = [await channel.receive_line()]
        with pytest.raises(LineTooLong):
            await channel.receive_line()
        return [r for r in received if r is not None]

    assert asyncio.run(run()) == [b"ok"]
