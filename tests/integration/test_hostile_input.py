"""Hostile frames over the real socket: every executed request is answered whatever follows
it, and no frame costs the connection that a reply can answer."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from convd_schemas.limits import MAX_LINE_BYTES
from support import DaemonProcess, LineClient, short_tmpdir, text_draft

LOGIN = b'{"jsonrpc":"2.0","id":1,"method":"session.login","params":{"user_id":"alice"}}\n'
SET_DRAFT = (
    b'{"jsonrpc":"2.0","id":2,"method":"conv.set_draft","params":{"conv_id":"pipelined",'
    b'"conv_type":1,"draft":{"draft_msg":{"message_elem_array":[{"elem_type":0,'
    b'"text_elem_content":"kept"}]}}}}\n'
)
STATUS = b'{"jsonrpc":"2.0","id":9,"method":"daemon.status"}\n'


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with short_tmpdir() as root:
        process = DaemonProcess(root).start()
        yield process
        assert process.stop() == 0
        assert "Traceback" not in process.logs()


def _exchange(path: Path, data: bytes, replies: int) -> list[Any]:
    """Send ``data`` in one write, half-close, and read up to ``replies`` lines or EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reader = sock.makefile("rb")
        lines = []
        while len(lines) < replies and (line := reader.readline()):
            lines.append(json.loads(line))
        return lines


def test_invalid_utf8_inside_a_string_after_a_write_loses_no_reply(
    daemon: DaemonProcess,
) -> None:
    bad = b'{"jsonrpc":"2.0","id":3,"method":"x\xff"}\n'
    replies = _exchange(daemon.socket, LOGIN + SET_DRAFT + bad + STATUS, 4)
    assert [r["id"] for r in replies] == [1, 2, None, 9]
    assert replies[1]["result"]["conv_draft_revision"] >= 1
    assert replies[2]["error"]["code"] == -32700
    assert "UTF-8" in replies[2]["error"]["data"]
    assert "result" in replies[3]  # the connection was kept


def test_invalid_utf8_in_params_and_in_a_batch(daemon: DaemonProcess) -> None:
    in_params = b'{"jsonrpc":"2.0","id":4,"method":"session.login","params":{"user_id":"\xfe"}}\n'
    in_batch = b'[{"jsonrpc":"2.0","id":5,"method":"daemon.status","params":{"a":"\xc3"}}]\n'
    replies = _exchange(daemon.socket, in_params + in_batch + STATUS, 3)
    assert replies[0]["error"]["code"] == -32700
    # The batch entry's text is not valid UTF-8: the batch cannot be parsed at all.
    assert replies[1]["error"]["code"] == -32700 and replies[1]["id"] is None
    assert replies[-1]["id"] == 9 and "result" in replies[-1]


def test_a_line_that_ends_the_connection_still_lets_the_write_before_it_be_answered(
    daemon: DaemonProcess,
) -> None:
    too_long = b"[" * (MAX_LINE_BYTES + 10) + b"\n"
    replies = _exchange(daemon.socket, LOGIN + SET_DRAFT + too_long + STATUS, 4)
    assert [r["id"] for r in replies] == [1, 2, None]  # then closed: STATUS never ran
    assert "result" in replies[1]
    assert replies[2]["error"]["code"] == -32600


@pytest.mark.parametrize("depth", [983, 984, 1000, 5000, 100_000])
def test_deep_nesting_is_a_parse_error_and_the_connection_stays(
    daemon: DaemonProcess, depth: int
) -> None:
    nested = b"[" * depth + b"]" * depth + b"\n"
    in_params = (
        b'{"jsonrpc":"2.0","id":7,"method":"daemon.status","params":{"x":'
        + b"[" * depth
        + b"]" * depth
        + b"}}\n"
    )
    replies = _exchange(daemon.socket, nested + in_params + STATUS, 3)
    assert replies[-1]["id"] == 9 and "result" in replies[-1]
    for reply in replies[:2]:
        # Shallow enough to decode: answered as what it is; deeper: -32700. Never a drop.
        if isinstance(reply, dict) and "error" in reply:
            assert reply["error"]["code"] in (-32700, -32600, -32602)


@pytest.mark.parametrize("request_id", ["42.0", "-0.0", "1e2", "0.5", "-7.25", "1.5e-3"])
def test_number_ids_with_fractions_or_exponents_are_echoed(
    daemon: DaemonProcess, request_id: str
) -> None:
    single = b'{"jsonrpc":"2.0","id":%s,"method":"daemon.status"}\n' % request_id.encode()
    batch = (
        b'[{"jsonrpc":"2.0","id":%s,"method":"daemon.status"},'
        b'{"jsonrpc":"2.0","id":"s","method":"daemon.status"}]\n' % request_id.encode()
    )
    one, many = _exchange(daemon.socket, single + batch, 2)
    expected = json.loads(request_id)
    assert one["id"] == expected and "result" in one
    assert [r["id"] for r in many] == [expected, "s"]
    assert str(one["id"]).startswith("-") == request_id.startswith("-")


def test_the_daemon_keeps_serving_a_canary_through_all_of_it(daemon: DaemonProcess) -> None:
    with LineClient(daemon.socket) as canary:
        canary.call("session.login", {"user_id": "canary"})
        canary.call(
            "conv.set_draft", {"conv_id": "c", "conv_type": 1, "draft": text_draft("alive")}
        )
        for frame in (b"\xff\xfe\n", b"{" * 2000 + b"\n", b'{"id":1.0e400}\n', b"[]\n"):
            _exchange(daemon.socket, frame, 1)
        (conv,) = canary.call("conv.get", {"convs": [{"conv_id": "c", "conv_type": 1}]})
    assert conv["conv_draft"]["draft_msg"]["message_elem_array"][0]["text_elem_content"] == "alive"


def test_a_large_reply_before_a_closing_line_arrives_whole(daemon: DaemonProcess) -> None:
    """The connection closes after the line that ends it, but only once what it owes went out:
    a reply larger than the socket's buffers (but under the daemon's 1 MiB high-water mark, so
    the daemon does not wait for it), to a client that reads only afterwards."""
    with LineClient(daemon.socket) as writer:
        writer.call("session.login", {"user_id": "bulky"})
        for n in range(120):
            writer.call(
                "conv.set_draft",
                {"conv_id": f"big{n}", "conv_type": 1, "draft": text_draft("x" * 6000)},
            )
    listing = b'{"jsonrpc":"2.0","id":5,"method":"conv.list","params":{"count":1000}}\n'
    login = b'{"jsonrpc":"2.0","id":1,"method":"session.login","params":{"user_id":"bulky"}}\n'
    too_long = b"x" * (MAX_LINE_BYTES + 10) + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(str(daemon.socket))
        sock.sendall(login + listing + too_long)
        time.sleep(0.5)  # let the daemon queue its ~750 kB reply and reach the closing line
        reader = sock.makefile("rb")
        replies = [json.loads(line) for line in reader]
    assert [r["id"] for r in replies] == [1, 5, None]
    assert len(replies[1]["result"]["conversation_list_result_conv_list"]) == 120
    assert replies[2]["error"]["code"] == -32600
