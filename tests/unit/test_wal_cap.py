"""The writer holds the WAL file to its cap itself, whatever the checkpointer's checks do."""

from __future__ import annotations

from pathlib import Path

import pytest

from convd.domain import ConversationService, ConvKey, ConvType, DraftElement, EventBus
from convd.rpc import ConvListing
from convd.store import open_store
from convd.store import sqlite as store_sqlite

pytestmark = pytest.mark.anyio


async def test_the_writer_restarts_a_wal_past_its_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the checkpointer's own restart out of reach (as when its checks fall behind a
    busy writer), the file never grows more than one batch past the cap."""
    cap = 256 * 1024
    monkeypatch.setattr(store_sqlite, "_JOURNAL_SIZE_LIMIT", cap)
    monkeypatch.setattr(store_sqlite, "WAL_RESET_BYTES", 1 << 40)
    path = tmp_path / "convd.db"
    wal = path.with_name(path.name + "-wal")
    sizes: list[int] = []
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        for n in range(300):
            key = ConvKey(ConvType.C2C, f"u{n % 50}")
            text = f"{n} " + "x" * 2000
            await service.set_draft(account, key, [DraftElement(0, text)], origin="t")
            sizes.append(wal.stat().st_size)
        restarts = store.stats.wal_restarts
    # Without the cap these writes take the file to megabytes.
    assert max(sizes) <= cap + 64 * 1024, max(sizes)
    # Each restart lets the WAL fill the cap again (journal_size_limit trims the file back
    # to it), rather than restarting after every batch.
    assert 5 <= restarts <= 100, restarts
