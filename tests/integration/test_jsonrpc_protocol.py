"""JSON-RPC 2.0 over newline-delimited JSON on the daemon's socket.

The examples of the JSON-RPC 2.0 specification (section 7) are sent as the specification
writes them; where they call its example methods (``subtract``, ``sum``, ``update``, ...),
convd has no such method and answers -32601 as the specification does for ``foobar``, and
each example is also run with a convd method in its place.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
from typing import Any

import pytest

from convd_schemas.limits import MAX_LINE_BYTES
from support import DaemonProcess, LineClient, text_draft

PARSE, INVALID_REQUEST, NOT_FOUND, INVALID_PARAMS, INTERNAL = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)
SYNC = b'{"jsonrpc": "2.0", "method": "daemon.status", "id": "sync"}\n'


def _key(conv_id: str, conv_type: int = 1) -> dict[str, Any]:
    return {"conv_id": conv_id, "conv_type": conv_type}


def _exchange(client: LineClient, line: bytes | str) -> Any:
    """Send one line, then a marker request; return what came before the marker's reply
    (None when nothing did). Requests are answered in order, so this proves "no reply"."""
    data = line.encode() if isinstance(line, str) else line
    client.send_raw(data.rstrip(b"\n") + b"\n" + SYNC)
    replies = []
    while True:
        raw = client.read_line()
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1
        reply = json.loads(raw)
        if isinstance(reply, dict) and reply.get("id") == "sync":
            assert "result" in reply
            break
        replies.append(reply)
    assert len(replies) <= 1, replies
    return replies[0] if replies else None


def _error(reply: Any, code: int, request_id: Any = None) -> dict[str, Any]:
    assert isinstance(reply, dict), reply
    assert reply["jsonrpc"] == "2.0" and "result" not in reply
    assert reply["id"] == request_id and type(reply["id"]) is type(request_id)
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"]["message"], str)
    return dict(reply["error"])


# -- the specification's examples (jsonrpc.org/specification, section 7) ---------------------


def test_spec_rpc_call_with_positional_parameters(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        for line in (
            '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
            '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
        ):
            _error(_exchange(client, line), NOT_FOUND, json.loads(line)["id"])
        # convd takes params by name only: positional params are Invalid params.
        reply = _exchange(
            client, '{"jsonrpc": "2.0", "method": "conv.create", "params": ["bob", 1], "id": 1}'
        )
        error = _error(reply, INVALID_PARAMS, 1)
        assert "by name" in error["data"]
        assert client.call("conv.list")["conversation_list_result_conv_list"] == []


def test_spec_rpc_call_with_named_parameters(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        reply = _exchange(
            client,
            '{"jsonrpc": "2.0", "method": "subtract", '
            '"params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
        )
        _error(reply, NOT_FOUND, 3)
        # The same shape with a convd method; the order of members does not matter.
        for n, params in enumerate(
            ('{"conv_id": "bob", "conv_type": 1}', '{"conv_type": 1, "conv_id": "bob"}'), 3
        ):
            reply = _exchange(
                client,
                f'{{"jsonrpc": "2.0", "method": "conv.create", "params": {params}, "id": {n}}}',
            )
            assert reply["id"] == n and reply["result"]["conv_id"] == "bob"
        error = _error(
            _exchange(
                client,
                '{"jsonrpc": "2.0", "method": "conv.create", '
                '"params": {"subtrahend": 23, "minuend": 42}, "id": 5}',
            ),
            INVALID_PARAMS,
            5,
        )
        assert isinstance(error["data"], str)


def test_spec_notifications(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        assert (
            _exchange(client, '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}')
            is None
        )
        assert _exchange(client, '{"jsonrpc": "2.0", "method": "foobar"}') is None
        # Notifications of convd methods take effect, and failed ones stay silent too.
        client.notify("conv.create", _key("bob"))
        client.notify("conv.set_draft", {**_key("bob"), "draft": text_draft("by notification")})
        client.notify("conv.create", _key(""))  # 6017, not reported
        client.notify("conv.list", {"count": 0})  # -32602, not reported
        client.notify("conv.create", ["positional"])
        assert (
            _exchange(
                client,
                '{"jsonrpc": "2.0", "method": "conv.pin", "params": '
                '{"conv_id": "bob", "conv_type": 1, "is_pinned": true}}',
            )
            is None
        )
        (bob,) = client.call("conv.get", {"convs": [_key("bob")]})
        assert bob["conv_is_pinned"] is True
        elems = bob["conv_draft"]["draft_msg"]["message_elem_array"]
        assert elems == [{"elem_type": 0, "text_elem_content": "by notification"}]
    with daemon.client(user=None) as anonymous:
        anonymous.notify("conv.create", _key("x"))  # 6014, not reported
        assert "result" in anonymous.request("daemon.status")


def test_spec_non_existent_method(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        reply = _exchange(client, '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}')
        error = _error(reply, NOT_FOUND, "1")
        assert error["message"] == "Method not found" and error["data"] == "foobar"


def test_spec_invalid_json(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        reply = _exchange(client, '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
        assert _error(reply, PARSE)["message"] == "Parse error"
        for line in (b"{", b"nonsense", b"\xff\xfe{}", b'{"jsonrpc": "2.0",}'):
            _error(_exchange(client, line), PARSE)


def test_spec_invalid_request_object(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        reply = _exchange(client, '{"jsonrpc": "2.0", "method": 1, "params": "bar"}')
        assert _error(reply, INVALID_REQUEST)["message"] == "Invalid Request"
        for line in (
            '{"jsonrpc": "1.0", "method": "daemon.status", "id": 1}',
            '{"method": "daemon.status", "id": 1}',
            '{"jsonrpc": "2.0", "method": "daemon.status", "params": 7, "id": 1}',
            '{"jsonrpc": "2.0", "method": "daemon.status", "id": {"nested": 1}}',
            '"just a string"',
            "42",
            "null",
        ):
            _error(_exchange(client, line), INVALID_REQUEST)


def test_spec_batch_invalid_json(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        reply = _exchange(
            client,
            '[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
            '{"jsonrpc": "2.0", "method"]',
        )
        _error(reply, PARSE)  # one error object, not an array


def test_spec_batch_empty_array(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        _error(_exchange(client, "[]"), INVALID_REQUEST)  # one error object, not an array


def test_spec_batch_invalid_but_not_empty(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        for line, count in (("[1]", 1), ("[1,2,3]", 3)):
            replies = _exchange(client, line)
            assert isinstance(replies, list) and len(replies) == count
            for reply in replies:
                _error(reply, INVALID_REQUEST)


def test_spec_batch_mixed(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        as_written = _exchange(
            client,
            """[
                {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
                {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
                {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
            ]""".replace("\n", " "),
        )
        assert isinstance(as_written, list) and len(as_written) == 5
        by_id = {r["id"]: r for r in as_written}
        assert set(by_id) == {"1", "2", "5", "9", None}
        for request_id in ("1", "2", "5", "9"):
            _error(by_id[request_id], NOT_FOUND, request_id)
        _error(by_id[None], INVALID_REQUEST)
        # The same batch with convd methods in place of the example's.
        adapted = _exchange(
            client,
            json.dumps(
                [
                    {"jsonrpc": "2.0", "method": "conv.create", "params": _key("sum"), "id": "1"},
                    {
                        "jsonrpc": "2.0",
                        "method": "conv.set_draft",
                        "params": {**_key("hello"), "draft": text_draft("notified")},
                    },
                    {"jsonrpc": "2.0", "method": "conv.list", "params": {"count": 0}, "id": "2"},
                    {"foo": "boo"},
                    {
                        "jsonrpc": "2.0",
                        "method": "foo.get",
                        "params": {"name": "myself"},
                        "id": "5",
                    },
                    {"jsonrpc": "2.0", "method": "conv.list", "id": "9"},
                ]
            ),
        )
        assert isinstance(adapted, list) and len(adapted) == 5
        by_id = {r["id"]: r for r in adapted}
        assert by_id["1"]["result"]["conv_id"] == "sum"
        _error(by_id["2"], INVALID_PARAMS, "2")
        _error(by_id[None], INVALID_REQUEST)
        _error(by_id["5"], NOT_FOUND, "5")
        listed = by_id["9"]["result"]["conversation_list_result_conv_list"]
        # The batch ran in order: the notification's draft is in the list that follows it.
        assert [c["conv_id"] for c in listed] == ["hello", "sum"]


def test_spec_batch_all_notifications(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        reply = _exchange(
            client,
            '[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},'
            '{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]',
        )
        assert reply is None
        batch = [
            {"jsonrpc": "2.0", "method": "conv.create", "params": _key("a")},
            {"jsonrpc": "2.0", "method": "conv.create", "params": _key("b", 2)},
            {"jsonrpc": "2.0", "method": "conv.delete", "params": _key("nobody")},
        ]
        assert _exchange(client, json.dumps(batch)) is None
        listed = client.call("conv.list")["conversation_list_result_conv_list"]
        assert [c["conv_id"] for c in listed] == ["b", "a"]


# -- ids, framing, ordering ------------------------------------------------------------------


def test_ids_are_echoed_exactly(daemon: DaemonProcess) -> None:
    ids: list[Any] = ["1", "", "x" * 200, "\u4f1a\u8bdd \U0001f600", 0, 1, -1, 2**53 + 1, None]
    with daemon.client(user=None) as client:
        for request_id in ids:
            line = json.dumps({"jsonrpc": "2.0", "method": "daemon.status", "id": request_id})
            reply = _exchange(client, line)
            assert "result" in reply
            assert reply["id"] == request_id and type(reply["id"]) is type(request_id)
            line = json.dumps({"jsonrpc": "2.0", "method": "nope", "id": request_id})
            _error(_exchange(client, line), NOT_FOUND, request_id)
        batch = [{"jsonrpc": "2.0", "method": "daemon.status", "id": i} for i in ids]
        replies = _exchange(client, json.dumps(batch))
        assert [r["id"] for r in replies] == ids
        assert [type(r["id"]) for r in replies] == [type(i) for i in ids]


def test_crlf_and_blank_lines(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        client.send_raw(
            b"\r\n\n   \n\t\n"
            b'{"jsonrpc":"2.0","method":"session.login","params":{"user_id":"alice"},"id":1}\r\n'
            b"\r\n\r\n"
            b'{"jsonrpc":"2.0","method":"conv.create","params":{"conv_id":"b","conv_type":1},'
            b'"id":2}\r\n\n'
            b'{"jsonrpc":"2.0","method":"conv.list","id":3}\n'
        )
        replies = [client.read_json() for _ in range(3)]
        assert [r["id"] for r in replies] == [1, 2, 3]
        assert all("result" in r for r in replies), replies
        assert _exchange(client, b"\r\n") is None


def test_final_line_without_newline(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        client.send_raw(b'{"jsonrpc":"2.0","method":"daemon.status","id":"last"}')
        client.sock.shutdown(socket.SHUT_WR)
        reply = client.read_json()
        assert reply["id"] == "last" and "result" in reply
        with pytest.raises(EOFError):
            client.read_line()


def test_pipelined_requests_take_effect_in_order(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        count = 300
        lines: list[dict[str, Any]] = []
        for n in range(count):
            conv = _key(f"c{n % 7}")
            lines.append(
                {"method": "conv.set_draft", "params": {**conv, "draft": text_draft(f"v{n}")}}
            )
            if n % 50 == 49:
                lines.append({"method": "conv.delete", "params": _key("c0")})
        lines.append({"method": "conv.list", "params": {"count": 1000}})
        requests = [{"jsonrpc": "2.0", "id": n, **line} for n, line in enumerate(lines)]
        # Everything in one write, before reading any reply.
        client.send_raw(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        replies = [client.read_json() for _ in requests]
        assert [r["id"] for r in replies] == list(range(len(requests)))
        assert all("result" in r for r in replies), [r for r in replies if "error" in r][:3]
        listed = replies[-1]["result"]["conversation_list_result_conv_list"]
        # What the list must be if every request ran in the order sent: most recent first.
        model: dict[str, str] = {}
        for line in lines[:-1]:
            params = line["params"]
            model.pop(params["conv_id"], None)
            if line["method"] == "conv.set_draft":
                elem = params["draft"]["draft_msg"]["message_elem_array"][0]
                model[params["conv_id"]] = elem["text_elem_content"]
        expected = list(reversed(model.items()))
        assert len(expected) == 6  # c0 was deleted last
        got = [
            (
                c["conv_id"],
                c["conv_draft"]["draft_msg"]["message_elem_array"][0]["text_elem_content"],
            )
            for c in listed
        ]
        assert got == expected


# -- the line limit --------------------------------------------------------------------------


def _padded_request(size: int) -> bytes:
    """A valid request of exactly ``size`` bytes (whitespace is insignificant in JSON)."""
    request = b'{"jsonrpc":"2.0","method":"daemon.status","id":"big"}'
    return request[:-1] + b" " * (size - len(request)) + b"}"


def test_line_of_exactly_the_limit_is_served(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        line = _padded_request(MAX_LINE_BYTES)
        assert len(line) == MAX_LINE_BYTES
        client.send_raw(line + b"\n")
        reply = client.read_json()
        assert reply["id"] == "big" and "result" in reply
        assert "result" in client.request("daemon.status")


def test_oversized_line_closes_only_that_connection(daemon: DaemonProcess) -> None:
    with daemon.client("alice") as bystander, daemon.client("alice") as offender:
        bystander.call("conv.create", _key("kept"))
        subscription = bystander.call("conv.subscribe")
        offender.call("conv.create", _key("before"))
        assert bystander.next_notification()["params"]["conv_array"][0]["conv_id"] == "before"
        line = _padded_request(MAX_LINE_BYTES + 1)
        # The daemon may close before it has read everything we wrote.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            offender.send_raw(line + b"\n" + SYNC)
        reply = offender.read_json()
        error = _error(reply, INVALID_REQUEST)
        assert str(MAX_LINE_BYTES) in error["data"]
        with pytest.raises((EOFError, ConnectionResetError)):
            offender.read_line()  # closed: the SYNC request after the long line never ran
        # The other connection of the same account carries on, subscription and all.
        assert [
            c["conv_id"] for c in bystander.call("conv.list")["conversation_list_result_conv_list"]
        ] == [
            "before",
            "kept",
        ]
        bystander.call("conv.create", _key("after"))
        event = bystander.next_notification()["params"]
        assert event["subscription"] == subscription["subscription"]
        assert event["conv_array"][0]["conv_id"] == "after"
        status = bystander.call("daemon.status")
        assert status["connections"] == 1
    with daemon.client() as newcomer:
        assert "result" in newcomer.request("daemon.status")
    assert "Traceback" not in daemon.logs()


# -- internal errors -------------------------------------------------------------------------


def test_internal_error_does_not_leak(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob"))
        # Damage the database under the running daemon.
        with sqlite3.connect(daemon.db) as db:
            db.execute("DROP TABLE conversation")
        db.close()
        reply = client.request("conv.list")
        error = reply["error"]
        assert error["code"] == INTERNAL and error["message"] == "Internal error"
        assert set(error["data"]) == {"correlation_id"}
        correlation_id = error["data"]["correlation_id"]
        assert isinstance(correlation_id, str) and len(correlation_id) >= 8
        assert "conversation" not in json.dumps(reply)
        # The same in a batch, entry by entry; the connection stays usable.
        client.send_json(
            [
                {
                    "jsonrpc": "2.0",
                    "method": "conv.get",
                    "params": {"convs": [_key("bob")]},
                    "id": "a",
                },
                {
                    "jsonrpc": "2.0",
                    "method": "session.login",
                    "params": {"user_id": "bob"},
                    "id": "b",
                },
            ]
        )
        first, second = client.read_json()
        assert first["error"]["code"] == INTERNAL and set(first["error"]["data"]) == {
            "correlation_id"
        }
        assert first["error"]["data"]["correlation_id"] != correlation_id
        assert second["result"]["user_id"] == "bob"
    logs = daemon.logs()
    assert correlation_id in logs
    assert "Traceback" in logs and "no such table: conversation" in logs
