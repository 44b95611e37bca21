"""Reconnect, resume and resync over in-memory streams, against the daemon's real rpc stack.

The daemon side is the real one (a SqliteStore on tmp_path, ConversationService, Methods,
Dispatcher and Connection over a StreamChannel) running in this process; the client reaches
it through its ``connector``, which hands out one in-memory byte stream pair per connection.
The test can cut a client's connection and refuse its reconnects, which a real daemon
process only does by being killed. (The real-daemon versions are in test_reconnect.py.)
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from anyio.abc import ByteStream, TaskGroup

import convd.rpc.handlers as handlers_module
from convd.domain import ConversationService, EventBus
from convd.rpc import ConvListing
from convd.rpc.dispatcher import Dispatcher
from convd.rpc.handlers import Methods
from convd.store import open_store
from convd_client import (
    Client,
    ConnectionState,
    ConvdError,
    ConvEvent,
    DaemonUnavailable,
    Resync,
    TIMConvEvent,
    TIMConvType,
)
from convd_client._rpc import list_all_on
from convd_schemas import ConvdErrCode, ConvEventUpdate
from convd_schemas.openrpc import build_openrpc
from support import (
    MemoryByteStream,
    fixed_status,
    memory_byte_stream_pair,
    run_stream_connection,
    stream_connection,
)

pytestmark = pytest.mark.anyio

C2C = TIMConvType.kTIMConv_C2C
ADD = TIMConvEvent.kTIMConvEvent_Add
DEL = TIMConvEvent.kTIMConvEvent_Del
UPDATE = TIMConvEvent.kTIMConvEvent_Update
START = TIMConvEvent.kTIMConvEvent_Start
FINISH = TIMConvEvent.kTIMConvEvent_Finish


class InProcessDaemon:
    """Serves every connection a client opens with the daemon's own Connection, in-process."""

    def __init__(self, dispatcher: Dispatcher, tg: TaskGroup, service: ConversationService) -> None:
        self._dispatcher = dispatcher
        self._tg = tg
        #: The daemon's service (tests may wrap its methods).
        self.service = service
        self._origins = itertools.count(1)
        #: Clients (by name) whose connection attempts are refused.
        self.refused: set[str] = set()
        #: Connection attempts per client, refused ones included.
        self.attempts: dict[str, int] = {}
        #: Connections served per client.
        self.served: dict[str, int] = {}
        self._live: dict[str, list[tuple[anyio.CancelScope, MemoryByteStream]]] = {}

    def connector(self, name: str) -> Callable[[], Awaitable[ByteStream]]:
        """What ``Client(connector=...)`` calls to reach this daemon, as client ``name``."""

        async def connect() -> ByteStream:
            self.attempts[name] = self.attempts.get(name, 0) + 1
            if name in self.refused:
                raise ConnectionRefusedError(111, "Connection refused")
            ours, theirs = memory_byte_stream_pair()
            channel, connection = stream_connection(
                ours, self._dispatcher, f"c{next(self._origins)}"
            )
            scope = anyio.CancelScope()
            self._live.setdefault(name, []).append((scope, ours))
            self.served[name] = self.served.get(name, 0) + 1
            self._tg.start_soon(self._serve, scope, channel, connection, ours)
            return theirs

        return connect

    async def _serve(
        self, scope: anyio.CancelScope, channel: object, connection: object, ours: MemoryByteStream
    ) -> None:
        with scope:
            try:
                await run_stream_connection(channel, connection)
            finally:
                await ours.aclose()

    async def cut(self, name: str) -> None:
        """End every connection of client ``name`` from the daemon's side."""
        for scope, stream in self._live.pop(name, []):
            scope.cancel()
            await stream.aclose()


@asynccontextmanager
async def in_process_daemon(
    path: Path, kept_changes: int = 10_000
) -> AsyncIterator[InProcessDaemon]:
    async with open_store(path, listing=ConvListing(), kept_changes=kept_changes) as store:
        service = ConversationService(store, EventBus())
        dispatcher = Dispatcher(Methods(service, fixed_status, build_openrpc()).table())
        async with anyio.create_task_group() as tg:
            yield InProcessDaemon(dispatcher, tg, service)
            tg.cancel_scope.cancel()


def client(daemon: InProcessDaemon, name: str, **options: float) -> Client:
    return Client(
        Path(f"/in-memory/{name}"),
        connector=daemon.connector(name),
        backoff_initial=options.pop("backoff_initial", 0.01),
        backoff_max=options.pop("backoff_max", 0.04),
        **options,  # type: ignore[arg-type]
    )


async def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


async def test_a_dropped_connection_is_reconnected_with_backoff_and_logged_in_again(
    tmp_path: Path,
) -> None:
    states: list[ConnectionState] = []
    delays: list[float] = []
    async with (
        in_process_daemon(tmp_path / "convd.db") as daemon,
        client(daemon, "a", backoff_initial=0.01, backoff_max=0.04) as a,
    ):
        sleep = a._supervisor._sleep

        async def recording_sleep(delay: float) -> None:
            delays.append(delay)
            await sleep(delay)

        a._supervisor._sleep = recording_sleep
        a.add_state_listener(states.append)
        await a.login("alice")
        await a.conv_create("before", C2C)

        daemon.refused.add("a")
        await daemon.cut("a")
        await wait_until(lambda: daemon.attempts["a"] >= 5)
        # Down: calls fail with the reason, not after a long wait.
        with pytest.raises(DaemonUnavailable, match="connection refused"):
            await a.conv_list(timeout=5)

        daemon.refused.discard("a")
        await a.wait_connected(timeout=10)
        # A conv.* call needs a login: it works on the new connection without one.
        assert (await a.conv_create("after", C2C)).conv_id == "after"
        assert a.user_id == "alice"
        assert [c.conv_id for c in await a.conv_list_all()] == ["after", "before"]
        await wait_until(lambda: states[-1:] == [ConnectionState.CONNECTED])

    assert daemon.served["a"] == 2
    # Exponential backoff with jitter, capped: 0.01, 0.02, 0.04, 0.04, ... (each +-20 %).
    assert len(delays) >= 4
    for n, delay in enumerate(delays):
        base = min(0.01 * 2**n, 0.04)
        assert 0.8 * base <= delay <= 1.2 * base, (n, delays)
    # The loss was seen, attempts made, and the session restored before calls went through.
    lost = states.index(ConnectionState.DISCONNECTED)
    assert ConnectionState.CONNECTING in states[lost:]
    assert states[-2:] == [ConnectionState.RESTORING, ConnectionState.CONNECTED]


async def test_a_subscription_resumes_from_the_last_seq_with_every_event_once(
    tmp_path: Path,
) -> None:
    events: list[ConvEvent] = []
    resyncs: list[Resync] = []
    async with (
        in_process_daemon(tmp_path / "convd.db") as daemon,
        client(daemon, "reader") as reader,
        client(daemon, "writer") as writer,
    ):
        await reader.login("alice")
        await writer.login("alice")
        reader.add_event_listener(events.append)
        reader.add_resync_listener(resyncs.append)
        first = await reader.subscribe()
        await writer.conv_create("one", C2C)
        await wait_until(lambda: len(events) == 1)
        origin = reader.origin

        daemon.refused.add("reader")
        await daemon.cut("reader")
        await wait_until(lambda: reader.state is not ConnectionState.CONNECTED)
        # Committed while the reader is away: only a resume's replay can deliver these.
        await writer.conv_create("two", C2C)
        await writer.conv_set_draft("two", C2C, "hello")
        await writer.conv_delete("one", C2C)
        assert len(events) == 1

        daemon.refused.discard("reader")
        await reader.wait_connected(timeout=10)
        await writer.conv_pin("two", C2C)
        await wait_until(lambda: len(events) == 5)
        await anyio.sleep(0.05)  # nothing more (no repeat) follows

        assert reader.subscribed
        assert reader.origin != origin  # a new connection
        assert reader.last_seq == events[-1].seq

        # A replay overlapping what was delivered (the daemon sends it again) is not repeated.
        subscription = reader._feed.subscription
        assert subscription is not None
        again = ConvEventUpdate(
            subscription=subscription,
            seq=events[-1].seq,
            origin="c0",
            conv_array=list(events[-1].conversations),
        )
        reader._feed.on_notification("conv.event", msgspec.Raw(msgspec.json.encode(again)))
        await writer.conv_pin("two", C2C, False)
        await wait_until(lambda: len(events) == 6)
        await anyio.sleep(0.05)

    assert resyncs == []
    assert [e.seq for e in events] == list(range(first.seq + 1, first.seq + 7))
    assert [(e.event, e.keys[0].conv_id) for e in events] == [
        (ADD, "one"),
        (ADD, "two"),
        (UPDATE, "two"),
        (DEL, "one"),
        (UPDATE, "two"),
        (UPDATE, "two"),
    ]


async def test_a_resume_refused_with_90003_reloads_the_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[ConvEvent] = []
    resyncs: list[Resync] = []
    # Only the last 2 changes are kept: the reader's resume point falls out of the feed.
    async with (
        in_process_daemon(tmp_path / "convd.db", kept_changes=2) as daemon,
        client(daemon, "reader") as reader,
        client(daemon, "writer") as writer,
    ):
        await reader.login("alice")
        await writer.login("alice")
        reader.add_event_listener(events.append)
        reader.add_resync_listener(resyncs.append)
        await reader.subscribe()
        await writer.conv_create("a", C2C)
        await wait_until(lambda: len(events) == 1)

        daemon.refused.add("reader")
        await daemon.cut("reader")
        await wait_until(lambda: reader.state is not ConnectionState.CONNECTED)
        for name in ("b", "c", "d", "e"):
            await writer.conv_create(name, C2C)
        await writer.conv_delete("a", C2C)

        refusals: list[int] = []
        call_on = reader._feed._call_on

        async def recording_call_on(*args: Any) -> Any:
            try:
                return await call_on(*args)
            except ConvdError as exc:
                refusals.append(exc.code)
                raise

        reader._feed._call_on = recording_call_on  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="convd_client"):
            daemon.refused.discard("reader")
            await wait_until(lambda: len(resyncs) == 1)
        (resync,) = resyncs
        assert sorted(c.conv_id for c in resync.conversations) == ["b", "c", "d", "e"]
        assert refusals == [ConvdErrCode.SEQ_TOO_OLD]
        assert "cannot resume events" in caplog.text

        # Events after the reload flow as usual, from the reload's seq on.
        await writer.conv_create("f", C2C)
        await wait_until(lambda: len(events) == 2)
        assert reader.subscribed

    assert [(e.seq, e.keys[0].conv_id) for e in events] == [(1, "a"), (resync.seq + 1, "f")]
    assert resync.seq == 6


async def test_events_during_a_reload_follow_the_reloaded_list_once(tmp_path: Path) -> None:
    events: list[ConvEvent] = []
    items: list[object] = []
    async with (
        in_process_daemon(tmp_path / "convd.db", kept_changes=2) as daemon,
        client(daemon, "reader") as reader,
        client(daemon, "writer") as writer,
    ):
        await reader.login("alice")
        await writer.login("alice")
        reader.add_event_listener(events.append)
        reader.add_event_listener(items.append)
        reader.add_resync_listener(items.append)
        await reader.subscribe()
        await writer.conv_create("a", C2C)
        await wait_until(lambda: len(events) == 1)

        daemon.refused.add("reader")
        await daemon.cut("reader")
        await wait_until(lambda: reader.state is not ConnectionState.CONNECTED)
        for name in ("b", "c", "d"):
            await writer.conv_create(name, C2C)

        # The reload pages through conv.list; others keep writing meanwhile.
        async def list_while_others_write(*args: object) -> object:
            await writer.conv_create("during-1", C2C)
            await writer.conv_create("during-2", C2C)
            await anyio.sleep(0.05)  # their events reach the reader and are held
            return await list_all_on(*args)  # type: ignore[arg-type]

        reader._feed._list_all_on = list_while_others_write  # type: ignore[method-assign]
        daemon.refused.discard("reader")
        await wait_until(lambda: any(isinstance(i, Resync) for i in items))
        await writer.conv_create("last", C2C)
        await wait_until(lambda: events[-1].keys[0].conv_id == "last")

    (resync,) = [i for i in items if isinstance(i, Resync)]
    # The two writes made while the list was read are in it, and their events were held and
    # follow it (a listener applies them as upserts), in order and once each.
    assert sorted(c.conv_id for c in resync.conversations) == [
        "a",
        "b",
        "c",
        "d",
        "during-1",
        "during-2",
    ]
    assert resync.seq == 4
    assert items[0] is events[0] and items[1] is resync
    assert [(e.seq, e.keys[0].conv_id) for e in items[2:]] == [  # type: ignore[attr-defined]
        (5, "during-1"),
        (6, "during-2"),
        (7, "last"),
    ]


# -- sync frames (subscribe with sync) ---------------------------------------------------------


def _summary(events: list[ConvEvent]) -> list[tuple[TIMConvEvent, list[str]]]:
    return [(e.event, [k.conv_id for k in e.keys]) for e in events]


async def test_a_synced_subscription_frames_the_list_then_goes_live(tmp_path: Path) -> None:
    events: list[ConvEvent] = []
    async with (
        in_process_daemon(tmp_path / "convd.db") as daemon,
        client(daemon, "reader") as reader,
        client(daemon, "writer") as writer,
    ):
        await writer.login("alice")
        for n in range(150):
            await writer.conv_create(f"p{n:03}", C2C)
        await reader.login("alice")
        reader.add_event_listener(events.append)
        result = await reader.subscribe(sync=True)
        await wait_until(lambda: bool(events) and events[-1].event is FINISH)
        await writer.conv_delete("p000", C2C)
        await wait_until(lambda: len(events) == 5)
        listed = [c.conv_id for c in await writer.conv_list_all()]

    start, first, second, finish, live = events
    assert (start.event, start.seq, start.origin, start.conv_array) == (START, result.seq, "", [])
    assert start.full  # the whole list follows
    assert [(e.event, e.seq, len(e.conversations)) for e in (first, second)] == [
        (UPDATE, result.seq, 100),
        (UPDATE, result.seq, 50),
    ]
    assert [c.conv_id for c in first.conversations + second.conversations] == [*listed, "p000"]
    assert (finish.event, finish.seq) == (FINISH, result.seq)
    assert (live.event, live.seq, live.keys[0].conv_id) == (DEL, result.seq + 1, "p000")


async def test_a_synced_resume_frames_the_missed_changes(tmp_path: Path) -> None:
    events: list[ConvEvent] = []
    async with (
        in_process_daemon(tmp_path / "convd.db") as daemon,
        client(daemon, "reader") as reader,
        client(daemon, "writer") as writer,
    ):
        await reader.login("alice")
        await writer.login("alice")
        reader.add_event_listener(events.append)
        await reader.subscribe(sync=True)
        await wait_until(lambda: len(events) == 2)  # Start, Finish: the list is empty
        await writer.conv_create("one", C2C)
        await wait_until(lambda: len(events) == 3)
        resume_point = reader.last_seq

        daemon.refused.add("reader")
        await daemon.cut("reader")
        await wait_until(lambda: reader.state is not ConnectionState.CONNECTED)
        await writer.conv_create("two", C2C)
        await writer.conv_set_draft("two", C2C, "hello")
        await writer.conv_delete("one", C2C)
        daemon.refused.discard("reader")
        await wait_until(lambda: len(events) == 8)
        await writer.conv_pin("two", C2C)
        await wait_until(lambda: len(events) == 9)
        await anyio.sleep(0.05)  # nothing more (no repeat) follows

    assert _summary(events) == [
        (START, []),
        (FINISH, []),
        (ADD, ["one"]),
        (START, []),
        (ADD, ["two"]),
        (UPDATE, ["two"]),
        (DEL, ["one"]),
        (FINISH, []),
        (UPDATE, ["two"]),
    ]
    assert events[3].seq == resume_point == 1
    assert (events[0].full, events[3].full) == (True, False)  # the list; the missed changes
    assert [e.seq for e in events[4:]] == [2, 3, 4, 4, 5]


async def test_a_synced_reload_after_90003_reports_the_deleted_as_del(tmp_path: Path) -> None:
    events: list[ConvEvent] = []
    resyncs: list[Resync] = []
    async with (
        in_process_daemon(tmp_path / "convd.db", kept_changes=2) as daemon,
        client(daemon, "reader") as reader,
        client(daemon, "writer") as writer,
    ):
        await reader.login("alice")
        await writer.login("alice")
        reader.add_event_listener(events.append)
        reader.add_resync_listener(resyncs.append)
        await reader.subscribe(sync=True)
        await wait_until(lambda: len(events) == 2)  # Start, Finish: the list is empty
        await writer.conv_create("a", C2C)
        await writer.conv_create("z", C2C)
        await wait_until(lambda: len(events) == 4)

        daemon.refused.add("reader")
        await daemon.cut("reader")
        await wait_until(lambda: reader.state is not ConnectionState.CONNECTED)
        for name in ("b", "c", "d"):
            await writer.conv_create(name, C2C)
        await writer.conv_delete("a", C2C)
        daemon.refused.discard("reader")
        await wait_until(lambda: events[-1].event is FINISH and len(events) > 4)
        await writer.conv_create("f", C2C)
        await wait_until(lambda: len(events) == 9)

    assert resyncs == []  # the frame replaces the Resync
    assert _summary(events[4:]) == [
        (START, []),
        (UPDATE, ["d", "c", "b", "z"]),
        (DEL, ["a"]),  # the listener knew it; the reloaded list does not have it
        (FINISH, []),
        (ADD, ["f"]),
    ]
    assert events[6].origin == "" and events[6].conv_array == [{"conv_id": "a", "conv_type": 1}]
    assert [e.seq for e in events[4:]] == [6, 6, 6, 6, 7]
    assert events[4].full and not any(e.full for e in events[5:])


async def test_a_frame_cut_midway_is_completed_on_the_next_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers_module, "_SYNC_PAGE", 3)
    events: list[ConvEvent] = []
    async with (
        in_process_daemon(tmp_path / "convd.db") as daemon,
        client(daemon, "reader") as reader,
        client(daemon, "writer") as writer,
    ):
        await writer.login("alice")
        for name in "abcdefgh":
            await writer.conv_create(name, C2C)
        # The sync's second list read stalls until the connection is cut.
        original = daemon.service.list_rows
        reads = 0
        stalled = anyio.Event()

        async def list_rows(*args: Any) -> Any:
            nonlocal reads
            reads += 1
            if reads == 2:
                stalled.set()
                await anyio.sleep_forever()
            return await original(*args)

        monkeypatch.setattr(daemon.service, "list_rows", list_rows)
        await reader.login("alice")
        reader.add_event_listener(events.append)
        await reader.subscribe(sync=True)
        with anyio.fail_after(10):
            await stalled.wait()
        await wait_until(lambda: len(events) == 2)  # Start and the first page: h, g, f

        daemon.refused.add("reader")
        await daemon.cut("reader")
        await wait_until(lambda: reader.state is not ConnectionState.CONNECTED)
        await writer.conv_delete("g", C2C)  # told about already
        await writer.conv_delete("b", C2C)  # not told yet
        daemon.refused.discard("reader")
        await wait_until(lambda: events[-1].event is FINISH)
        await writer.conv_create("i", C2C)
        await wait_until(lambda: len(events) == 7)
        await anyio.sleep(0.05)  # nothing more (no repeat) follows

    # One Start and one Finish: the reload's frame (the whole list again) completes the cut
    # one, and what the listener was told of and is gone ("g") is reported; "b", deleted
    # before the listener heard of it, is not.
    assert _summary(events) == [
        (START, []),
        (UPDATE, ["h", "g", "f"]),
        (UPDATE, ["h", "f", "e"]),
        (UPDATE, ["d", "c", "a"]),
        (DEL, ["g"]),
        (FINISH, []),
        (ADD, ["i"]),
    ]
