"""A resume's replay never skips changes: if the feed is pruned under it, the client is cut
(and its next resume is refused, so it reloads) instead of silently missing changes."""

from __future__ import annotations

import json
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


async def _write(service: ConversationService, account: Account, count: int, tag: str) -> None:
    for n in range(count):
        await service.set_draft(
            account, ConvKey(ConvType.C2C, "bob"), [DraftElement(0, f"{tag}{n}")], origin="w"
        )


async def test_a_prune_during_the_replay_cuts_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers_module, "_REPLAY_PAGE", 2)
    async with open_store(tmp_path / "db", listing=ConvListing(), kept_changes=10) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        await _write(service, account, 12, "before")  # seqs 1..12; 1..2 already pruned
        assert await store.oldest_kept_seq(account.id) == 2

        original = service.changes_between
        pages = 0

        async def changes_between_with_a_prune(*args: Any) -> Any:
            nonlocal pages
            pages += 1
            if pages == 2:
                # Other writers go on while the client reads page 1: the feed moves past it.
                await _write(service, account, 12, "during")
            return await original(*args)

        monkeypatch.setattr(service, "changes_between", changes_between_with_a_prune)
        dispatcher = Dispatcher(Methods(service, fixed_status, build_openrpc()).table())
        ours, theirs = memory_byte_stream_pair()
        channel, connection = stream_connection(ours, dispatcher, "c1")
        async with ours, theirs, anyio.create_task_group() as tg:

            async def serve() -> None:
                try:
                    await run_stream_connection(channel, connection)
                finally:
                    await ours.aclose()

            tg.start_soon(serve)
            await theirs.send(
                b'{"jsonrpc":"2.0","id":1,"method":"session.login","params":{"user_id":"alice"}}\n'
                b'{"jsonrpc":"2.0","id":2,"method":"conv.subscribe","params":{"since_seq":2}}\n'
            )
            reader = LineReader(theirs, 1 << 20)
            seqs = []
            with anyio.fail_after(5):
                while (line := await reader.receive_line()) is not None:
                    message = json.loads(line)
                    if message.get("method") == "conv.event":
                        seqs.append(message["params"]["seq"])
        # Page 1 (seqs 3, 4) went out; 5..12 were pruned meanwhile: the client is cut rather
        # than handed 13.. with a silent gap.
        assert seqs == [3, 4]
        assert connection.cut_reason is not None
        assert "pruned" in connection.cut_reason
