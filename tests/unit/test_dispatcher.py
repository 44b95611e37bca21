"""Dispatcher: one line of JSON-RPC 2.0 in, one line (or nothing) out, on the real methods."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from convd import domain
from convd.domain import Conversation, ConversationService, EventBus
from convd.rpc import ConvListing
from convd.rpc.dispatcher import Dispatcher, Error, InvalidParams, Result, Success
from convd.rpc.handlers import Methods
from convd.rpc.session import Session
from convd.store import SqliteStore, open_store
from convd_schemas import ERROR_TABLE
from convd_schemas.limits import MAX_BATCH_SIZE
from convd_schemas.openrpc import build_openrpc
from support import fixed_status

pytestmark = pytest.mark.anyio

PARSE, INVALID_REQUEST, NOT_FOUND, INVALID_PARAMS, INTERNAL = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)


def _session(origin: str = "c1") -> Session:
    pushed: list[bytes] = []

    async def send(data: bytes) -> None:
        pushed.append(data)

    def overflow(reason: str) -> None:
        raise AssertionError(reason)

    return Session(origin, pushed.append, send, overflow, 100)


class Rpc:
    """A dispatcher over the real methods, with one session, speaking bytes."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.session = _session()

    async def raw(self, line: bytes | str) -> Any:
        """The decoded reply to one line, or None when nothing is owed."""
        data = line.encode() if isinstance(line, str) else line
        reply = await self.dispatcher.dispatch(data, self.session)
        if reply is None:
            return None
        assert reply.endswith(b"\n") and reply.count(b"\n") == 1, reply
        return json.loads(reply)

    async def send(self, message: Any) -> Any:
        return await self.raw(json.dumps(message))

    async def call(self, method: str, params: Any = None, id: Any = 1) -> Any:
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
        if params is not None:
            request["params"] = params
        reply = await self.send(request)
        assert reply["id"] == id and "error" not in reply, reply
        return reply["result"]

    async def error(self, method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
        if params is not None:
            request["params"] = params
        reply = await self.send(request)
        assert reply["id"] == id and "result" not in reply, reply
        assert set(reply) == {"jsonrpc", "id", "error"}
        return dict(reply["error"])


def _methods(service: ConversationService) -> Methods:
    return Methods(service, fixed_status, build_openrpc())


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with open_store(tmp_path / "convd.db", listing=ConvListing()) as store:
        yield store


@pytest.fixture
def rpc(store: SqliteStore) -> Rpc:
    return Rpc(Dispatcher(_methods(ConversationService(store, EventBus())).table()))


async def _login(rpc: Rpc, user: str = "alice") -> None:
    await rpc.call("session.login", {"user_id": user})


def _req(method: str, params: Any = None, id: Any = None) -> dict[str, Any]:
    request: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        request["params"] = params
    if id is not None:
        request["id"] = id
    return request


# -- single requests -------------------------------------------------------------------------


async def test_request_gets_one_response_line(rpc: Rpc) -> None:
    reply = await rpc.send(_req("session.login", {"user_id": "alice"}, id=7))
    assert reply == {
        "jsonrpc": "2.0",
        "result": {"user_id": "alice", "sdk_app_id": 0},
        "id": 7,
    }


@pytest.mark.parametrize("request_id", ["abc", "", "\u4f1a\u8bdd", 0, -7, 2**53 + 1, None])
async def test_id_is_echoed_exactly(rpc: Rpc, request_id: Any) -> None:
    reply = await rpc.send({"jsonrpc": "2.0", "method": "daemon.status", "id": request_id})
    assert "result" in reply
    assert reply["id"] == request_id and type(reply["id"]) is type(request_id)


async def test_notification_gets_no_reply_but_takes_effect(rpc: Rpc) -> None:
    assert await rpc.send(_req("session.login", {"user_id": "alice"})) is None
    assert await rpc.send(_req("conv.create", {"conv_id": "bob", "conv_type": 1})) is None
    found = await rpc.call("conv.get", {"convs": [{"conv_id": "bob", "conv_type": 1}]})
    assert [c["conv_id"] for c in found] == ["bob"]


async def test_failing_notifications_get_no_reply(rpc: Rpc) -> None:
    assert await rpc.send(_req("no.such.method")) is None
    assert await rpc.send(_req("conv.list")) is None  # not logged in
    assert await rpc.send(_req("conv.list", {"count": 0})) is None
    assert await rpc.send(_req("conv.list", [1, 2])) is None


async def test_parse_error(rpc: Rpc) -> None:
    for line in (b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]', b"\xff", b"{"):
        reply = await rpc.raw(line)
        assert reply["id"] is None and reply["error"]["code"] == PARSE
        assert reply["error"]["message"] == "Parse error"


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "method": 1, "params": "bar"},
        {"jsonrpc": "1.0", "method": "daemon.status", "id": 1},
        {"method": "daemon.status", "id": 1},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "method": "daemon.status", "params": "x", "id": 1},
        {"jsonrpc": "2.0", "method": "daemon.status", "params": None, "id": 1},
        {"jsonrpc": "2.0", "method": "daemon.status", "id": {"a": 1}},
        {"jsonrpc": "2.0", "method": "daemon.status", "id": [1]},
        {"jsonrpc": "2.0", "method": "daemon.status", "id": True},
        {"jsonrpc": "2.0", "method": "daemon.status", "id": 1, "extra": 1},
        "a string",
        42,
        None,
    ],
)
async def test_invalid_request(rpc: Rpc, message: Any) -> None:
    reply = await rpc.send(message)
    assert reply["id"] is None
    assert reply["error"]["code"] == INVALID_REQUEST
    assert reply["error"]["message"] == "Invalid Request"


async def test_method_not_found(rpc: Rpc) -> None:
    error = await rpc.error("foobar", id="1")
    assert error == {"code": NOT_FOUND, "message": "Method not found", "data": "foobar"}


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("session.login", ["alice"]),
        ("session.login", {}),
        ("session.login", {"user_id": 5}),
        ("session.login", {"user_id": "a", "typo": 1}),
        ("session.login", {"user_id": "a", "sdk_app_id": -1}),
        ("conv.list", {"count": 0}),
        ("conv.list", {"count": 1001}),
        ("conv.list", {"next_seq": -1}),
        ("conv.get", {"convs": []}),
        ("conv.get", {"convs": [{"conv_id": f"u{n}", "conv_type": 1} for n in range(101)]}),
        ("conv.create", {"conv_id": "bob", "conv_type": 3}),
        ("conv.create", {"conv_id": "bob"}),
        ("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": {"draft_msg": 1}}),
        ("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": {}, "if_revision": -1}),
        ("conv.pin", {"conv_id": "bob", "conv_type": 1, "is_pinned": "yes"}),
        ("daemon.status", {"verbose": True}),
    ],
)
async def test_invalid_params(rpc: Rpc, method: str, params: Any) -> None:
    if method != "session.login":
        await _login(rpc)
    error = await rpc.error(method, params)
    assert error["code"] == INVALID_PARAMS and error["message"] == "Invalid params"
    assert isinstance(error["data"], str) and error["data"]


async def test_bounds_that_are_accepted(rpc: Rpc) -> None:
    await _login(rpc)
    await rpc.call("conv.list", {"count": 1})
    await rpc.call("conv.list", {"count": 1000})
    keys = [{"conv_id": f"u{n}", "conv_type": 1} for n in range(100)]
    assert await rpc.call("conv.get", {"convs": keys}) == []


async def test_domain_errors_keep_their_codes(rpc: Rpc) -> None:
    error = await rpc.error("conv.list")
    assert error["code"] == 6014
    await _login(rpc)
    assert (await rpc.error("conv.delete", {"conv_id": "x", "conv_type": 1}))["code"] == 6004
    assert (await rpc.error("conv.create", {"conv_id": "", "conv_type": 1}))["code"] == 6017


# -- batches ---------------------------------------------------------------------------------


async def test_empty_batch_is_one_invalid_request(rpc: Rpc) -> None:
    reply = await rpc.raw(b"[]")
    assert isinstance(reply, dict)
    assert reply["id"] is None and reply["error"]["code"] == INVALID_REQUEST


async def test_batch_of_non_objects_gets_one_error_each(rpc: Rpc) -> None:
    one = await rpc.raw(b"[1]")
    assert isinstance(one, list) and len(one) == 1
    three = await rpc.raw(b"[1,2,3]")
    assert isinstance(three, list) and len(three) == 3
    for reply in one + three:
        assert reply["id"] is None and reply["error"]["code"] == INVALID_REQUEST


async def test_batch_with_invalid_json_is_one_parse_error(rpc: Rpc) -> None:
    reply = await rpc.raw(
        b'[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
        b'{"jsonrpc": "2.0", "method"\n]'
    )
    assert isinstance(reply, dict) and reply["error"]["code"] == PARSE


async def test_mixed_batch(rpc: Rpc) -> None:
    await _login(rpc)
    reply = await rpc.send(
        [
            _req("conv.create", {"conv_id": "bob", "conv_type": 1}, id="1"),
            _req("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": {}}),
            _req("subtract", [42, 23], id="2"),
            {"foo": "boo"},
            _req("conv.create", {"conv_id": "", "conv_type": 1}, id=3),
            _req("conv.list", {"count": 0}, id=4),
            [],
            _req("conv.get", {"convs": [{"conv_id": "bob", "conv_type": 1}]}, id=None),
            _req("conv.list", id="9"),
        ]
    )
    assert isinstance(reply, list)
    by_id = {r["id"]: r for r in reply if r["id"] is not None}
    errors_without_id = [r["error"]["code"] for r in reply if r["id"] is None]
    assert len(reply) == 7
    assert by_id["1"]["result"]["conv_id"] == "bob"
    assert by_id["2"]["error"]["code"] == NOT_FOUND
    assert by_id[3]["error"]["code"] == 6017
    assert by_id[4]["error"]["code"] == INVALID_PARAMS
    listed = by_id["9"]["result"]["conversation_list_result_conv_list"]
    assert [c["conv_id"] for c in listed] == ["bob"]
    assert errors_without_id == [INVALID_REQUEST, INVALID_REQUEST]


async def test_batch_entries_run_in_order(rpc: Rpc) -> None:
    await _login(rpc)
    batch = [
        _req("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": _text(f"v{n}")}, n)
        for n in range(20)
    ]
    batch.append(_req("conv.get", {"convs": [{"conv_id": "bob", "conv_type": 1}]}, "last"))
    reply = await rpc.send(batch)
    assert [r["id"] for r in reply] == [*range(20), "last"]
    assert [r["result"]["conv_draft_revision"] for r in reply[:-1]] == list(range(1, 21))
    (bob,) = reply[-1]["result"]
    assert bob["conv_draft"]["draft_msg"]["message_elem_array"][0]["text_elem_content"] == "v19"


async def test_batch_of_notifications_gets_no_reply_and_takes_effect(rpc: Rpc) -> None:
    await _login(rpc)
    reply = await rpc.send(
        [
            _req("conv.create", {"conv_id": "a", "conv_type": 1}),
            _req("conv.create", {"conv_id": "b", "conv_type": 2}),
            _req("no.such.method"),
        ]
    )
    assert reply is None
    page = await rpc.call("conv.list")
    assert sorted(c["conv_id"] for c in page["conversation_list_result_conv_list"]) == ["a", "b"]


async def test_batch_size_limit(rpc: Rpc) -> None:
    full = [_req("daemon.status", id=n) for n in range(MAX_BATCH_SIZE)]
    assert len(await rpc.send(full)) == MAX_BATCH_SIZE
    reply = await rpc.send([*full, _req("daemon.status", id=MAX_BATCH_SIZE)])
    assert isinstance(reply, dict)
    assert reply["id"] is None and reply["error"]["code"] == INVALID_REQUEST


# -- internal errors -------------------------------------------------------------------------


class BrokenStore:
    """The real store, except that reading the list fails like a damaged database."""

    SECRET = "disk I/O error at /secret/path/convd.db"

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def list_conversations(
        self, account_id: int, before_active_time: int | None, limit: int
    ) -> Sequence[Conversation]:
        raise OSError(self.SECRET)


async def test_internal_error_has_only_a_correlation_id(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    service = ConversationService(BrokenStore(store), EventBus())  # type: ignore[arg-type]
    rpc = Rpc(Dispatcher(_methods(service).table()))
    await _login(rpc)
    with caplog.at_level(logging.ERROR):
        reply = await rpc.raw(b'{"jsonrpc":"2.0","method":"conv.list","id":"x"}')
    assert BrokenStore.SECRET not in json.dumps(reply)
    assert reply["id"] == "x"
    error = reply["error"]
    assert error["code"] == INTERNAL and error["message"] == "Internal error"
    assert list(error["data"]) == ["correlation_id"]
    correlation_id = error["data"]["correlation_id"]
    assert isinstance(correlation_id, str) and correlation_id
    logged = [r for r in caplog.records if correlation_id in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert BrokenStore.SECRET in caplog.text and "Traceback" in caplog.text
    # The connection's other methods still work.
    assert (await rpc.call("conv.create", {"conv_id": "bob", "conv_type": 1}))["conv_id"] == "bob"


async def test_internal_error_ids_differ(store: SqliteStore) -> None:
    service = ConversationService(BrokenStore(store), EventBus())  # type: ignore[arg-type]
    rpc = Rpc(Dispatcher(_methods(service).table()))
    await _login(rpc)
    first = await rpc.error("conv.list")
    second = await rpc.error("conv.list")
    assert first["data"]["correlation_id"] != second["data"]["correlation_id"]


async def test_dispatcher_never_leaks_exception_text_of_any_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom(session: Session, params: msgspec.Raw) -> Result:
        raise RuntimeError("secret detail")

    async def fine(session: Session, params: msgspec.Raw) -> Result:
        value = msgspec.json.decode(params, type=dict[str, int])
        if set(value) != {"value"}:
            return InvalidParams("want value")
        return Success(value["value"])

    async def refuse(session: Session, params: msgspec.Raw) -> Result:
        return Error(123, "refused", {"why": "because"})

    rpc = Rpc(Dispatcher({"boom": boom, "fine": fine, "refuse": refuse}))
    with caplog.at_level(logging.ERROR):
        reply = await rpc.raw(b'{"jsonrpc":"2.0","method":"boom","id":1}')
    assert "secret detail" not in json.dumps(reply)
    assert reply["error"]["code"] == INTERNAL
    assert list(reply["error"]["data"]) == ["correlation_id"]
    assert "secret detail" in caplog.text
    assert await rpc.call("fine", {"value": 5}) == 5
    assert (await rpc.error("fine", {"other": 5}))["code"] == INVALID_PARAMS
    assert await rpc.error("refuse") == {
        "code": 123,
        "message": "refused",
        "data": {"why": "because"},
    }


def _text(text: str) -> dict[str, Any]:
    return {"draft_msg": {"message_elem_array": [{"elem_type": 0, "text_elem_content": text}]}}


def test_domain_errors_map_to_their_wire_codes() -> None:
    from convd.rpc.errors import wire_error

    expected = {
        domain.NotLoggedIn(): 6014,
        domain.InvalidParameter("x"): 6017,
        domain.InvalidUserId("x"): 7003,
        domain.InvalidGroupId("x"): 8501,
        domain.ConversationNotFound("x"): 6004,
        domain.DraftRevisionConflict(1, None): 90001,
        domain.PinLimitExceeded("x"): 90002,
        domain.SeqTooOld(1, 2, 3): 90003,
        domain.SubscriptionNotFound("x"): 90004,
    }
    for error, code in expected.items():
        assert wire_error(error)["code"] == code
        wire = wire_error(error)
        # The contract's one message per code; what varies is data.detail.
        assert wire["message"] == ERROR_TABLE[code].message
        if not isinstance(error, domain.DraftRevisionConflict):
            assert wire["data"]["detail"] == str(error)


async def test_a_change_is_converted_to_the_wire_once_for_its_event_and_its_reply(
    rpc: Rpc, monkeypatch: pytest.MonkeyPatch
) -> None:
    import convd.rpc.session as session_module

    await _login(rpc)
    await rpc.call("conv.subscribe", {})
    conversions: list[object] = []
    real = session_module.conv_info

    def counting(conversation: object) -> Any:
        conversions.append(conversation)
        return real(conversation)  # type: ignore[arg-type]

    monkeypatch.setattr(session_module, "conv_info", counting)
    reply = await rpc.call(
        "conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": _text("once")}
    )
    assert reply["conv_draft"]["draft_msg"]["message_elem_array"][0]["text_elem_content"] == "once"
    assert len(conversions) == 1  # the event's conversion, reused by the reply
    # The event went out with the same content.
    assert rpc.session.encoder.conv_info(conversions[0]).conv_id == "bob"  # type: ignore[arg-type]


# -- the hot path -----------------------------------------------------------------------------


async def test_a_change_is_encoded_once_and_each_subscription_gets_its_own_id(
    rpc: Rpc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encode once: the event's line is built once per change, whatever the number of
    subscribers, and each subscription's line carries that subscription's id."""
    import convd.rpc.session as session_module

    lines: dict[str, list[bytes]] = {"a": [], "b": []}

    async def send(data: bytes) -> None:
        pass

    def overflow(reason: str) -> None:
        raise AssertionError(reason)

    # Two connections' sessions, sharing the server's one encoder.
    sessions = {
        name: Session(name, pushed.append, send, overflow, 100, rpc.session.encoder)
        for name, pushed in lines.items()
    }
    for session in sessions.values():
        assert await rpc.dispatcher.dispatch(LOGIN_LINE, session) is not None
    for name in ("a", "a", "b"):  # a subscribes twice (ids 1 and 2), b once (id 1)
        reply = await rpc.dispatcher.dispatch(SUBSCRIBE_LINE, sessions[name])
        assert reply is not None and b'"error"' not in reply, reply
    for pushed in lines.values():
        pushed.clear()
    encoded: list[object] = []
    real = session_module._notification

    def counting(params: Any) -> bytes:
        encoded.append(params)
        return real(params)

    monkeypatch.setattr(session_module, "_notification", counting)
    await _login(rpc)
    await rpc.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": _text("once")})
    assert len(encoded) == 1
    received = {name: [json.loads(line) for line in pushed] for name, pushed in lines.items()}
    assert [n["params"]["subscription"] for n in received["a"]] == [1, 2]
    assert [n["params"]["subscription"] for n in received["b"]] == [1]
    for notes in received.values():
        for note in notes:
            assert note["method"] == "conv.event"
            assert note["params"]["conv_array"][0]["conv_id"] == "bob"


LOGIN_LINE = json.dumps(_req("session.login", {"user_id": "alice"}, id=1)).encode()
SUBSCRIBE_LINE = json.dumps(_req("conv.subscribe", {}, id=2)).encode()


def _recording_dispatcher(seen: list[object]) -> Dispatcher:
    async def record(context: Any, params: msgspec.Raw) -> Result:
        seen.append(params)
        return Success(None)

    return Dispatcher({"probe.record": record})


async def test_params_reach_the_method_as_the_raw_bytes_of_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No dict in between: the envelope is decoded once and each method decodes its params
    straight into its own type. (The any-type decoder only explains parse errors.)"""
    import convd.rpc.dispatcher as dispatcher_module

    class NotUsed:
        def decode(self, data: object) -> object:
            raise AssertionError("a valid request was decoded twice")

    monkeypatch.setattr(dispatcher_module, "_any_decoder", NotUsed())
    seen: list[object] = []
    dispatcher = _recording_dispatcher(seen)
    single = _req("probe.record", {"text": "\u8349\u7a3f"}, id=1)
    batch = [_req("probe.record", [1, 2], id=2), _req("probe.record", {}, id=3)]
    for message in (single, batch):
        assert await dispatcher.dispatch(json.dumps(message).encode(), _session()) is not None
    assert [type(params) for params in seen] == [msgspec.Raw] * 3
    assert [json.loads(bytes(params)) for params in seen] == [{"text": "\u8349\u7a3f"}, [1, 2], {}]  # type: ignore[arg-type]


async def test_every_request_goes_through_jsonrpcserver_once_without_a_task(
    rpc: Rpc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jsonrpcserver stays the dispatcher (its dispatch_request runs once per request, a
    batch's included), and a request costs no task: the whole call runs in the connection's
    own task."""
    import asyncio

    import jsonrpcserver.async_dispatcher

    real = jsonrpcserver.async_dispatcher.dispatch_request
    calls: list[str] = []

    async def counting(methods: Any, context: Any, request: Any) -> Any:
        calls.append(request.method)
        return await real(methods, context, request)

    monkeypatch.setattr(jsonrpcserver.async_dispatcher, "dispatch_request", counting)
    await _login(rpc)
    assert calls == ["session.login"]
    calls.clear()
    tasks: list[object] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()

    def counting_tasks(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        tasks.append(coro)
        if previous is not None:
            return previous(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting_tasks)  # type: ignore[arg-type]
    try:
        for n in range(20):
            await rpc.call(
                "conv.set_draft", {"conv_id": f"c{n}", "conv_type": 1, "draft": _text("x")}
            )
            await rpc.call("conv.get", {"convs": [{"conv_id": f"c{n}", "conv_type": 1}]})
    finally:
        loop.set_task_factory(previous)
    assert tasks == []
    assert calls == ["conv.set_draft", "conv.get"] * 20
    calls.clear()
    reply = await rpc.send([_req("daemon.status", id=1), _req("conv.list", {}, id=2)])
    assert len(reply) == 2 and calls == ["daemon.status", "conv.list"]
