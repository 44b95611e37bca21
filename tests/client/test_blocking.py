"""The blocking wrapper: every method from plain threads, listeners on the callback thread."""

from __future__ import annotations

import inspect
import queue
import subprocess
import sys
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
    SeqTooOld,
    TIMConvEvent,
    TIMConvType,
    draft_text,
)
from convd_client.client import ConnectionState
from convd_schemas import ConvSubscribeResult
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


def test_a_blocking_client_is_opened_once(shared_daemon: DaemonProcess) -> None:
    client = BlockingClient(shared_daemon.socket)
    with client, pytest.raises(RuntimeError, match="open already"):
        client.open()
    with pytest.raises(RuntimeError, match="only once: make a new one"):
        client.open()
    unreachable = BlockingClient(shared_daemon.socket.with_name("nobody.sock"))
    with pytest.raises(DaemonUnavailable):
        unreachable.open()
    with pytest.raises(RuntimeError, match="only once"):
        unreachable.open()


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


def test_slow_listener_backpressure_drops_and_resumes(
    shared_daemon: DaemonProcess, user: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A blocked listener must not make events pile up without bound on the callback thread:
    # the client's own bounded queue fills, it drops the connection and later resumes, and
    # once the listener is unblocked every event arrives once, in order.
    from convd_client.blocking import _RELAY_WINDOW

    writes = 300
    release = threading.Event()
    seqs: list[int] = []

    def listener(event: ConvEvent) -> None:
        release.wait(30)
        seqs.append(event.seq)

    with (
        BlockingClient(shared_daemon.socket, event_queue=20, backoff_max=0.1) as client,
        BlockingClient(shared_daemon.socket) as writer,
    ):
        client.login(user)
        writer.login(user)
        writer.conv_create("bob", C2C)
        client.add_event_listener(listener)
        start = client.subscribe().seq
        for i in range(writes):
            writer.conv_set_draft("bob", C2C, f"draft {i}")
        deadline = time.monotonic() + 20
        while "events behind" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "events behind; reconnecting" in caplog.text
        # Bounded: the callback thread holds at most the relay window.
        assert client._callbacks._queue.qsize() <= _RELAY_WINDOW
        release.set()
        deadline = time.monotonic() + 20
        while len(seqs) < writes and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seqs == list(range(start + 1, start + writes + 1))


def test_remove_listener_matches_by_equality(shared_daemon: DaemonProcess, user: str) -> None:
    # A bound method is a new object on every access; the same function added twice is two
    # registrations, each removed by one remove call (as Client does it).
    class Sink:
        def __init__(self) -> None:
            self.events: list[int] = []

        def on_event(self, event: ConvEvent) -> None:
            self.events.append(event.seq)

    sink = Sink()
    twice: list[int] = []

    def on_twice(event: ConvEvent) -> None:
        twice.append(event.seq)

    done = threading.Event()
    with BlockingClient(shared_daemon.socket) as client:
        client.login(user)
        client.add_event_listener(sink.on_event)
        client.add_event_listener(on_twice)
        client.add_event_listener(on_twice)
        client.subscribe()
        client.conv_create("bob", C2C)
        client.post(done.set)
        assert done.wait(10)
        deadline = time.monotonic() + 10
        while (len(sink.events) < 1 or len(twice) < 2) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(sink.events) == 1 and len(twice) == 2

        client.remove_event_listener(sink.on_event)
        client.remove_event_listener(on_twice)
        client.conv_create("carol", C2C)
        deadline = time.monotonic() + 10
        while len(twice) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        client.remove_event_listener(on_twice)
        client.conv_create("dave", C2C)
        # A marker listener shows when "dave"'s event has been dispatched.
        seen = threading.Event()
        client.add_event_listener(lambda event: seen.set())
        client.conv_create("erin", C2C)
        assert seen.wait(10)
    assert len(sink.events) == 1
    assert len(twice) == 3


_MISSING = object()


def signature_drift(async_cls: type, blocking_cls: type) -> list[str]:
    """Every public member of ``async_cls`` that ``blocking_cls`` lacks or offers otherwise."""
    problems = []
    for name, ours in vars(async_cls).items():
        if name.startswith("_"):
            continue
        theirs = inspect.getattr_static(blocking_cls, name, _MISSING)
        if theirs is _MISSING:
            problems.append(f"{name}: missing")
        elif isinstance(ours, property):
            if not isinstance(theirs, property):
                problems.append(f"{name}: not a property")
        elif inspect.iscoroutinefunction(ours):
            if inspect.iscoroutinefunction(theirs):
                problems.append(f"{name}: a coroutine, not blocking")
            elif inspect.signature(theirs, eval_str=True) != inspect.signature(ours, eval_str=True):
                problems.append(f"{name}: {inspect.signature(theirs)} != {inspect.signature(ours)}")
        else:
            # Listener registration: same parameters, though the listeners differ (a blocking
            # client's run on its callback thread and are never coroutines).
            shape = [(p.name, p.kind) for p in inspect.signature(ours).parameters.values()]
            if [(p.name, p.kind) for p in inspect.signature(theirs).parameters.values()] != shape:
                problems.append(f"{name}: {inspect.signature(theirs)} != {inspect.signature(ours)}")
    return problems


def test_blocking_client_has_every_member_of_client_with_the_same_signature() -> None:
    assert signature_drift(Client, BlockingClient) == []


def test_a_drifted_signature_is_reported() -> None:
    class Drifted(BlockingClient):
        def subscribe(  # type: ignore[override]
            self, since_seq: int | None = None, *, timeout: float | None = None
        ) -> ConvSubscribeResult:
            raise NotImplementedError

    (problem,) = signature_drift(Client, Drifted)
    assert problem.startswith("subscribe: ")
    assert "history" in problem
    no_origin = type("NoOrigin", (BlockingClient,), {"origin": None})
    assert signature_drift(Client, no_origin) == ["origin: not a property"]


def test_subscribe_with_history_and_the_subscription_state(
    shared_daemon: DaemonProcess, user: str
) -> None:
    with BlockingClient(shared_daemon.socket) as client, BlockingClient(shared_daemon.socket) as w:
        client.login(user)
        w.login(user)
        assert not client.subscribed
        assert client.origin is None
        first = client.subscribe()
        assert client.subscribed
        assert client.origin == first.origin
        w.conv_create("bob", C2C)
        client.unsubscribe()
        assert not client.subscribed
        received: queue.Queue[ConvEvent] = queue.Queue()
        client.add_event_listener(received.put)
        # Resume after `first` with its history: the change made meanwhile is replayed.
        client.subscribe(first.seq, history=first.history)
        event = received.get(timeout=5)
        assert (event.seq, event.keys[0].conv_id) == (first.seq + 1, "bob")
        # Another history: the seqs name other changes, so the resume is refused.
        client.unsubscribe()
        with pytest.raises(SeqTooOld):
            client.subscribe(first.seq, history="not-" + first.history)


def test_closing_fails_the_calls_in_flight_and_refuses_later_ones(short_dir: Path) -> None:
    """A call blocked on another thread when the client closes fails with ClientClosed, the
    close does not wait for it to time out, and a call after the close fails at once."""
    client = BlockingClient(short_dir / "nobody.sock", require_connection=False).open()
    outcome: queue.Queue[BaseException | None] = queue.Queue()

    def wait() -> None:
        try:
            client.wait_connected(timeout=60)  # nobody serves: blocks until the close
        except BaseException as exc:
            outcome.put(exc)
        else:
            outcome.put(None)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)  # the call is in flight
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 5
    assert isinstance(outcome.get(timeout=5), ClientClosed)
    waiter.join(5)
    with pytest.raises(ClientClosed):
        client.conv_list()


def test_a_blocking_call_from_the_clients_own_loop_is_refused(
    shared_daemon: DaemonProcess,
) -> None:
    """Blocking the loop the call needs would hang it: refused instead."""
    with BlockingClient(shared_daemon.socket) as client:

        async def call_back(_: Client) -> None:
            client.daemon_status()

        with pytest.raises(RuntimeError, match="its own event loop"):
            client.submit(call_back).result(timeout=5)
        assert client.daemon_status().conversations >= 0  # the client still works


def _run_client_script(script: str, socket_path: Path) -> str:
    """Run ``script`` in a Python process of its own with ``socket_path`` as ``sys.argv[1]``
    (for scripts that signal their own process); assert that it exits 0; its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", script, str(socket_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


_CLOSE_IN_A_SIGNAL_HANDLER = """
import os, signal, sys, threading, time
from convd_client import BlockingClient, ClientClosed

client = BlockingClient(sys.argv[1], require_connection=False).open()
took = []

def handler(signum, frame):
    started = time.monotonic()
    client.close()
    took.append(time.monotonic() - started)

signal.signal(signal.SIGTERM, handler)
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
try:
    client.wait_connected(timeout=60)
except ClientClosed:
    print("closed in %.2f s" % took[0])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to oneself")
def test_closing_in_a_signal_handler_while_the_same_thread_waits_in_a_call(
    short_dir: Path,
) -> None:
    """close() from a signal handler, which interrupts the main thread's own call: closing
    waits for the calls' tasks, not for the threads that made them (that one resumes only
    after close() returns), so it is prompt."""
    output = _run_client_script(_CLOSE_IN_A_SIGNAL_HANDLER, short_dir / "nobody.sock")
    took = float(output.split()[2])
    assert took < 2, output


_INTERRUPT_A_CALL = """
import asyncio, os, signal, sys, threading, time
from convd_client import BlockingClient

client = BlockingClient(sys.argv[1], require_connection=False).open()


def interrupt_the_call():
    # Only once the call is in flight: earlier, SIGINT would interrupt something else.
    while not client._calls:
        time.sleep(0.01)
    time.sleep(0.2)  # by now the caller waits for the call's result
    os.kill(os.getpid(), signal.SIGINT)


async def calls_running():
    return sum(1 for task in asyncio.all_tasks() if task.get_coro().__qualname__ == "_awaited")


def running():
    return asyncio.run_coroutine_threadsafe(calls_running(), client._loop).result(5)


threading.Thread(target=interrupt_the_call, daemon=True).start()
try:
    client.wait_connected(timeout=60)
except KeyboardInterrupt:
    print("interrupted")
# The abandoned call's task ends on the loop, instead of waiting out its 60 s there.
deadline = time.monotonic() + 5
while running() and time.monotonic() < deadline:
    time.sleep(0.01)
print("running", running())
try:
    client.wait_connected(timeout=0.1)  # the client still answers
except TimeoutError:
    print("still usable")
client.close()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to oneself")
def test_a_call_interrupted_by_ctrl_c_is_abandoned_on_the_loop_too(short_dir: Path) -> None:
    """Ctrl-C in a blocking call raises KeyboardInterrupt in the caller and cancels the call's
    task, so it does not run on in the background; the client stays usable."""
    output = _run_client_script(_INTERRUPT_A_CALL, short_dir / "nobody.sock")
    assert output.split("\n")[:3] == ["interrupted", "running 0", "still usable"]
