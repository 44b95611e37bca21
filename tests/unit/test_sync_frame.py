"""A full sync frame (conv.subscribe with ``sync``) against writes made between its pages.

Writes are made at chosen points (before given ``conv.list`` reads of the sync), so every
case of the seam is covered deterministically: a conversation created, activated, pinned,
unpinned, cleared, deleted (before or after the frame sent it) while the list is read.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import convd.rpc.handlers as handlers_module
from convd.domain import Account, ConversationService, ConvKey, ConvType, DraftElement, EventBus
from convd.rpc import ConvListing
from convd.rpc.dispatcher import Dispatcher
from convd.rpc.handlers import Methods
from convd.store import open_store
from convd_schemas.framing import LineReader
from convd_schemas.openrpc import build_openrpc
from support import fixed_status, memory_byte_stream_pair, run_stream_connection, stream_connection

pytestmark = pytest.mark.anyio

START, FINISH, ADD, DEL, UPDATE = 3, 4, 0, 1, 2


def _key(name: str) -> ConvKey:
    return ConvKey(ConvType.C2C, name)


async def _serve_sync(
    service: ConversationService,
    hooks: dict[int, Callable[[], Awaitable[None]]],
    after: Callable[[], Awaitable[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> list[dict[str, Any]]:
    """Subscribe with sync as alice; run ``hooks[n]`` before the sync's n-th list read, and
    ``after`` once Finish arrived; return every event up to the seq ``after`` returns."""
    original = service.list_rows
    reads = 0

    async def list_rows(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads in hooks:
            await hooks[reads]()
        return await original(*args)

    monkeypatch.setattr(service, "list_rows", list_rows)
    dispatcher = Dispatcher(Methods(service, fixed_status, build_openrpc()).table())
    ours, theirs = memory_byte_stream_pair()
    channel, connection = stream_connection(ours, dispatcher, "c1")
    events: list[dict[str, Any]] = []
    async with ours, theirs, anyio.create_task_group() as tg:
        tg.start_soon(run_stream_connection, channel, connection)
        await theirs.send(
            b'{"jsonrpc":"2.0","id":1,"method":"session.login","params":{"user_id":"alice"}}\n'
            b'{"jsonrpc":"2.0","id":2,"method":"conv.subscribe","params":{"sync":true}}\n'
        )
        reader = LineReader(theirs, 1 << 20)
        last: int | None = None
        with anyio.fail_after(10):
            while True:
                line = await reader.receive_line()
                assert line is not None
                message = json.loads(line)
                if message.get("method") != "conv.event":
                    continue
                events.append(message["params"])
                if message["params"]["event"] == FINISH:
                    last = await after()
                elif last is not None and message["params"]["seq"] == last:
                    break
        tg.cancel_scope.cancel()
    return events


def _names(event: dict[str, Any]) -> list[str]:
    return [c["conv_id"] for c in event.get("conv_array", ())]


async def test_every_seam_case_of_a_full_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers_module, "_SYNC_PAGE", 3)
    async with open_store(tmp_path / "db", listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        alice: Account = await service.login(0, "alice")

        async def draft(name: str, text: str) -> None:
            await service.set_draft(alice, _key(name), [DraftElement(0, text)], origin="w")

        for name in "abcdefghij":
            await draft(name, "x")
        await service.pin(alice, _key("a"), is_pinned=True, origin="w")
        seq = 11
        # The list now: a (pinned), j, i, h, g, f, e, d, c, b. Pages of 3.

        async def after_page_1() -> None:  # page 1 sent: a, j, i
            await draft("b", "moved up")  # 12: not read yet, moves above the cursor
            await service.pin(alice, _key("a"), is_pinned=False, origin="w")  # 13: sent
            await service.delete(alice, _key("h"), origin="w")  # 14: never sent
            await service.delete(alice, _key("j"), origin="w")  # 15: sent
            await service.create(alice, _key("new"), origin="w")  # 16: created meanwhile
            await service.create(alice, _key("tmp"), origin="w")  # 17: and gone again
            await service.delete(alice, _key("tmp"), origin="w")  # 18
            await draft("i", "changed")  # 19: sent, changed since

        async def after_page_2() -> None:  # page 2 sent: g, f, e
            await draft("f", "changed")  # 20: sent, changed since
            await service.cancel_draft(alice, _key("d"), origin="w")  # 21: read after this
            await service.pin(alice, _key("c"), is_pinned=True, origin="w")  # 22: moves up

        async def live() -> int:
            await draft("e", "live")  # 23
            return 23

        events = await _serve_sync(service, {2: after_page_1, 3: after_page_2}, live, monkeypatch)

    end = next(n for n, e in enumerate(events) if e["event"] == FINISH)
    start, *pages, finish = events[: end + 1]
    following = events[end + 1 :]
    assert (start["event"], start["seq"], start["full"], start["origin"]) == (START, seq, True, "")
    # Finish: every change up to 12 is in the frame (13 follows it).
    assert (finish["seq"], finish["origin"]) == (12, "")
    assert all((p["event"], p["seq"], p["origin"]) == (UPDATE, seq, "") for p in pages)
    # Page 3 read d (cleared: the frame shows it, so its change is not sent again) and a
    # again (unpinned, it moved down: sent once). The ones that moved above the cursor come
    # last, pinned first; those created and deleted meanwhile, or deleted before they were
    # read, never appear.
    assert [_names(p) for p in pages] == [
        ["a", "j", "i"],
        ["g", "f", "e"],
        ["d"],
        ["c", "new", "b"],
    ]
    assert pages[2]["conv_array"][0]["conv_is_has_draft"] is False
    assert pages[0]["conv_array"][0]["conv_is_pinned"] is True
    assert pages[3]["conv_array"][0]["conv_is_pinned"] is True
    # After Finish, the changes to what the frame showed, in seq order, then the live ones.
    assert [(e["event"], e["seq"], _names(e)) for e in following] == [
        (UPDATE, 13, ["a"]),
        (DEL, 15, ["j"]),
        (UPDATE, 19, ["i"]),
        (UPDATE, 20, ["f"]),
        (UPDATE, 23, ["e"]),
    ]
    assert following[0]["conv_array"][0]["conv_is_pinned"] is False


async def test_a_sync_of_an_unchanging_list_sends_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers_module, "_SYNC_PAGE", 2)
    async with open_store(tmp_path / "db", listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        alice = await service.login(0, "alice")
        for name in "abcde":
            await service.create(alice, _key(name), origin="w")

        async def live() -> int:
            await service.delete(alice, _key("a"), origin="w")
            return 6

        events = await _serve_sync(service, {}, live, monkeypatch)
    assert [(e["event"], _names(e)) for e in events] == [
        (START, []),
        (UPDATE, ["e", "d"]),
        (UPDATE, ["c", "b"]),
        (UPDATE, ["a"]),
        (FINISH, []),
        (DEL, ["a"]),
    ]
    assert events[-1]["seq"] == 6
