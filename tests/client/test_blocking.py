"""The blocking wrapper: every method from plain threads, listeners on the callback thread."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from convd_client import (
    BlockingClient,
    Client,
    ClientClosed,
    ConvEvent,
    DaemonUnavailable,
    RevisionConflict,
    TIMConvEvent,
    TIMConvType,
    draft_text,
)
from convd_client.client import ConnectionState
from support import DaemonProcess

C2C = TIMConvType.kTIMConv_C2C


def test_every_method(shared_daemon: DaemonProcess, user: str, short_dir: Path) -> None:
    with BlockingClient(shared_daemon.socket) as client:
        assert client.connected
        assert client.socket_path == shared_daemon.socket
        assert client.login(user).user_id == user
        assert client.user_id == user
        assert client.conv_create("bob", C2C).conv_id == "bob"
        info = client.conv_set_draft("bob", C2C, "hello")
        assert draft_text(info.conv_draft or None) == "hello"  # type: ignore[arg-type]
        with pytest.raises(RevisionConflict):
            client.conv_set_draft("bob", C2C, "x", if_revision=0)
        assert not client.conv_cancel_draft("bob", C2C, if_revision=1).conv_is_has_draft
        client.conv_pin("bob", C2C)
        assert client.conv_get([("bob", 1)])[0].conv_is_pinned
        assert [c.conv_id for c in client.conv_list().conversation_list_result_conv_list] == ["bob"]
        assert [c.conv_id for c in client.conv_list_all()] == ["bob"]
        client.conv_delete("bob", C2C)
        assert client.conv_get([("bob", 1)]) == []
        assert client.daemon_status().conversations >= 0
        assert "methods" in client.discover()
        assert client.call("conv.list")["conversation_list_result_is_finished"]
        assert client.daemon_backup(short_dir / "b.db").size_bytes > 0
        result = client.subscribe()
        assert result.subscription > 0
        client.unsubscribe()
        client.wait_connected(timeout=1)
        assert client.state is ConnectionState.CONNECTED
        client.logout()
    with pytest.raises(ClientClosed):
        client.daemon_status()


def test_listeners_run_on_the_callback_thread(shared_daemon: DaemonProcess, user: str) -> None:
    received: queue.Queue[tuple[ConvEvent, int]] = queue.Queue()

    def listener(event: ConvEvent) -> None:
        received.put((event, threading.get_ident()))

    with BlockingClient(shared_daemon.socket) as client:
        client.add_event_listener(listener)
        client.login(user)
        client.subscribe()
        client.conv_create("a", C2C)
        client.conv_create("b", C2C)
        first, thread_a = received.get(timeout=5)
        second, thread_b = received.get(timeout=5)
        assert [first.keys[0].conv_id, second.keys[0].conv_id] == ["a", "b"]
        assert first.event is TIMConvEvent.kTIMConvEvent_Add
        assert thread_a == thread_b == client.callback_thread_id
        assert thread_a != threading.get_ident()
        client.remove_event_listener(listener)
        client.conv_create("c", C2C)
        time.sleep(0.1)
        assert received.empty()


def test_a_listener_may_call_the_client(shared_daemon: DaemonProcess, user: str) -> None:
    done: queue.Queue[str] = queue.Queue()

    with BlockingClient(shared_daemon.socket) as client:

        def listener(event: ConvEvent) -> None:
            if event.event is TIMConvEvent.kTIMConvEvent_Add:
                info = client.conv_set_draft(event.keys[0].conv_id, C2C, "from the listener")
                done.put(draft_text(info.conv_draft or None) or "")  # type: ignore[arg-type]

        client.add_event_listener(listener)
        client.login(user)
        client.subscribe()
        client.conv_create("a", C2C)
        assert done.get(timeout=5) == "from the listener"


def test_submit_runs_without_blocking(shared_daemon: DaemonProcess, user: str) -> None:
    with BlockingClient(shared_daemon.socket) as client:
        client.login(user)

        async def create_two(async_client: Client) -> list[str]:
            a = await async_client.conv_create("x", C2C)
            b = await async_client.conv_create("y", C2C)
            return [a.conv_id, b.conv_id]

        assert client.submit(create_two).result(timeout=5) == ["x", "y"]


def test_unreachable_daemon(short_dir: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DaemonUnavailable):
        BlockingClient(short_dir / "nobody.sock").open()
    with (
        BlockingClient(short_dir / "nobody.sock", require_connection=False) as client,
        pytest.raises(DaemonUnavailable),
    ):
        client.conv_list()
    assert time.monotonic() - started < 3


def test_state_listener(shared_daemon: DaemonProcess) -> None:
    states: queue.Queue[ConnectionState] = queue.Queue()
    client = BlockingClient(shared_daemon.socket)
    client.add_state_listener(states.put)
    with client:
        client.wait_connected(timeout=5)
    seen = []
    while not states.empty():
        seen.append(states.get())
    assert ConnectionState.CONNECTED in seen
