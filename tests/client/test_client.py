"""The async Client against the real daemon: every method, events, errors."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from convd_client import (
    BlockingClient,
    Client,
    ClientClosed,
    ConnectionState,
    ConversationNotFound,
    ConvEvent,
    ConvKey,
    DaemonUnavailable,
    Draft,
    DraftMessage,
    InvalidIdentifier,
    InvalidParameters,
    MessageElem,
    NotLoggedIn,
    PinLimitExceeded,
    RequestTimeout,
    RevisionConflict,
    SeqTooOld,
    TIMConvEvent,
    TIMConvType,
    _rpc,
    connect,
    draft_text,
    text_draft,
)
from convd_schemas import METHODS
from support import DaemonProcess
from support import text_draft as wire_draft

pytestmark = pytest.mark.anyio

C2C = TIMConvType.kTIMConv_C2C
GROUP = TIMConvType.kTIMConv_Group


@pytest.fixture
async def client(shared_daemon: DaemonProcess, user: str) -> AsyncIterator[Client]:
    async with Client(shared_daemon.socket) as client:
        await client.login(user)
        yield client


async def wait_for(events: list[ConvEvent], count: int, timeout: float = 5) -> None:
    with anyio.fail_after(timeout):
        while len(events) < count:
            await anyio.sleep(0.01)


# -- connecting --------------------------------------------------------------------------------


async def test_connects_to_the_socket_named_by_convd_socket(
    shared_daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVD_SOCKET", str(shared_daemon.socket))
    async with connect() as client:
        assert client.socket_path == shared_daemon.socket
        assert (
            client.state is ConnectionState.CONNECTED or client.state is ConnectionState.RESTORING
        )
        status = await client.daemon_status()
        assert status.socket_path == str(shared_daemon.socket)
        assert client.connected


async def test_unreachable_daemon_fails_at_once_with_the_socket_path(short_dir: Path) -> None:
    missing = short_dir / "nobody.sock"
    started = time.monotonic()
    with pytest.raises(DaemonUnavailable) as unavailable:
        async with Client(missing):
            pass
    assert time.monotonic() - started < 1
    assert unavailable.value.socket_path == missing
    assert str(missing) in str(unavailable.value)
    assert unavailable.value.CODE == 6022


async def test_without_require_connection_calls_fail_fast_while_unreachable(
    short_dir: Path,
) -> None:
    async with Client(short_dir / "nobody.sock", require_connection=False) as client:
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(DaemonUnavailable):
                await client.conv_list(timeout=30)
            assert time.monotonic() - started < 1
        assert client.state in (ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)
        with pytest.raises(TimeoutError):
            await client.wait_connected(timeout=0.1)
        # Logging out never needs the daemon.
        await client.logout()


@pytest.mark.parametrize("option", ["timeout", "connect_timeout"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0])
def test_a_timeout_must_be_a_finite_number_of_seconds_above_0(
    short_dir: Path, option: str, value: float
) -> None:
    # A NaN timeout failed every call later (anyio: "deadline must not be NaN").
    with pytest.raises(ValueError, match=f"{option} must be a finite number of seconds above 0"):
        Client(short_dir / "convd.sock", **{option: value})
    with pytest.raises(ValueError, match=option):
        BlockingClient(short_dir / "convd.sock", **{option: value})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0])
async def test_a_calls_own_timeout_must_be_a_finite_number_of_seconds_above_0(
    shared_daemon: DaemonProcess, value: float
) -> None:
    async with Client(shared_daemon.socket) as client:
        with pytest.raises(ValueError, match="timeout must be a finite number of seconds"):
            await client.daemon_status(timeout=value)
        await client.daemon_status(timeout=5)  # the client goes on


async def test_calls_after_close_raise_client_closed(shared_daemon: DaemonProcess) -> None:
    async with Client(shared_daemon.socket) as client:
        pass
    assert client.state is ConnectionState.CLOSED
    with pytest.raises(ClientClosed):
        await client.daemon_status()


async def test_an_error_in_the_body_propagates_unwrapped(shared_daemon: DaemonProcess) -> None:
    with pytest.raises(KeyError):
        async with Client(shared_daemon.socket):
            raise KeyError("mine")


# -- session -----------------------------------------------------------------------------------


async def test_login_and_logout(shared_daemon: DaemonProcess, user: str) -> None:
    async with Client(shared_daemon.socket) as client:
        with pytest.raises(NotLoggedIn) as not_logged_in:
            await client.conv_list()
        assert not_logged_in.value.code == 6014
        result = await client.login(user, 1400000001)
        assert (result.user_id, result.sdk_app_id) == (user, 1400000001)
        assert client.user_id == user
        await client.conv_create("peer", C2C)
        await client.logout()
        assert client.user_id is None
        with pytest.raises(NotLoggedIn):
            await client.conv_list()


async def test_login_with_an_invalid_user_id(shared_daemon: DaemonProcess) -> None:
    async with Client(shared_daemon.socket) as client:
        with pytest.raises(InvalidIdentifier) as invalid:
            await client.login("x" * 33)
        assert invalid.value.code == 7003
        assert client.user_id is None


# -- conversations -----------------------------------------------------------------------------


async def test_create_get_and_delete(client: Client) -> None:
    created = await client.conv_create("bob", C2C)
    assert (created.conv_id, created.conv_type) == ("bob", C2C)
    assert not created.conv_is_has_draft
    assert created.conv_draft_revision == 0
    again = await client.conv_create("bob", C2C)
    assert again == created
    group = await client.conv_create("team", GROUP)
    found = await client.conv_get([("team", 2), ConvKey(conv_id="bob", conv_type=C2C), ("x", 1)])
    assert found == [group, created]
    await client.conv_delete("bob", C2C)
    assert await client.conv_get([("bob", 1)]) == []
    with pytest.raises(ConversationNotFound) as not_found:
        await client.conv_delete("bob", C2C)
    assert not_found.value.code == 6004


async def test_conv_get_splits_large_requests(client: Client) -> None:
    for index in range(3):
        await client.conv_create(f"p{index}", C2C)
    keys = [(f"p{index}", 1) for index in range(150)]
    found = await client.conv_get(keys)
    assert [c.conv_id for c in found] == ["p0", "p1", "p2"]


async def test_list_pages_and_list_all(client: Client) -> None:
    for index in range(7):
        await client.conv_create(f"peer{index}", C2C)
    await client.conv_pin("peer2", C2C)
    first = await client.conv_list(0, 3)
    assert not first.conversation_list_result_is_finished
    ids = [c.conv_id for c in first.conversation_list_result_conv_list]
    assert ids == ["peer2", "peer6", "peer5"]  # pinned first, then newest
    every = await client.conv_list_all(page_size=2)
    assert [c.conv_id for c in every] == [
        "peer2",
        "peer6",
        "peer5",
        "peer4",
        "peer3",
        "peer1",
        "peer0",
    ]


def change_between_pages(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[int], None]
) -> list[int]:
    """Run ``change(n)`` (another client's write) right after the n-th ``conv.list`` answer
    (1, 2, ...); returns the list of n so far."""
    real = _rpc.call_on
    answered: list[int] = []

    async def call_on(conn: Any, rpc: Any, params: Any, timeout: float) -> Any:
        result = await real(conn, rpc, params, timeout)
        if rpc is _rpc.CONV_LIST:
            answered.append(len(answered) + 1)
            change(answered[-1])
        return result

    monkeypatch.setattr(_rpc, "call_on", call_on)
    return answered


async def create_in_order(client: Client, count: int) -> None:
    for index in range(count):  # c0 oldest, the last newest
        await client.conv_create(f"c{index}", C2C)


async def test_list_all_lists_a_conversation_activated_above_the_pages_read(
    client: Client, shared_daemon: DaemonProcess, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_in_order(client, 6)

    def other_client_types(n: int) -> None:
        if n == 1:  # after the first page: c0, not read yet, moves to the top
            with shared_daemon.client(user) as line:
                line.call(
                    "conv.set_draft", {"conv_id": "c0", "conv_type": 1, "draft": wire_draft("hi")}
                )

    change_between_pages(monkeypatch, other_client_types)
    every = await client.conv_list_all(page_size=2)
    assert [c.conv_id for c in every] == ["c0", "c5", "c4", "c3", "c2", "c1"]
    assert every[0].conv_is_has_draft


async def test_list_all_lists_a_conversation_pinned_meanwhile_and_the_latest_copy(
    client: Client, shared_daemon: DaemonProcess, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_in_order(client, 6)
    await client.conv_pin("c5", C2C)

    def other_client_pins(n: int) -> None:
        if n == 1:  # after [c5 (pinned), c4]: c0 joins the pinned, c5 leaves them
            with shared_daemon.client(user) as line:
                line.call("conv.pin", {"conv_id": "c0", "conv_type": 1, "is_pinned": True})
                line.call("conv.pin", {"conv_id": "c5", "conv_type": 1, "is_pinned": False})

    change_between_pages(monkeypatch, other_client_pins)
    every = await client.conv_list_all(page_size=2)
    assert [(c.conv_id, c.conv_is_pinned) for c in every] == [
        ("c0", True),
        ("c5", False),  # read pinned first, then its later copy
        ("c4", False),
        ("c3", False),
        ("c2", False),
        ("c1", False),
    ]
    assert every == await client.conv_list_all()


async def test_list_all_ends_while_another_client_keeps_activating(
    client: Client, shared_daemon: DaemonProcess, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_in_order(client, 6)
    with shared_daemon.client(user) as line:

        def activate_one_after_every_page(n: int) -> None:
            key = {"conv_id": f"c{n % 6}", "conv_type": 1}
            line.call("conv.set_draft", {**key, "draft": wire_draft(f"typing {n}")})

        answered = change_between_pages(monkeypatch, activate_one_after_every_page)
        every = await client.conv_list_all(page_size=2)
    assert sorted(c.conv_id for c in every) == ["c0", "c1", "c2", "c3", "c4", "c5"]
    assert len(answered) < 30  # the re-reads are bounded


async def test_invalid_identifiers_and_params(client: Client) -> None:
    with pytest.raises(InvalidIdentifier):
        await client.conv_create("é", C2C)
    with pytest.raises(InvalidIdentifier) as group:
        await client.conv_create("g" * 49, GROUP)
    assert group.value.code == 8501
    with pytest.raises(InvalidParameters):
        await client.conv_create("", C2C)
    with pytest.raises(InvalidParameters) as bad_page:
        await client.conv_list(count=0)
    assert bad_page.value.code == -32602


# -- drafts ------------------------------------------------------------------------------------


async def test_set_and_cancel_draft(client: Client) -> None:
    info = await client.conv_set_draft("bob", C2C, "hello")  # creates the conversation
    assert info.conv_is_has_draft
    assert draft_text(info.conv_draft or None) == "hello"  # type: ignore[arg-type]
    assert info.conv_draft_revision == 1
    draft = Draft(
        draft_msg=DraftMessage(
            message_elem_array=[
                MessageElem(elem_type=0, text_elem_content="a"),
                MessageElem(elem_type=0, text_elem_content="b"),
            ]
        ),
        draft_user_define="meta",
        draft_edit_time=1551271429,
    )
    info = await client.conv_set_draft("bob", C2C, draft)
    assert info.conv_draft == draft
    assert info.conv_draft_revision == 2
    cleared = await client.conv_cancel_draft("bob", C2C)
    assert not cleared.conv_is_has_draft
    assert cleared.conv_draft_revision == 3
    with pytest.raises(ConversationNotFound):
        await client.conv_cancel_draft("nobody", C2C)
    with pytest.raises(InvalidParameters):
        await client.conv_set_draft(
            "bob", C2C, Draft(draft_msg=DraftMessage(message_elem_array=[MessageElem(elem_type=1)]))
        )


async def test_text_draft_is_stored_as_v2_stores_it(client: Client) -> None:
    info = await client.conv_set_draft("bob", C2C, text_draft("hi there"))
    assert info.conv_draft is not None
    draft = info.conv_draft
    assert isinstance(draft, Draft)
    assert [e.text_elem_content for e in draft.draft_msg.message_elem_array] == ["hi there"]
    assert draft.draft_user_define == "hi there"


async def test_conflict_safe_draft_writes(client: Client) -> None:
    first = await client.conv_set_draft("bob", C2C, "one", if_revision=0)
    assert first.conv_draft_revision == 1
    second = await client.conv_set_draft("bob", C2C, "two", if_revision=1)
    assert second.conv_draft_revision == 2
    with pytest.raises(RevisionConflict) as conflict:
        await client.conv_set_draft("bob", C2C, "stale", if_revision=1)
    assert conflict.value.code == 90001
    assert conflict.value.current is not None
    assert conflict.value.current_revision == 2
    assert draft_text(conflict.value.current.conv_draft or None) == "two"  # type: ignore[arg-type]
    with pytest.raises(RevisionConflict):
        await client.conv_cancel_draft("bob", C2C, if_revision=1)
    cleared = await client.conv_cancel_draft("bob", C2C, if_revision=2)
    assert cleared.conv_draft_revision == 3
    with pytest.raises(RevisionConflict) as gone:
        await client.conv_set_draft("ghost", C2C, "x", if_revision=5)
    assert gone.value.current is None
    assert gone.value.current_revision == 0


# -- pin ---------------------------------------------------------------------------------------


async def test_pin_and_the_pin_limit(client: Client) -> None:
    await client.conv_create("bob", C2C)
    await client.conv_pin("bob", C2C)
    assert (await client.conv_get([("bob", 1)]))[0].conv_is_pinned
    await client.conv_pin("bob", C2C, False)
    assert not (await client.conv_get([("bob", 1)]))[0].conv_is_pinned
    with pytest.raises(ConversationNotFound):
        await client.conv_pin("nobody", C2C)
    async with anyio.create_task_group() as tg:
        for index in range(50):
            tg.start_soon(client.conv_create, f"p{index}", C2C)
    async with anyio.create_task_group() as tg:
        for index in range(50):
            tg.start_soon(client.conv_pin, f"p{index}", C2C)
    with pytest.raises(PinLimitExceeded) as limit:
        await client.conv_pin("bob", C2C)
    assert limit.value.code == 90002


# -- events ------------------------------------------------------------------------------------


async def test_events_for_own_and_other_changes(
    shared_daemon: DaemonProcess, client: Client, user: str
) -> None:
    events: list[ConvEvent] = []
    client.add_event_listener(events.append)
    subscribed = await client.subscribe()
    assert client.subscribed
    assert subscribed.origin == client.origin
    assert (await client.subscribe()).subscription == subscribed.subscription  # idempotent

    await client.conv_create("bob", C2C)
    with shared_daemon.client(user) as other:
        other.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": {}})
        other.call(
            "conv.set_draft",
            {"conv_id": "bob", "conv_type": 1, "draft": {"draft_user_define": "x"}},
        )
        other.call("conv.delete", {"conv_id": "bob", "conv_type": 1})
    await wait_for(events, 3)
    add, update, delete = events
    assert [e.event for e in events] == [
        TIMConvEvent.kTIMConvEvent_Add,
        TIMConvEvent.kTIMConvEvent_Update,
        TIMConvEvent.kTIMConvEvent_Del,
    ]
    assert [e.seq for e in events] == [subscribed.seq + 1, subscribed.seq + 2, subscribed.seq + 3]
    assert add.origin == client.origin
    assert update.origin != client.origin
    assert add.conversations[0].conv_id == "bob"
    assert update.conversations[0].conv_draft_revision == 1
    assert delete.conversations == ()
    assert delete.keys == (ConvKey(conv_id="bob", conv_type=C2C),)
    assert delete.conv_array == [{"conv_id": "bob", "conv_type": 1}]
    assert client.last_seq == delete.seq


async def test_async_listeners_and_a_failing_listener(client: Client) -> None:
    seen: list[int] = []

    async def slow(event: ConvEvent) -> None:
        await anyio.sleep(0.01)
        seen.append(event.seq)

    def broken(event: ConvEvent) -> None:
        raise RuntimeError("a listener bug")

    client.add_event_listener(broken)
    client.add_event_listener(slow)
    await client.subscribe()
    await client.conv_create("a", C2C)
    await client.conv_create("b", C2C)
    with anyio.fail_after(5):
        while len(seen) < 2:
            await anyio.sleep(0.01)
    client.remove_event_listener(slow)
    await client.conv_create("c", C2C)
    await anyio.sleep(0.1)
    assert len(seen) == 2


async def test_subscribe_since_replays_missed_changes(client: Client) -> None:
    events: list[ConvEvent] = []
    client.add_event_listener(events.append)
    start = (await client.subscribe()).seq
    await client.unsubscribe()
    assert not client.subscribed
    await client.conv_create("a", C2C)
    await client.conv_create("b", C2C)
    await anyio.sleep(0.1)
    assert events == []  # unsubscribed
    await client.subscribe(since_seq=start)
    await wait_for(events, 2)
    assert [e.conversations[0].conv_id for e in events] == ["a", "b"]
    with pytest.raises(SeqTooOld):
        await client.subscribe(since_seq=start + 1000)


async def test_login_as_another_user_moves_the_subscription(
    client: Client, other_user: str
) -> None:
    events: list[ConvEvent] = []
    client.add_event_listener(events.append)
    await client.subscribe()
    await client.login(other_user)
    await client.conv_create("for-the-other-user", C2C)
    await wait_for(events, 1)
    assert events[0].conversations[0].conv_id == "for-the-other-user"


async def test_state_listener_sees_the_connection(shared_daemon: DaemonProcess) -> None:
    states: list[ConnectionState] = []
    client = Client(shared_daemon.socket)
    client.add_state_listener(states.append)
    async with client:
        await client.wait_connected(timeout=5)
        await anyio.sleep(0.05)
    assert ConnectionState.CONNECTED in states


# -- daemon ------------------------------------------------------------------------------------


async def test_status_discover_and_raw_calls(client: Client, shared_daemon: DaemonProcess) -> None:
    status = await client.daemon_status()
    assert status.pid == shared_daemon.process.pid  # type: ignore[union-attr]
    document = await client.discover()
    assert {m["name"] for m in document["methods"]} >= {"conv.list", "conv.set_draft"}
    raw = await client.call("conv.create", {"conv_id": "raw", "conv_type": 1})
    assert raw["conv_id"] == "raw"
    with pytest.raises(InvalidParameters):
        await client.call("conv.create", {"conv_id": "raw", "conv_type": 1, "typo": 1})


async def test_daemon_backup(client: Client, short_dir: Path) -> None:
    await client.conv_create("saved", C2C)
    target = short_dir / "backup.db"
    result = await client.daemon_backup(target)
    assert result.path == str(target)
    assert result.size_bytes > 0
    assert target.exists()


async def test_concurrent_calls(client: Client) -> None:
    results: dict[int, str] = {}

    async def create(index: int) -> None:
        results[index] = (await client.conv_create(f"c{index}", C2C)).conv_id

    async with anyio.create_task_group() as tg:
        for index in range(100):
            tg.start_soon(create, index)
    assert results == {index: f"c{index}" for index in range(100)}


# -- contract coverage -------------------------------------------------------------------------

COROUTINES = {
    "session.login": "login",
    "session.logout": "logout",
    "conv.create": "conv_create",
    "conv.delete": "conv_delete",
    "conv.list": "conv_list",
    "conv.get": "conv_get",
    "conv.set_draft": "conv_set_draft",
    "conv.cancel_draft": "conv_cancel_draft",
    "conv.pin": "conv_pin",
    "conv.delete_many": "conv_delete_many",
    "conv.set_custom_data": "conv_set_custom_data",
    "conv.draft_history": "conv_draft_history",
    "conv.restore_draft": "conv_restore_draft",
    "conv.mark": "conv_mark",
    "conv.list_by_filter": "conv_list_by_filter",
    "conv.group_create": "conv_group_create",
    "conv.group_list": "conv_group_list",
    "conv.group_delete": "conv_group_delete",
    "conv.group_rename": "conv_group_rename",
    "conv.group_add": "conv_group_add",
    "conv.group_remove": "conv_group_remove",
    "conv.subscribe": "subscribe",
    "conv.unsubscribe": "unsubscribe",
    "daemon.status": "daemon_status",
    "daemon.backup": "daemon_backup",
    "rpc.discover": "discover",
}


def test_every_method_of_the_contract_has_a_typed_coroutine() -> None:
    assert {spec.name for spec in METHODS} == set(COROUTINES)
    for name in COROUTINES.values():
        assert inspect.iscoroutinefunction(getattr(Client, name)), name
        assert callable(getattr(BlockingClient, name)), name
        assert getattr(Client, name).__doc__, name


async def test_a_call_that_gets_no_answer_times_out(short_dir: Path) -> None:
    path = short_dir / "silent.sock"
    listener = await anyio.create_unix_listener(path)

    async def never_answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            async for _ in stream:
                pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, never_answer)
        async with Client(path, timeout=0.1) as client:
            started = time.monotonic()
            with pytest.raises(RequestTimeout) as timed_out:
                await client.daemon_status()
            assert timed_out.value.method == "daemon.status"
            with pytest.raises(RequestTimeout):
                await client.conv_list(timeout=0.05)
            assert time.monotonic() - started < 2
        tg.cancel_scope.cancel()


async def test_concurrent_subscribes_make_one_subscription(
    shared_daemon: DaemonProcess, user: str
) -> None:
    async with Client(shared_daemon.socket) as client:
        await client.login(user)
        methods: list[str] = []
        call_on = client._feed._call_on

        async def counting(conn: object, rpc: Any, *args: object) -> object:
            methods.append(rpc.name)
            return await call_on(conn, rpc, *args)  # type: ignore[arg-type]

        client._feed._call_on = counting  # type: ignore[method-assign,assignment]
        results = []

        async def subscribe() -> None:
            results.append(await client.subscribe())

        async with anyio.create_task_group() as tg:
            tg.start_soon(subscribe)
            tg.start_soon(subscribe)
        assert methods.count("conv.subscribe") == 1
        assert results[0].subscription == results[1].subscription


async def test_events_of_another_subscription_are_ignored(
    shared_daemon: DaemonProcess, user: str
) -> None:
    import msgspec

    events: list[ConvEvent] = []
    async with Client(shared_daemon.socket) as client:
        await client.login(user)
        client.add_event_listener(events.append)
        subscription = (await client.subscribe()).subscription
        stale = {
            "subscription": subscription + 1000,
            "seq": 10_000,
            "event": int(TIMConvEvent.kTIMConvEvent_Del),
            "conv_array": [{"conv_id": "ghost", "conv_type": 1}],
            "origin": "elsewhere",
        }
        client._feed.on_notification("conv.event", msgspec.Raw(msgspec.json.encode(stale)))
        await client.conv_create("bob", C2C)
        with anyio.fail_after(10):
            while not events:
                await anyio.sleep(0.01)
        await anyio.sleep(0.05)
    assert [e.keys[0].conv_id for e in events] == ["bob"]
