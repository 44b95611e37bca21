"""The group-commit writer on a real database: batching, at most one thread hop per batch, per-write
savepoints, exact revision checks inside a batch, events after commit in commit order, and
storage failures reported as such."""

from __future__ import annotations

import functools
import itertools
import logging
import sqlite3
import statistics
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import msgspec
import pytest

from convd.domain import (
    Account,
    Change,
    ConversationService,
    ConvKey,
    ConvType,
    DraftElement,
    DraftRevisionConflict,
    EventBus,
    StorageFailure,
)
from convd.rpc import ConvListing
from convd.store import SqliteStore, open_store
from convd.store import sqlite as sqlite_store
from convd.store.writer import BatchPacing, GroupCommitWriter, run_on_connection_thread

pytestmark = pytest.mark.anyio


class World:
    def __init__(self, store: SqliteStore, service: ConversationService, account: Account):
        self.store = store
        self.service = service
        self.account = account
        self.events: list[Change] = []

    async def draft(self, conv_id: str, text: str, if_revision: int | None = None) -> object:
        return await self.service.set_draft(
            self.account,
            ConvKey(ConvType.C2C, conv_id),
            [DraftElement(0, text)],
            if_revision=if_revision,
            origin="t",
        )


@asynccontextmanager
async def _open_world(path: Path, pacing: BatchPacing | None = None) -> AsyncIterator[World]:
    """A store at ``path`` (its writer paced by ``pacing``), and alice logged in."""
    async with open_store(path, listing=ConvListing(), writer_pacing=pacing) as store:
        bus = EventBus()
        service = ConversationService(store, bus)
        account = await service.login(0, "alice")
        world = World(store, service, account)
        bus.add(account.id, world.events.append)
        yield world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with _open_world(tmp_path / "convd.db") as w:
        yield w


async def _concurrently(*calls: object) -> list[object]:
    """Start every call at once (as many connections would) and collect result or error."""
    results: list[object] = [None] * len(calls)

    async def run(index: int, call: object) -> None:
        try:
            results[index] = await call  # type: ignore[misc]
        except Exception as exc:
            results[index] = exc

    async with anyio.create_task_group() as tg:
        for index, call in enumerate(calls):
            tg.start_soon(run, index, call)
    return results


async def _in_one_held_batch(world: World, *calls: object) -> list[object]:
    """Start every call while the writer's thread is held, so that they queue up into one
    batch; then let it go. The results (or errors) in call order."""
    held = threading.Event()
    gate = threading.Event()
    results: list[object] = []
    group_commit = world.store._group_commit

    def hold(conn: object) -> None:
        held.set()
        gate.wait(10)

    async def hold_the_writer() -> None:
        await group_commit.run_between_batches(hold)

    async def collect() -> None:
        results.extend(await _concurrently(*calls))

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold_the_writer)
        # Waited for, not slept on: a loaded machine must not split the batch.
        with anyio.fail_after(10):
            while not held.is_set():
                await anyio.sleep(0.002)
            tg.start_soon(collect)
            while group_commit._inbox.qsize() < len(calls):
                await anyio.sleep(0.002)
        gate.set()
    return results


def test_the_private_aiosqlite_calls_the_writer_relies_on_are_there() -> None:
    # store/writer.py runs its loop on SQLite's thread through these; pyproject pins the range.
    assert callable(getattr(aiosqlite.Connection, "_execute", None))
    assert isinstance(aiosqlite.Connection.__dict__.get("_conn"), property)


async def test_run_on_connection_thread_runs_on_sqlites_own_thread(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "x.db") as db:
        first = await run_on_connection_thread(db, lambda conn: threading.get_ident())
        row = await run_on_connection_thread(db, lambda conn: conn.execute("SELECT 7").fetchone())
        second = await run_on_connection_thread(db, lambda conn: threading.get_ident())
    assert first == second != threading.get_ident()
    assert tuple(row) == (7,)


async def test_concurrent_writes_share_batches_with_at_most_one_hop_each(world: World) -> None:
    before = (world.store.stats.writes, world.store.stats.write_batches)
    hops_before = world.store.stats.writer_thread_hops
    results = await _concurrently(*(world.draft(f"c{n}", f"text {n}") for n in range(50)))
    assert not [r for r in results if isinstance(r, Exception)]
    writes = world.store.stats.writes - before[0]
    batches = world.store.stats.write_batches - before[1]
    assert writes == 50
    assert batches < writes  # grouped: far fewer commits than writes
    # The writer's thread is woken at most once a batch: not at all for a batch that was
    # already waiting when the one before it committed (or when a loaded machine had not yet
    # brought the thread to its first wait: so no lower bound).
    assert world.store.stats.writer_thread_hops - hops_before <= batches
    # Every write committed once, numbered without gaps, published in commit order.
    assert [c.seq for c in world.events] == list(range(1, 51))


async def test_each_lone_write_is_a_batch_that_wakes_the_writer_at_most_once(
    world: World,
) -> None:
    stats = world.store.stats
    before = (stats.writes, stats.write_batches, stats.writer_thread_hops)
    for n in range(3):
        await world.draft(f"lone{n}", "x")
        await anyio.sleep(0.05)  # the writer's thread goes back to waiting
    writes, batches, hops = (
        b - a
        for a, b in zip(
            before, (stats.writes, stats.write_batches, stats.writer_thread_hops), strict=True
        )
    )
    assert (writes, batches) == (3, 3)
    # Woken for each, unless a loaded machine kept the thread from its wait until the next
    # write was already there.
    assert hops <= 3


class _RecordedPacing:
    """A BatchPacing that records its calls, on which thread they came, and how many
    changes another connection sees committed at each."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.calls: list[tuple[str, int, int]] = []
        self.threads: set[int] = set()

    def _committed(self) -> int:
        if not self.database.exists():
            return 0
        with closing(sqlite3.connect(self.database)) as conn:
            try:
                return int(conn.execute("SELECT count(*) FROM change").fetchone()[0])
            except sqlite3.OperationalError:  # not created yet
                return 0

    def before_batch(self, writes: int) -> None:
        self.threads.add(threading.get_ident())
        self.calls.append(("before", writes, self._committed()))

    def after_batch(self) -> None:
        self.threads.add(threading.get_ident())
        self.calls.append(("after", 0, self._committed()))

    def idle_timeout(self) -> float | None:
        return None  # the writer waits for work as long as it takes: idle() never comes

    def idle(self) -> None:
        self.calls.append(("idle", 0, self._committed()))


class _IdleOnlyPacing:
    """A BatchPacing with nothing to do around batches: what it does while the writer
    waits is the subclass's."""

    def before_batch(self, writes: int) -> None:
        pass

    def after_batch(self) -> None:
        pass


class _IdlePacing(_IdleOnlyPacing):
    """Asks to hear of the writer's idleness after ``timeout``, until told ``enough``."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.idle_threads: list[int] = []
        self.enough = threading.Event()

    def idle_timeout(self) -> float | None:
        return None if self.enough.is_set() else self.timeout

    def idle(self) -> None:
        self.idle_threads.append(threading.get_ident())
        if len(self.idle_threads) >= 3:
            self.enough.set()


async def test_the_writer_paces_each_batch_on_its_own_thread(tmp_path: Path) -> None:
    pacing = _RecordedPacing(tmp_path / "convd.db")
    async with _open_world(tmp_path / "convd.db", pacing) as world:
        await world.draft("lone", "x")
        await _in_one_held_batch(world, *(world.draft(f"c{n}", "x") for n in range(5)))
    # One (before, after) pair around each batch, in order: the login (no change), the lone
    # write, then the five queued behind the held writer in one batch; each "after" once the
    # batch is committed.
    assert pacing.calls == [
        ("before", 1, 0),
        ("after", 0, 0),
        ("before", 1, 0),
        ("after", 0, 1),
        ("before", 5, 1),
        ("after", 0, 6),
    ]
    assert len(pacing.threads) == 1 and threading.get_ident() not in pacing.threads


async def _assert_the_writer_takes_a_write(world: World) -> None:
    await world.draft("after", "x")
    key = ConvKey(ConvType.C2C, "after")
    (found,) = await world.service.get_many(world.account, [key])
    assert found.draft_revision == 1


async def test_an_idle_writer_tells_its_pacing_when_asked_and_still_takes_writes(
    tmp_path: Path,
) -> None:
    pacing = _IdlePacing(0.01)
    async with _open_world(tmp_path / "convd.db", pacing) as world:
        with anyio.fail_after(5):
            while not pacing.enough.is_set():  # no write: the wait for one ends three times
                await anyio.sleep(0.01)
        await _assert_the_writer_takes_a_write(world)  # ... and it still takes the next one
    assert len(pacing.idle_threads) == 3
    assert len(set(pacing.idle_threads)) == 1 and threading.get_ident() not in pacing.idle_threads


class _StuckPacing(_IdleOnlyPacing):
    """Its idle() fails to end what it waits for: it asks for no wait."""

    def __init__(self) -> None:
        self.idles = 0

    def idle_timeout(self) -> float | None:
        return 0.0

    def idle(self) -> None:
        self.idles += 1
        raise RuntimeError("cannot place the threads")


async def test_a_failing_idle_pacing_neither_spins_the_writer_nor_stops_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pacing = _StuckPacing()
    async with _open_world(tmp_path / "convd.db", pacing) as world:
        await anyio.sleep(0.3)
        # Once per wait for work (the store's own jobs make a few), then as long as it
        # takes: a writer that asked again at once would have spun thousands of times.
        assert 1 <= pacing.idles < 10
        await _assert_the_writer_takes_a_write(world)
    assert "placing the writer's thread failed" in caplog.text


async def test_work_between_batches_runs_on_the_writer_connection(world: World) -> None:
    await world.draft("a", "x")
    in_transaction, thread = await world.store._group_commit.run_between_batches(
        lambda conn: (conn.in_transaction, threading.get_ident())
    )
    assert not in_transaction
    assert thread != threading.get_ident()


async def test_one_refused_write_does_not_fail_the_others_of_its_batch(world: World) -> None:
    await world.draft("shared", "v1")  # revision 1
    results = await _concurrently(
        world.draft("a", "x"),
        world.draft("shared", "stale", if_revision=0),  # refused inside the batch
        world.draft("b", "y"),
    )
    assert isinstance(results[1], DraftRevisionConflict)
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
    found = await world.service.get_many(
        world.account, [ConvKey(ConvType.C2C, k) for k in ("a", "shared", "b")]
    )
    assert {c.conv_id: c.draft_revision for c in found} == {"a": 1, "shared": 1, "b": 1}
    # The refused write took no seq and published nothing.
    assert [c.seq for c in world.events] == [1, 2, 3]
    assert await world.store.current_seq(world.account.id) == 3


async def test_a_refusal_inside_one_batch_runs_it_again_with_savepoints(world: World) -> None:
    """The batch runs without savepoints first; a refusal rolls that attempt back and the
    batch runs again, each write in a savepoint: every other write commits exactly once."""
    await world.draft("shared", "v1")  # revision 1, seq 1
    batches = world.store.stats.write_batches
    results = await _in_one_held_batch(
        world,
        world.draft("a", "x"),
        world.draft("b", "y"),
        world.draft("shared", "stale", if_revision=0),  # refused, third of five
        world.draft("c", "z"),
        world.draft("shared", "v2", if_revision=1),
    )
    assert world.store.stats.write_batches == batches + 1  # one batch, one commit
    assert isinstance(results[2], DraftRevisionConflict)
    assert not [r for k, r in enumerate(results) if k != 2 and isinstance(r, Exception)]
    found = await world.service.get_many(
        world.account, [ConvKey(ConvType.C2C, k) for k in ("a", "b", "shared", "c")]
    )
    assert {c.conv_id: c.draft_revision for c in found} == {"a": 1, "b": 1, "c": 1, "shared": 2}
    # The first attempt's seqs were rolled back with it: none lost, none twice, and each
    # committed write published once.
    assert [c.seq for c in world.events] == [1, 2, 3, 4, 5]
    assert await world.store.current_seq(world.account.id) == 5


async def test_a_refused_write_gives_back_the_seqs_it_took(world: World) -> None:
    """Seqs are counted on the writer's thread and stored at the end of the batch: a write
    refused after taking one (here, after next_seq) leaves no gap, in either attempt."""
    account_id = world.account.id

    def takes_a_seq_then_fails(tx: object) -> None:
        tx.next_seq(account_id)  # type: ignore[attr-defined]
        raise LookupError("refused after taking a seq")

    results = await _in_one_held_batch(
        world,
        world.draft("a", "x"),
        world.store.write(takes_a_seq_then_fails),
        world.draft("b", "y"),
    )
    assert isinstance(results[1], LookupError)
    assert [c.seq for c in world.events] == [1, 2]
    assert await world.store.current_seq(account_id) == 2
    await world.draft("c", "z")  # and the next batch goes on from there
    assert [c.seq for c in world.events] == [1, 2, 3]


async def test_a_refused_lone_write_leaves_nothing_behind(world: World) -> None:
    # A batch of one runs without a savepoint: its refusal rolls the transaction back.
    await world.draft("shared", "v1")  # revision 1, seq 1
    batches = world.store.stats.write_batches
    with pytest.raises(DraftRevisionConflict):
        await world.draft("shared", "stale", if_revision=0)
    assert world.store.stats.write_batches == batches + 1
    (stored,) = await world.service.get_many(world.account, [ConvKey(ConvType.C2C, "shared")])
    assert stored.draft is not None and stored.draft.texts == ("v1",)
    assert await world.store.current_seq(world.account.id) == 1
    await world.draft("shared", "v2", if_revision=1)  # the writer goes on
    assert [c.seq for c in world.events] == [1, 2]


async def test_revision_checks_stay_exact_between_writes_of_one_batch(world: World) -> None:
    """Writes to one conversation in one batch apply one after the other: each checks its
    if_revision against what the writes before it in the batch left."""
    batches = world.store.stats.write_batches
    results = await _in_one_held_batch(
        world,
        world.draft("same", "first", if_revision=0),  # 0 -> 1
        world.draft("same", "second", if_revision=0),  # refused: it is 1 now
        world.draft("same", "third", if_revision=1),  # 1 -> 2
        world.draft("same", "fourth", if_revision=2),  # 2 -> 3
    )
    assert world.store.stats.write_batches == batches + 1  # all four in one batch
    assert isinstance(results[1], DraftRevisionConflict)
    assert not [r for k, r in enumerate(results) if k != 1 and isinstance(r, Exception)]
    (stored,) = await world.service.get_many(world.account, [ConvKey(ConvType.C2C, "same")])
    assert stored.draft is not None and stored.draft.texts == ("fourth",)
    assert stored.draft_revision == 3
    assert [c.seq for c in world.events] == [1, 2, 3]


async def test_events_are_published_only_after_commit(world: World) -> None:
    seen_committed: list[bool] = []

    def check(change: Change) -> None:
        # Another connection must already see the change when its event goes out.
        with sqlite3.connect(world.store._path) as other:
            row = other.execute(
                "SELECT draft_revision FROM conversation WHERE conv_id = ?",
                (change.key.conv_id,),
            ).fetchone()
        seen_committed.append(row is not None)

    world.service._bus.add(world.account.id, check)
    await _concurrently(*(world.draft(f"e{n}", "x") for n in range(5)))
    assert seen_committed == [True] * 5


async def test_a_full_database_is_a_storage_failure_logged_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    await world.draft("before", "kept")
    # SQLite answers SQLITE_FULL once the file may not grow: the same error a full disk gives.
    await world.store._group_commit.run_between_batches(  # clamps to the current size
        lambda conn: conn.execute("PRAGMA max_page_count = 1")
    )
    big = "x" * 12_000  # several pages, within the 12 KiB draft text limit
    with caplog.at_level(logging.ERROR, logger="convd.store.writer"):
        for n in range(3):
            with pytest.raises(StorageFailure) as failed:
                await world.draft(f"big{n}", big)
            assert failed.value.reason == "disk full"
    assert len([r for r in caplog.records if "cannot be written" in r.getMessage()]) == 1
    # Nothing of the failed writes was kept, and reads still work.
    (kept,) = await world.service.get_many(world.account, [ConvKey(ConvType.C2C, "before")])
    assert kept.draft is not None
    assert not await world.service.get_many(world.account, [ConvKey(ConvType.C2C, "big0")])


async def test_everysec_syncs_the_wal_on_a_thread_started_with_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on a worker thread the event loop starts later: while writes queue up the loop
    is pinned (convd.placement), and Linux gives a new thread its creator's CPU and policy."""
    synced_on: list[int] = []
    monkeypatch.setattr(
        sqlite_store, "_fsync_wal", lambda wal: synced_on.append(threading.get_ident())
    )
    async with open_store(
        tmp_path / "convd.db", listing=ConvListing(), durability="everysec"
    ) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        await service.set_draft(
            account, ConvKey(ConvType.C2C, "a"), [DraftElement(0, "x")], origin="t"
        )
        with anyio.fail_after(5):
            while not synced_on:
                await anyio.sleep(0.05)
        checkpointer_thread = await run_on_connection_thread(
            store._checkpointer, lambda conn: threading.get_ident()
        )
    assert set(synced_on) == {checkpointer_thread}


async def test_a_write_updates_a_conversation_it_read_in_place_or_else_inserts_it(
    world: World,
) -> None:
    """put_conversation updates a conversation the write has read (no INSERT, so none of its
    triggers); should the row have gone meanwhile (here: deleted behind the transaction's
    back), the upsert writes it again, counted once."""
    await world.draft("bob", "one")
    key = ConvKey(ConvType.C2C, "bob")
    account_id = world.account.id
    statements: list[str] = []

    def operation(tx: Any) -> object:
        current = tx.get_conversation(account_id, key)
        tx._conn.set_trace_callback(statements.append)
        tx.put_conversation(account_id, current)  # read: updated in place
        tx._conn.execute("DELETE FROM conversation WHERE conv_id = 'bob'")
        tx.put_conversation(account_id, current)  # gone: the update finds no row
        tx._conn.set_trace_callback(None)
        return current

    written = await world.store.write(operation)
    # (SQLite traces a statement again for each trigger program it runs: once is enough.)
    verbs = [verb for verb, _ in itertools.groupby(s.split()[0] for s in statements)]
    assert verbs == ["UPDATE", "DELETE", "UPDATE", "INSERT"], statements
    assert await world.service.get_many(world.account, [key]) == [written]
    assert await world.store.count_conversations() == 1


async def test_a_write_that_wrote_and_then_raised_leaves_nothing_behind(world: World) -> None:
    """A refused write is undone whole, what it wrote before raising too: a later write reads
    the conversation as committed, not as the refused write left it, whether the refusal
    came alone or in a batch that ran again with savepoints."""
    await world.draft("bob", "kept")
    key = ConvKey(ConvType.C2C, "bob")
    account_id = world.account.id

    def refused(tx: Any) -> None:
        current = tx.get_conversation(account_id, key)
        tx.put_conversation(account_id, msgspec.structs.replace(current, custom_data="lost"))
        raise DraftRevisionConflict(0, current)

    def read(tx: Any) -> object:
        return tx.get_conversation(account_id, key)

    for _ in range(2):
        batches = world.store.stats.write_batches
        results = await _in_one_held_batch(
            world, world.store.write(refused), world.draft("carol", "x")
        )
        # One batch: run again with a savepoint per write, where the refusal is undone by
        # ROLLBACK TO its own savepoint while carol's write commits.
        assert world.store.stats.write_batches == batches + 1
        assert isinstance(results[0], DraftRevisionConflict)
        await _concurrently(world.store.write(refused))
        current = await world.store.write(read)
        assert current.custom_data == "" and current.draft.texts == ("kept",)  # type: ignore[attr-defined]


async def test_a_batch_takes_at_most_max_batch_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes queued past the bound wait for the next batch: the bound caps how long one
    batch holds the writer, and so its waiters."""
    monkeypatch.setattr(
        sqlite_store, "GroupCommitWriter", functools.partial(GroupCommitWriter, max_batch=3)
    )
    pacing = _RecordedPacing(tmp_path / "convd.db")
    async with _open_world(tmp_path / "convd.db", pacing) as world:
        results = await _in_one_held_batch(world, *(world.draft(f"c{n}", "x") for n in range(7)))
    assert not [r for r in results if isinstance(r, Exception)]
    sizes = [writes for call, writes, _ in pacing.calls if call == "before"]
    assert sizes == [1, 3, 3, 1]  # the login, then the seven queued writes


async def _trace_writer(world: World, trace: Any) -> None:
    """Have SQLite call ``trace`` with each statement the writer's connection runs (before
    running it); None stops that."""
    await world.store._group_commit.run_between_batches(lambda conn: conn.set_trace_callback(trace))


async def test_a_batch_is_one_transaction_with_one_commit(world: World) -> None:
    statements: list[str] = []
    await _trace_writer(world, statements.append)
    try:
        results = await _in_one_held_batch(world, *(world.draft(f"c{n}", "x") for n in range(5)))
    finally:
        await _trace_writer(world, None)
    assert not [r for r in results if isinstance(r, Exception)]
    control = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}
    verbs = [s.split()[0].upper() for s in statements if s.split()[0].upper() in control]
    assert verbs == ["BEGIN", "COMMIT"], statements


async def test_writers_are_answered_and_events_published_only_once_committed(
    world: World,
) -> None:
    """The writer is held right before its COMMIT: until then nobody has an answer, no event
    is out, and another connection sees nothing of the writes."""
    at_commit = threading.Event()
    release = threading.Event()

    def hold_commit(statement: str) -> None:
        if statement == "COMMIT":
            at_commit.set()
            release.wait(10)

    def committed_changes() -> int:
        with closing(sqlite3.connect(world.store._path)) as other:
            return int(other.execute("SELECT count(*) FROM change").fetchone()[0])

    answered: list[int] = []

    async def write(n: int) -> None:
        await world.draft(f"held{n}", "x")
        answered.append(n)

    await _trace_writer(world, hold_commit)
    try:
        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(write, n)
            with anyio.fail_after(5):
                while not at_commit.is_set():
                    await anyio.sleep(0.005)
            await anyio.sleep(0.05)  # room for any answer or event that would come early
            assert answered == [] and world.events == []
            assert committed_changes() == 0
            release.set()
    finally:
        release.set()
        await _trace_writer(world, None)
    assert sorted(answered) == [0, 1, 2]
    assert [c.seq for c in world.events] == [1, 2, 3]
    assert committed_changes() == 3


class _TimedPacing(_IdleOnlyPacing):
    """Records when each batch starts (time.perf_counter, on the writer's thread)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def before_batch(self, writes: int) -> None:
        self.starts.append(time.perf_counter())

    def idle_timeout(self) -> float | None:
        return None

    def idle(self) -> None:
        pass


async def test_a_lone_write_starts_its_batch_without_waiting_for_company(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No artificial delay: a write that reaches an idle writer starts its batch as soon as
    any work handed to the writer's thread would start (paired with such work, so that a
    loaded machine slows both alike)."""
    pacing = _TimedPacing()
    async with _open_world(tmp_path / "convd.db", pacing) as world:
        group_commit = world.store._group_commit
        submitted: list[float] = []
        real_submit = group_commit.submit

        async def timed_submit(operation: Any) -> Any:
            submitted.append(time.perf_counter())
            return await real_submit(operation)

        monkeypatch.setattr(group_commit, "submit", timed_submit)
        write_waits: list[float] = []
        hop_waits: list[float] = []
        ran: list[float] = []
        for n in range(40):
            handed = time.perf_counter()
            await group_commit.run_between_batches(lambda conn: ran.append(time.perf_counter()))
            hop_waits.append(ran[-1] - handed)
            await anyio.sleep(0.002)  # the thread goes back to waiting
            batches = len(pacing.starts)
            await world.draft(f"c{n % 5}", f"text {n}")
            write_waits.append(pacing.starts[batches] - submitted[-1])
            await anyio.sleep(0.002)
    # A batch that waited for company (1 ms or more) would be seen here.
    assert statistics.median(write_waits) < statistics.median(hop_waits) + 0.001, (
        write_waits,
        hop_waits,
    )


async def test_subscribers_are_fed_after_the_write_lock_is_released(world: World) -> None:
    """Whatever a subscriber costs (its event's line, its send) is paid outside the write
    transaction: when the sinks run, another connection can take the write lock at once."""
    lock_free: list[bool] = []

    def try_the_lock(change: Change) -> None:
        with closing(sqlite3.connect(world.store._path, timeout=0, isolation_level=None)) as other:
            try:
                other.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # database is locked
                lock_free.append(False)
            else:
                other.execute("ROLLBACK")
                lock_free.append(True)

    for _ in range(3):  # three subscribers
        world.service._bus.add(world.account.id, try_the_lock)
    for n in range(3):
        await world.draft(f"l{n}", "x")
    assert lock_free == [True] * 9


@pytest.mark.parametrize(("durability", "synchronous"), [("full", 2), ("everysec", 1)])
async def test_each_durability_sets_what_a_commit_waits_for(
    tmp_path: Path, durability: str, synchronous: int
) -> None:
    """In WAL mode, synchronous=FULL (2) fsyncs the WAL in every COMMIT; NORMAL (1) leaves
    that to the store's sync once a second."""
    async with open_store(
        tmp_path / "convd.db", listing=ConvListing(), durability=durability
    ) as store:
        settings = await store._group_commit.run_between_batches(
            lambda conn: (
                conn.execute("PRAGMA synchronous").fetchone()[0],
                conn.execute("PRAGMA journal_mode").fetchone()[0],
            )
        )
    assert settings == (synchronous, "wal")


async def test_everysec_syncs_the_wal_at_least_once_a_second_while_writes_come(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[float] = []
    monkeypatch.setattr(sqlite_store, "_fsync_wal", lambda wal: synced.append(time.monotonic()))
    async with open_store(
        tmp_path / "convd.db", listing=ConvListing(), durability="everysec"
    ) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 2.5:
            n += 1
            await service.set_draft(
                account, ConvKey(ConvType.C2C, "a"), [DraftElement(0, f"{n}")], origin="t"
            )
            await anyio.sleep(0.02)
        last_write = time.monotonic()
        with anyio.fail_after(5):
            while not synced or synced[-1] < last_write:
                await anyio.sleep(0.05)
    # Once a second, give or take the upkeep's quarter-second tick, its checkpoints' own I/O
    # and a loaded machine.
    gaps = [later - earlier for earlier, later in itertools.pairwise([start, *synced])]
    assert max(gaps) <= 2.0, gaps
    assert synced[-1] - last_write <= 2.0
