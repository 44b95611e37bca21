"""Reconnection after the daemon restarts: fail fast while it is down, log in again,
resume the events where they stopped, or reload the list when they cannot be replayed."""

from __future__ import annotations

import json
import queue
import time
from typing import Any

import anyio
import pytest

from convd_client import (
    Client,
    ConnectionState,
    ConvEvent,
    DaemonUnavailable,
    Resync,
    TIMConvEvent,
    TIMConvType,
    tim,
)
from convd_client.v2 import (
    V2TIMCallback,
    V2TIMConversation,
    V2TIMConversationListener,
    V2TIMManager,
    V2TIMSDKConfig,
)
from support import DaemonProcess

pytestmark = pytest.mark.anyio

C2C = TIMConvType.kTIMConv_C2C


async def wait_for_state(client: Client, state: ConnectionState, timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while client.state is not state:
            await anyio.sleep(0.01)


async def wait_for(items: list[object], count: int, timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while len(items) < count:
            await anyio.sleep(0.01)


async def test_events_committed_while_away_arrive_after_reconnect(daemon: DaemonProcess) -> None:
    events: list[ConvEvent] = []
    states: list[ConnectionState] = []
    # A long backoff keeps the client away while the daemon restarts and others write, so the
    # events must come from the resume's replay.
    async with Client(daemon.socket, backoff_initial=1.0, backoff_max=1.0) as client:
        client.add_event_listener(events.append)
        client.add_state_listener(states.append)
        await client.login("alice")
        first = await client.subscribe()
        await client.conv_create("before", C2C)
        await wait_for(events, 1)  # type: ignore[arg-type]

        daemon.kill()
        await wait_for_state(client, ConnectionState.DISCONNECTED)

        # Calls while the daemon is unreachable fail at once with a clear error.
        started = time.monotonic()
        with pytest.raises(DaemonUnavailable) as unavailable:
            await client.conv_list(timeout=30)
        assert time.monotonic() - started < 0.5
        assert str(daemon.socket) in str(unavailable.value)

        daemon.start()
        with daemon.client("alice") as other:
            other.call("conv.create", {"conv_id": "while-away", "conv_type": 1})
            other.call(
                "conv.set_draft",
                {"conv_id": "while-away", "conv_type": 1, "draft": {"draft_user_define": "d"}},
            )
            other.call("conv.delete", {"conv_id": "before", "conv_type": 1})

        await client.wait_connected(timeout=10)
        await wait_for(events, 4)  # type: ignore[arg-type]
        # Logged in again: calls work without a new login.
        assert [c.conv_id for c in await client.conv_list_all()] == ["while-away"]
        await client.conv_create("after", C2C)
        await wait_for(events, 5)  # type: ignore[arg-type]

    assert [e.seq for e in events] == list(range(first.seq + 1, first.seq + 6))
    assert [(e.event, e.keys[0].conv_id) for e in events] == [
        (TIMConvEvent.kTIMConvEvent_Add, "before"),
        (TIMConvEvent.kTIMConvEvent_Add, "while-away"),
        (TIMConvEvent.kTIMConvEvent_Update, "while-away"),
        (TIMConvEvent.kTIMConvEvent_Del, "before"),
        (TIMConvEvent.kTIMConvEvent_Add, "after"),
    ]
    assert ConnectionState.DISCONNECTED in states
    assert states.count(ConnectionState.CONNECTED) >= 2


async def test_quick_reconnect_delivers_every_event_once(daemon: DaemonProcess) -> None:
    events: list[ConvEvent] = []
    states: list[ConnectionState] = []
    async with Client(daemon.socket) as client:
        client.add_event_listener(events.append)
        client.add_state_listener(states.append)
        await client.login("alice")
        await client.subscribe()
        await client.conv_create("one", C2C)
        daemon.kill()
        daemon.start()
        with daemon.client("alice") as other:
            for name in ("two", "three"):
                other.call("conv.create", {"conv_id": name, "conv_type": 1})
        # Reconnected: the loss was noticed and the session restored since.
        with anyio.fail_after(10):
            while ConnectionState.DISCONNECTED not in states or states[-1] is not (
                ConnectionState.CONNECTED
            ):
                await anyio.sleep(0.01)
        await client.conv_create("four", C2C)
        await wait_for(events, 4)  # type: ignore[arg-type]
        await anyio.sleep(0.1)
    assert [e.keys[0].conv_id for e in events] == ["one", "two", "three", "four"]
    assert len({e.seq for e in events}) == 4


async def test_unreplayable_gap_sends_the_whole_list(daemon: DaemonProcess) -> None:
    events: list[ConvEvent] = []
    resyncs: list[Resync] = []
    async with Client(daemon.socket, backoff_initial=0.5, backoff_max=0.5) as client:
        client.add_event_listener(events.append)
        client.add_resync_listener(resyncs.append)
        await client.login("alice")
        await client.subscribe()
        for name in ("a", "b", "c"):
            await client.conv_create(name, C2C)
        await wait_for(events, 3)  # type: ignore[arg-type]

        # A fresh database: the account's change sequence starts again below the client's.
        daemon.kill()
        wipe_database(daemon)
        daemon.start()
        with daemon.client("alice") as other:
            other.call("conv.create", {"conv_id": "new", "conv_type": 1})

        await wait_for(resyncs, 1)  # type: ignore[arg-type]
        assert [c.conv_id for c in resyncs[0].conversations] == ["new"]
        # Events after the reload flow as usual.
        await client.conv_create("later", C2C)
        await wait_for(events, 4)  # type: ignore[arg-type]
        assert events[3].keys[0].conv_id == "later"
        assert events[3].seq == resyncs[0].seq + 1


async def test_without_reconnect_the_client_stays_down(daemon: DaemonProcess) -> None:
    async with Client(daemon.socket, reconnect=False) as client:
        await client.login("alice")
        daemon.kill()
        await wait_for_state(client, ConnectionState.DISCONNECTED)
        daemon.start()
        await anyio.sleep(0.2)
        with pytest.raises(DaemonUnavailable):
            await client.conv_list()


def wipe_database(daemon: DaemonProcess) -> None:
    for suffix in ("", "-wal", "-shm"):
        daemon.db.with_name(daemon.db.name + suffix).unlink(missing_ok=True)


def test_faces_report_a_reload_after_an_unreplayable_gap_with_its_dels(
    daemon: DaemonProcess,
) -> None:
    config = json.dumps({"convd_socket_path": str(daemon.socket)})
    assert tim.TIMInit(0, config) == tim.TIM_SUCC
    manager = V2TIMManager.getInstance()
    assert manager.initSDK(0, V2TIMSDKConfig(socketPath=str(daemon.socket)))
    c_events: queue.Queue[tuple[int, Any]] = queue.Queue()
    v2_calls: queue.Queue[tuple[str, Any]] = queue.Queue()

    class Listener(V2TIMConversationListener):
        def onSyncServerStart(self) -> None:
            v2_calls.put(("start", None))

        def onSyncServerFinish(self) -> None:
            v2_calls.put(("finish", None))

        def onNewConversation(self, conversationList: list[V2TIMConversation]) -> None:
            v2_calls.put(("new", [c.conversationID for c in conversationList]))

        def onConversationChanged(self, conversationList: list[V2TIMConversation]) -> None:
            v2_calls.put(("changed", [c.conversationID for c in conversationList]))

        def onConversationDeleted(self, conversationIDList: list[str]) -> None:
            v2_calls.put(("deleted", sorted(conversationIDList)))

    listener = Listener()
    manager.getConversationManager().addConversationListener(listener)

    def c_callback(conv_event: int, json_conv_array: str, user_data: Any) -> None:
        if json_conv_array:
            conv_ids = [c["conv_id"] for c in json.loads(json_conv_array)]
            c_events.put((conv_event, conv_ids))
        else:
            c_events.put((conv_event, None))

    tim.TIMSetConvEventCallback(c_callback, None)
    try:
        logged_in: queue.Queue[int] = queue.Queue()
        assert tim.TIMLogin("alice", "", lambda code, *_: logged_in.put(code), None) == 0
        manager.login("alice", "", V2TIMCallback(onSuccess=lambda: logged_in.put(0)))
        assert [logged_in.get(timeout=5), logged_in.get(timeout=5)] == [0, 0]
        # Each login starts with a sync of the (empty) list.
        assert [c_events.get(timeout=5) for _ in range(2)] == [(3, None), (4, None)]
        assert [v2_calls.get(timeout=5) for _ in range(2)] == [("start", None), ("finish", None)]
        for name in ("old1", "old2", "old3"):
            assert tim.TIMConvSetDraft(name, 1, '{"draft_user_define": "x"}') == 0
            assert c_events.get(timeout=5)[0] == tim.kTIMConvEvent_Add
            assert v2_calls.get(timeout=5) == ("new", [f"c2c_{name}"])

        # The new database's sequence (1) is behind the clients' (3): they cannot resume.
        daemon.kill()
        wipe_database(daemon)
        daemon.start()
        with daemon.client("alice") as line:
            line.call("conv.create", {"conv_id": "fresh", "conv_type": 1})

        # Each face reconnects on its own schedule: "fresh" is in its reloaded list, or (if
        # the face reloaded before "fresh" was created) it follows as an ordinary Add. The
        # conversations the listeners knew and the new list lacks are reported deleted.
        gone = (tim.kTIMConvEvent_Del, ["old1", "old2", "old3"])
        c_calls = [c_events.get(timeout=10) for _ in range(4)]
        assert c_calls in (
            [(3, None), (tim.kTIMConvEvent_Update, ["fresh"]), gone, (4, None)],
            [(3, None), gone, (4, None), (tim.kTIMConvEvent_Add, ["fresh"])],
        )
        v2_gone = ("deleted", ["c2c_old1", "c2c_old2", "c2c_old3"])
        calls = [v2_calls.get(timeout=10) for _ in range(4)]
        assert calls in (
            [("start", None), ("changed", ["c2c_fresh"]), v2_gone, ("finish", None)],
            [("start", None), v2_gone, ("finish", None), ("new", ["c2c_fresh"])],
        )
    finally:
        manager.getConversationManager().removeConversationListener(listener)
        manager.unInitSDK()
        tim.TIMSetConvEventCallback(None, None)
        tim.TIMUninit()


async def test_resume_across_a_replaced_database_with_an_equal_seq(daemon: DaemonProcess) -> None:
    seen: list[str] = []
    resyncs: list[Resync] = []
    async with Client(daemon.socket, backoff_initial=1.0, backoff_max=1.0) as client:
        client.add_event_listener(lambda e: seen.append(e.keys[0].conv_id))
        client.add_resync_listener(resyncs.append)
        await client.login("alice")
        await client.subscribe()
        await client.conv_create("a", C2C)  # seq 1
        await wait_for(seen, 1)  # type: ignore[arg-type]
        daemon.kill()
        wipe_database(daemon)
        daemon.start()
        with daemon.client("alice") as line:
            line.call("conv.create", {"conv_id": "b", "conv_type": 1})  # seq 1 again
            line.call("conv.create", {"conv_id": "c", "conv_type": 1})  # seq 2
        with anyio.fail_after(10):
            while "c" not in seen and not resyncs:
                await anyio.sleep(0.01)
    # Either the client was told to reload, or it saw every change of the new history.
    assert resyncs or seen == ["a", "b", "c"]


async def test_events_held_during_a_reload_are_bounded(
    shared_daemon: DaemonProcess, user: str
) -> None:
    # Events that arrive while the list is being reloaded are held; past the event queue's
    # limit the client drops the connection and reloads again rather than hold them all.
    limit, writes = 5, 20
    events: list[ConvEvent] = []
    resyncs: list[Resync] = []
    held: list[int] = []
    async with (
        Client(shared_daemon.socket, event_queue=limit, backoff_max=0.1) as client,
        Client(shared_daemon.socket) as writer,
    ):
        await client.login(user)
        await writer.login(user)
        client.add_event_listener(events.append)
        client.add_resync_listener(resyncs.append)
        await client.subscribe()
        list_all = client._feed._list_all_on
        calls = 0

        async def paused_list_all(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                for i in range(writes):
                    await writer.conv_create(f"c{i}", C2C)
                await anyio.sleep(0.3)  # let their events arrive
                held.append(len(client._feed._hold or ()))
            return await list_all(*args)

        client._feed._list_all_on = paused_list_all  # type: ignore[method-assign]
        client._feed._need_resync = True
        client._feed._drop_connection()
        await wait_for(resyncs, 1)  # type: ignore[arg-type]
        await writer.conv_create("last", C2C)
        with anyio.fail_after(10):
            while not events or events[-1].keys[0].conv_id != "last":
                await anyio.sleep(0.01)
    assert held and held[0] <= limit
    assert calls >= 2
    assert [e.seq for e in events if e.seq > resyncs[-1].seq] == list(
        range(resyncs[-1].seq + 1, events[-1].seq + 1)
    )
