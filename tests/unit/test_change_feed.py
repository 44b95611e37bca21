"""The per-account change feed: kept in the database, pruned, and refused when too old."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from convd.domain import (
    Account,
    ChangeKind,
    ConversationService,
    ConvKey,
    ConvType,
    DraftElement,
    EventBus,
    SeqTooOld,
)
from convd.rpc import ConvListing
from convd.store import SqliteStore, open_store

pytestmark = pytest.mark.anyio


async def test_feed_is_pruned_and_old_seqs_are_refused(tmp_path: Path) -> None:
    async with open_store(tmp_path / "db", listing=ConvListing(), kept_changes=10) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        for n in range(25):
            await service.set_draft(
                account, ConvKey(ConvType.C2C, "bob"), [DraftElement(0, f"text {n}")], origin="test"
            )
        assert await store.current_seq(account.id) == 25
        oldest = await store.oldest_kept_seq(account.id)
        assert 0 < oldest <= 15
        with pytest.raises(SeqTooOld) as refused:
            await service.check_resumable(account, oldest - 1, 25, None)
        assert (refused.value.oldest_seq, refused.value.current_seq) == (oldest, 25)
        await service.check_resumable(account, oldest, 25, service.history_id)
        with pytest.raises(SeqTooOld, match="history"):
            await service.check_resumable(account, oldest, 25, "another history")
        changes = await service.changes_between(account, oldest, 25, 100)
        assert [c.seq for c in changes] == list(range(oldest + 1, 26))
        assert {c.kind for c in changes} == {ChangeKind.UPDATE}
        assert changes[-1].conversation is not None
        assert changes[-1].conversation.draft is not None
        assert changes[-1].conversation.draft.texts == ("text 24",)


async def test_feed_survives_reopening(tmp_path: Path) -> None:
    key = ConvKey(ConvType.GROUP, "team")
    async with open_store(tmp_path / "db", listing=ConvListing()) as store:
        history = store.history_id
        service = ConversationService(store, EventBus())
        account = await service.login(7, "alice")
        await service.create(account, key, origin="c1")
        await service.delete(account, key, origin="c1")
    async with open_store(tmp_path / "db", listing=ConvListing()) as store:
        assert store.history_id == history
        service = ConversationService(store, EventBus())
        account = await service.login(7, "alice")
        changes = await service.changes_between(account, 0, 2, 10)
        assert [(c.seq, c.kind, c.key, c.origin) for c in changes] == [
            (1, ChangeKind.ADD, key, "c1"),
            (2, ChangeKind.DELETE, key, "c1"),
        ]
        assert changes[1].conversation is None


async def test_every_new_database_has_its_own_history(tmp_path: Path) -> None:
    async with (
        open_store(tmp_path / "one", listing=ConvListing()) as one,
        open_store(tmp_path / "two", listing=ConvListing()) as two,
    ):
        assert len(one.history_id) == 32
        assert one.history_id != two.history_id


async def test_a_write_cancelled_anywhere_leaves_no_transaction_behind(tmp_path: Path) -> None:
    # A peer that vanishes cancels its request wherever it is; aiosqlite finishes the
    # statement anyway. Sweep the cancellation point across the write's thread hops.
    async with open_store(tmp_path / "db", listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        key = ConvKey(ConvType.C2C, "bob")
        cancelled = 0
        for step in range(60):
            with anyio.move_on_after(step * 0.00005) as scope:
                await service.set_draft(
                    account, key, [DraftElement(0, f"cancelled {step}")], origin="t"
                )
            cancelled += scope.cancelled_caught
            # The next write works (it would fail inside a leftover transaction) ...
            done = await service.set_draft(
                account, key, [DraftElement(0, f"kept {step}")], origin="t"
            )
            assert done.draft is not None
            assert done.draft.texts == (f"kept {step}",)
        assert cancelled > 0
        # ... and each committed change is numbered exactly once: no half-written change.
        changes = await service.changes_between(account, 0, 10_000, 10_000)
        assert [c.seq for c in changes] == list(range(1, len(changes) + 1))


@asynccontextmanager
async def _hour_bound_feed(
    tmp_path: Path, now: list[float]
) -> AsyncIterator[
    tuple[SqliteStore, ConversationService, Account, Callable[[int], Awaitable[None]]]
]:
    """A store that keeps 10 changes, and any younger than an hour, by the clock ``now[0]``;
    alice, and ``write(count)``: that many drafts set on one conversation."""
    async with open_store(
        tmp_path / "db",
        listing=ConvListing(),
        kept_changes=10,
        kept_seconds=3600,
        clock=lambda: now[0],
    ) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")

        async def write(count: int) -> None:
            for n in range(count):
                await service.set_draft(
                    account,
                    ConvKey(ConvType.C2C, "bob"),
                    [DraftElement(0, f"{now[0]} {n}")],
                    origin="t",
                )

        yield store, service, account, write


async def test_recent_changes_are_kept_beyond_the_count_and_old_ones_are_pruned(
    tmp_path: Path,
) -> None:
    """--keep-changes-for: a change younger than the age bound survives the count bound (up
    to ten times the count); once it is older, the count bound prunes it."""
    now = [1_000_000.0]
    async with _hour_bound_feed(tmp_path, now) as (store, service, account, write):
        await write(60)  # all within the hour: far past the count bound, nothing pruned
        assert await store.oldest_kept_seq(account.id) == 0
        await service.check_resumable(account, 0, 60, None)
        now[0] += 7200  # two hours later those 60 are old
        await write(15)
        oldest = await store.oldest_kept_seq(account.id)
        assert 50 <= oldest < 75  # pruned by count, the last 10+ kept
        with pytest.raises(SeqTooOld):
            await service.check_resumable(account, 0, 75, None)
        # The ceiling: ten times the count, whatever the age.
        await write(150)
        assert await store.oldest_kept_seq(account.id) >= 225 - 10 * 10 - 10


async def test_young_changes_are_kept_when_an_older_looking_one_follows_them(
    tmp_path: Path,
) -> None:
    """A clock set back stamps a change older than those before it: the young ones before it
    still stay (pruning takes the old ones up to the first young one, never past it)."""
    start = 1_000_000.0
    now = [start]
    async with _hour_bound_feed(tmp_path, now) as (store, service, account, write):
        await write(30)  # seqs 1-30, at the start
        now[0] = start + 7200
        await write(30)  # 31-60, two hours later: 1-30 are old now, and pruned
        assert await store.oldest_kept_seq(account.id) == 30
        now[0] = start + 200  # the clock set back
        await write(1)  # 61, stamped as if before 31-60
        now[0] = start + 7300  # and forward again: 61 looks old, 31-60 are young
        await write(20)  # 62-81
        assert await store.oldest_kept_seq(account.id) == 30
        await service.check_resumable(account, 30, 81, None)  # away for 100 s: resumes
        now[0] = start + 7200 + 3601  # once 31-60 are old too, they and 61 go; 62-81 stay
        await write(1)
        assert await store.oldest_kept_seq(account.id) == 61


async def test_without_an_age_bound_the_count_alone_prunes(tmp_path: Path) -> None:
    async with open_store(
        tmp_path / "db", listing=ConvListing(), kept_changes=10, kept_seconds=0
    ) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        for n in range(30):
            await service.set_draft(
                account, ConvKey(ConvType.C2C, "bob"), [DraftElement(0, f"{n}")], origin="t"
            )
        assert await store.oldest_kept_seq(account.id) >= 10
