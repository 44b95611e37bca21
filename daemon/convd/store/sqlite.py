"""The Store on SQLite through aiosqlite: a group-committing writer connection and a reader.

SQL lives here and nowhere else.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Final, TypeVar

import aiosqlite
import anyio
import msgspec

from ..domain import (
    Account,
    BackupFailed,
    BackupInfo,
    Change,
    ChangeKind,
    Conversation,
    ConversationFilter,
    ConversationRow,
    ConvKey,
    ConvType,
    DraftVersion,
    Limits,
    ListedConversations,
    ListingRenderer,
    StorageFailure,
    WriteOperation,
)
from .maintenance import backup_database, fsync_file
from .migrations import MIGRATIONS, SCHEMA_VERSION, list_key_sql, register_functions
from .opening import (
    DatabaseError,
    StartedCheck,
    examine_database,
    forget_clean_close,
    record_clean_close,
)
from .writer import (
    CONV_COLUMNS,
    CONV_TYPES,
    DRAFT_VERSION_COLUMNS,
    BatchPacing,
    GroupCommitWriter,
    Retention,
    StoreStats,
    change_key_range,
    conversation_from_row,
    draft_version_from_row,
    environment_reason,
    list_key_range,
    run_on_connection_thread,
    signed_marks,
    storage_failure,
)

__all__ = [
    "DatabaseError",
    "SqliteStore",
    "filtered_list_query",
    "list_page_statement",
    "open_store",
    "pages_join_in_order",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_snapshot_decoder = msgspec.json.Decoder(Conversation)
# Bound on how long shutdown waits for SQLite to finish a statement.
_CLOSE_TIMEOUT = 10.0
#: How often the WAL is fsynced (durability "everysec") and checked for size ("full").
_SYNC_INTERVAL = 1.0
#: How often the WAL is checkpointed off the writer's thread (durability "everysec").
_CHECKPOINT_INTERVAL = 0.25
#: A WAL larger than this is checkpointed with RESTART, which waits for readers, so that the
#: next write starts it again from the beginning. (A PASSIVE checkpoint never resets a WAL that
#: readers keep using.)
WAL_RESET_BYTES = 16 * 1024 * 1024
#: ... and a WAL file larger than this is then truncated to it. Twice the reset size, so that
#: under continuous writes the file keeps its size and the writer overwrites blocks it already
#: has: trimmed to 8 MiB, every cycle's next 8 MiB of WAL extended the file again (a block
#: allocation in each pwrite, and metadata for each fdatasync to flush). perf showed the
#: writer thread 23 % in pwrite and 3 % in ftruncate with 8 writers; keeping the file gave
#: +25 % writes/s (full) and +11 % (everysec) in paired runs.
_JOURNAL_SIZE_LIMIT = 2 * WAL_RESET_BYTES
#: Each WAL frame is a page and a header of this many bytes.
_WAL_FRAME_HEADER = 24
_CHANGE_KINDS = {int(k): k for k in ChangeKind}


def _change(row: tuple[Any, ...]) -> Change:
    seq, kind, conv_type, conv_id, snapshot, origin = row
    conversation = None if snapshot is None else _snapshot_decoder.decode(snapshot)
    return Change(
        seq, _CHANGE_KINDS[kind], ConvKey(CONV_TYPES[conv_type], conv_id), conversation, origin
    )


def _rendering(table: str) -> str:
    """A conversation of ``table`` (an alias, or "") as a list shows it (ListingRenderer):
    its head, draft document and tail (TEXT, which keeps the bytes as they are)."""
    return f"{table}listed_head || coalesce({table}draft, X'') || {table}listed_tail"


def _row_columns(table: str) -> str:
    """A ConversationRow's columns, in its order."""
    return (
        f"{table}active_time, CAST({_rendering(table)} AS BLOB), {table}conv_type, {table}conv_id"
    )


def _page_columns(table: str) -> str:
    """What _page_statement aggregates of each conversation of a page."""
    return f"{table}active_time AS active_time, {_rendering(table)} AS rendering"


def _page_statement(
    page: tuple[str, list[Any]], following: tuple[str, list[Any]], separator: bytes
) -> tuple[str, list[Any]]:
    """One statement that reads a page: the renderings of ``page`` (rows of _page_columns, in
    list order) joined by ``separator`` in SQLite, not a Python object per conversation, how
    many, the last one's sort key, and whether ``following`` (a query in which ``page.last``
    is the page's last sort key) finds a conversation after it.

    group_concat joins the rows in the order its subquery yields them (SQLite's documents
    call that order arbitrary, but a subquery with ORDER BY and LIMIT is not flattened into
    an aggregate: it runs as a co-routine, in order). tests/unit/test_list_rendering.py
    checks the order of pages against the rows read one by one.
    """
    sql = (
        f"SELECT listed, n, last, EXISTS ({following[0]}) FROM ("
        "SELECT CAST(group_concat(rendering, ?) AS BLOB) AS listed, count(*) AS n, "
        f"min(active_time) AS last FROM ({page[0]})) AS page"
    )
    # Bound in the order of the text: the EXISTS comes first.
    return sql, [*following[1], separator, *page[1]]


#: The unfiltered list: the table itself, in list order (a range of its rowid, list_key).
_NO_FILTER: Final = ConversationFilter()

#: SQL for the list key (writer.list_key) of the conversation at active time ``page.last``
#: of the account whose first list key is its parameter.
_LIST_KEY_OF_LAST: Final = list_key_sql("?", "page.last")


def list_page_statement(
    account_id: int,
    before_active_time: int | None,
    limit: int,
    where: ConversationFilter | None,
    *,
    separator: bytes,
) -> tuple[str, list[Any]]:
    """The statement (and its parameters) that reads a page of the list, filtered by
    ``where`` if given, as one row: the renderings joined by ``separator`` (None: none),
    how many, the last one's sort key, and whether more follow (see _page_statement)."""
    page, following = _page_parts(
        account_id, before_active_time, limit, where, columns=_page_columns
    )
    return _page_statement(page, following, separator)


def _page_parts(
    account_id: int,
    before_active_time: int | None,
    limit: int,
    where: ConversationFilter | None,
    *,
    columns: Callable[[str], str],
) -> tuple[tuple[str, list[Any]], tuple[str, list[Any]]]:
    """A page's query (``columns`` of its conversations, in list order) and the query that
    finds a conversation after ``page.last``, the page's last sort key. No filter is the
    filter without conditions: the table's own range."""
    where = _NO_FILTER if where is None else where
    page = filtered_list_query(account_id, before_active_time, limit, where, columns=columns)
    following = filtered_list_query(account_id, None, 1, where, after_page=True)
    return page, following


#: One of each shape of page statement: each driving index, and the conditions on top (no
#: filter reads as the filter without conditions).
_PLAN_SHAPES: Final = (
    _NO_FILTER,
    ConversationFilter(conv_type=ConvType.GROUP),
    ConversationFilter(conv_type=ConvType.C2C, mark_type=0),
    ConversationFilter(mark_type=0x1),
    ConversationFilter(mark_type=0x1 | 0x4, group="", has_draft=False),
    ConversationFilter(group="g"),
    ConversationFilter(conv_type=ConvType.C2C, mark_type=0x2, group="g", has_draft=True),
    ConversationFilter(has_draft=True),
)


def pages_join_in_order(db: sqlite3.Connection) -> bool:
    """Whether this SQLite feeds group_concat a page's conversations in list order, for every
    shape of page statement: as a co-routine (the page, with its ORDER BY and LIMIT) inside
    the co-routine of the aggregate, neither flattened into it nor materialised. That is
    what _page_statement relies on (SQLite calls group_concat's order arbitrary; 3.40 keeps
    it). Otherwise pages are joined in Python (SqliteStore.list_conversations)."""
    for where in _PLAN_SHAPES:
        for cursor in (None, 1):
            sql, params = list_page_statement(1, cursor, 2, where, separator=b",")
            if not plan_joins_in_order(db.execute("EXPLAIN QUERY PLAN " + sql, params)):
                return False
    return True


def plan_joins_in_order(plan: Iterable[tuple[Any, ...]]) -> bool:
    """Whether EXPLAIN QUERY PLAN rows ``(id, parent, _, detail)`` of a page statement read
    the page as a co-routine inside another co-routine, with nothing materialised or sorted."""
    steps = [(int(row[0]), int(row[1]), str(row[-1])) for row in plan]
    coroutines = {step_id for step_id, _, detail in steps if detail.startswith("CO-ROUTINE")}
    nested = any(
        parent in coroutines and detail.startswith("CO-ROUTINE") for _, parent, detail in steps
    )
    unordered = any("MATERIALIZE" in d or "TEMP B-TREE" in d for _, _, d in steps)
    return nested and not unordered


_GROUP_ID = "(SELECT id FROM conversation_group WHERE account_id = ? AND name = ?)"


def filtered_list_query(
    account_id: int,
    before_active_time: int | None,
    limit: int,
    where: ConversationFilter,
    *,
    columns: Callable[[str], str] = _row_columns,
    after_page: bool = False,
) -> tuple[str, list[Any]]:
    """The SQL (and its parameters) of one page of a filtered list: ``columns`` of each
    conversation (given the table's alias), in list order. ``after_page``: the conversations
    after ``page.last`` instead of ``before_active_time`` (_page_statement's ``following``).

    The page is read through one index in list order (active_time descending), chosen by the
    filter's most selective condition: a group's member rows, one mark's rows (their lowest
    bit), the partial index of drafts or of group conversations, or the table itself (stored
    in list order). The other conditions are
    checked on the rows that index yields, so a page reads the driving set's rows down to its
    last row only.
    ``tests/unit/test_filter_plan.py`` checks each plan with EXPLAIN QUERY PLAN.
    """
    conditions: list[str] = []
    params: list[Any] = []
    mark = where.mark_type
    # Whether the driving range ends at the cursor itself (the table's rowid range does).
    cursor_in_range = False
    # The driving index: (FROM clause, its params, the column in list order: active_time,
    # or the table's own list_key).
    if where.group:
        source = (
            "conversation_group_member AS m CROSS JOIN conversation AS c "
            "ON c.account_id = m.account_id AND c.conv_type = m.conv_type "
            f"AND c.conv_id = m.conv_id AND m.group_id = {_GROUP_ID}"
        )
        params += [account_id, where.group]
        order = "m.active_time"
        conditions.append("c.account_id = ?")
        params.append(account_id)
    elif mark:
        lowest = mark & -mark
        source = (
            "conversation_mark AS m CROSS JOIN conversation AS c "
            "ON c.account_id = m.account_id AND c.conv_type = m.conv_type "
            "AND c.conv_id = m.conv_id AND m.account_id = ? AND m.mark = ?"
        )
        params += [account_id, signed_marks(lowest)]
        order = "m.active_time"
    else:
        # The few (drafts, group conversations) through their partial index; the many (C2C,
        # no draft, unmarked, in no group) or no condition: the table itself, stored in list
        # order (a range of its rowid, list_key: schema 12), skipping the few.
        index: str | None = None
        if where.has_draft is True:
            index = "conversation_drafts_in_order"
        elif where.conv_type is ConvType.GROUP:
            index = "conversation_groups_in_order"
        source = "conversation AS c" + ("" if index is None else f" INDEXED BY {index}")
        if index is None:
            # The account's range of the rowid, up to the cursor or the page's last row.
            order = "c.list_key"
            low, high = list_key_range(account_id, before_active_time)
            if after_page:
                conditions.append(f"c.list_key >= ? AND c.list_key < {_LIST_KEY_OF_LAST}")
                params += [low, low]
            else:
                conditions.append("c.list_key >= ? AND c.list_key < ?")
                params += [low, high]
            cursor_in_range = True
        else:
            order = "c.active_time"
            conditions.append("c.account_id = ?")
            params.append(account_id)
    if where.conv_type is not None:
        # A literal, not a parameter: only then can the planner prove the partial index's
        # WHERE (conv_type = 2) from the query's.
        conditions.append(f"c.conv_type = {int(where.conv_type)}")
    if mark == 0:
        conditions.append("c.marks = 0")
    elif mark is not None and (where.group or mark & (mark - 1)):
        # Not read through this mark's rows, or more than one mark (read through the lowest
        # one's rows): the row must carry all of them.
        conditions.append("(c.marks & ?) = ?")
        params += [signed_marks(mark), signed_marks(mark)]
    if where.group == "":
        conditions.append("c.conv_groups IS NULL")
    if where.has_draft is not None:
        # The partial index's own WHERE, so that conversation_drafts_in_order serves it.
        conditions.append("c.draft IS NOT NULL" if where.has_draft else "c.draft IS NULL")
    if not cursor_in_range:
        if after_page:
            conditions.append(f"{order} < page.last")
        elif before_active_time is not None:
            conditions.append(f"{order} < ?")
            params.append(before_active_time)
    sql = f"SELECT {columns('c.')} FROM {source}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += f" ORDER BY {order} DESC LIMIT ?"
    params.append(limit)
    return sql, params


class SqliteStore:
    """Implements the domain's Store protocol.

    Writes go through one GroupCommitWriter on the writer connection; reads use a second
    connection (its own thread), so they never queue behind a batch's fsync.
    """

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        history_id: str,
        checkpointer: aiosqlite.Connection,
        *,
        listing: ListingRenderer,
        retention: Retention,
        pages_join_in_order: bool = True,
        page_size: int = 4096,
        durability: str = "full",
        writer_thread_start: Callable[[], None] | None = None,
        writer_pacing: BatchPacing | None = None,
        worker_thread_start: Callable[[], None] | None = None,
        daemon_files: Mapping[Path, str] | None = None,
    ) -> None:
        self._path = path
        self._worker_thread_start = worker_thread_start
        self._daemon_files = dict(daemon_files or {})
        self._writer = writer
        self._reader = reader
        self.history_id = history_id
        self.durability = durability
        #: The database's page size: a WAL frame is a page and a header.
        self._page_size = page_size
        self.stats = StoreStats()
        self._checkpointer = checkpointer
        self._listing = listing
        #: Whether SQLite joins list pages (see pages_join_in_order); else Python does.
        self.pages_join_in_order = pages_join_in_order
        self._group_commit = GroupCommitWriter(
            writer,
            retention=retention,
            listing=listing,
            stats=self.stats,
            on_thread_start=writer_thread_start,
            pacing=writer_pacing,
        )
        # Bounds the draft history's reads, as its writes are bounded (and by the same clock).
        self._draft_retention = retention

    async def run(self) -> None:
        """The store's background work: the writer, and the WAL's upkeep. Runs until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._group_commit.run)
            tg.start_soon(self._maintain_wal)

    async def write(self, operation: WriteOperation[T]) -> T:
        return await self._group_commit.submit(operation)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self.stats.reader_thread_hops += 1
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            self.stats.database_errors += 1
            if environment_reason(exc) is None:
                raise
            raise storage_failure(exc) from exc

    async def find_account(self, sdk_app_id: int, user_id: str) -> Account | None:
        rows = await self._read(
            "SELECT id FROM account WHERE sdk_app_id = ? AND user_id = ?", (sdk_app_id, user_id)
        )
        for (account_id,) in rows:
            return Account(account_id, sdk_app_id, user_id)
        return None

    async def get_conversations(
        self, account_id: int, keys: Sequence[ConvKey]
    ) -> list[Conversation]:
        if not keys:
            return []
        # One statement for the whole batch: a VALUES list joined on the key's unique index.
        values = ", ".join("(?, ?)" for _ in keys)
        params: list[Any] = []
        for key in keys:
            params.extend((int(key.conv_type), key.conv_id))
        params.append(account_id)
        columns = ", ".join("c." + column.strip() for column in CONV_COLUMNS.split(","))
        rows = await self._read(
            f"WITH wanted (conv_type, conv_id) AS (VALUES {values}) "
            f"SELECT {columns} FROM wanted JOIN conversation AS c "
            "ON c.conv_type = wanted.conv_type AND c.conv_id = wanted.conv_id "
            "AND c.account_id = ?",
            params,
        )
        return [conversation_from_row(row) for row in rows]

    async def list_conversations(
        self,
        account_id: int,
        before_active_time: int | None,
        limit: int,
        *,
        where: ConversationFilter | None = None,
    ) -> ListedConversations:
        listing = self._listing
        if not self.pages_join_in_order:
            return await self._list_row_by_row(account_id, before_active_time, limit, where)
        joined, count, last, more = (
            await self._read(
                *list_page_statement(
                    account_id, before_active_time, limit, where, separator=listing.separator
                )
            )
        )[0]
        return ListedConversations(listing.page(joined or b""), count, last, bool(more))

    async def _list_row_by_row(
        self,
        account_id: int,
        before_active_time: int | None,
        limit: int,
        where: ConversationFilter | None,
    ) -> ListedConversations:
        """list_conversations where SQLite's group_concat might not keep the list's order
        (pages_join_in_order): the page's renderings read in order, joined here."""
        page, following = _page_parts(
            account_id, before_active_time, limit, where, columns=_row_columns
        )
        rows = await self._read(*page)
        if not rows:
            return ListedConversations(self._listing.page(b""), 0, None, False)
        last = int(rows[-1][0])
        more = await self._read(
            f"SELECT EXISTS ({following[0]}) FROM (SELECT ? AS last) AS page",
            [*following[1], last],
        )
        joined = self._listing.separator.join(row[1] for row in rows)
        return ListedConversations(self._listing.page(joined), len(rows), last, bool(more[0][0]))

    async def list_conversation_rows(
        self, account_id: int, before_active_time: int | None, limit: int
    ) -> list[ConversationRow]:
        rows = await self._read(
            *filtered_list_query(account_id, before_active_time, limit, _NO_FILTER)
        )
        return [ConversationRow._make(row) for row in rows]

    async def list_groups(self, account_id: int) -> list[str]:
        rows = await self._read(
            "SELECT name FROM conversation_group WHERE account_id = ? ORDER BY id", (account_id,)
        )
        return [str(name) for (name,) in rows]

    async def count_conversations(self) -> int:
        # Kept per account by triggers (schema version 3): a few rows, whatever their size.
        rows = await self._read("SELECT coalesce(sum(conversations), 0) FROM account")
        return int(next(iter(rows))[0])

    async def current_seq(self, account_id: int) -> int:
        return (await self._account_seqs(account_id))[0]

    async def oldest_kept_seq(self, account_id: int) -> int:
        return (await self._account_seqs(account_id))[1]

    async def changes_after(self, account_id: int, seq: int, limit: int) -> list[Change]:
        rows = await self._read(
            "SELECT seq, kind, conv_type, conv_id, snapshot, origin FROM change "
            "WHERE change_key >= ? AND change_key < ? ORDER BY change_key LIMIT ?",
            (*change_key_range(account_id, seq), limit),
        )
        return [_change(tuple(row)) for row in rows]

    async def draft_history(self, account_id: int, key: ConvKey, limit: int) -> list[DraftVersion]:
        retention = self._draft_retention
        rows = await self._read(
            f"SELECT {DRAFT_VERSION_COLUMNS} FROM draft_history "
            "WHERE account_id = ? AND conv_type = ? AND conv_id = ? AND replaced_at >= ? "
            "ORDER BY revision DESC LIMIT ?",
            (
                account_id,
                int(key.conv_type),
                key.conv_id,
                retention.draft_cutoff(int(retention.clock())),
                max(0, min(limit, retention.draft_versions)),
            ),
        )
        return [draft_version_from_row(tuple(row)) for row in rows]

    async def backup(self, target: Path, *, overwrite: bool) -> BackupInfo:
        # A fresh connection in a worker thread: neither the reader nor the writer waits.
        def back_up() -> BackupInfo:
            if self._worker_thread_start is not None:
                self._worker_thread_start()
            return backup_database(
                self._path, target, overwrite=overwrite, daemon_files=self._daemon_files
            )

        try:
            return await anyio.to_thread.run_sync(back_up)
        except BackupFailed as exc:
            if exc.database_failed:
                self.stats.database_errors += 1  # maybe a page it could not read: check at start
            raise

    async def _account_seqs(self, account_id: int) -> tuple[int, int]:
        rows = await self._read(
            "SELECT last_seq, pruned_seq FROM account WHERE id = ?", (account_id,)
        )
        for last_seq, pruned_seq in rows:
            return int(last_seq), int(pruned_seq)
        return 0, 0

    # -- the WAL ---------------------------------------------------------------------------

    async def _sync_wal(self, wal: Path) -> None:
        # On the checkpointer's own thread, which exists from the start: a worker thread
        # started now by the event loop would inherit the CPU and the policy that
        # placement.SharedCpu gives the loop while writes queue up, and keep them.
        await run_on_connection_thread(self._checkpointer, lambda conn: _fsync_wal(wal))

    async def _maintain_wal(self) -> None:
        """Keep the WAL bounded and, with durability "everysec", fsync it once a second.

        SQLite's automatic checkpoint is off: a third connection copies the WAL back (PASSIVE,
        beside the writer and readers) four times a second; with "everysec", after the WAL's
        fsync. In the writer's commits a checkpoint held every waiting write behind a copy of
        the WAL and an fsync of the database file ("everysec": of megabytes of WAL too,
        commits measured stalling up to 300 ms; "full": 8 writers reached 1,800 writes/s
        instead of 2,300 in one bench run).

        Under continuous writes a checkpoint beside the writer, or one that readers hold
        back, never lets the WAL start again from the beginning, and the file grows (a
        prototype reached 163 MB in 3 s). Past WAL_RESET_BYTES the writer's connection runs a
        RESTART checkpoint between two batches (little is left to copy by then), which waits
        for readers to leave the WAL; the next write starts it from the beginning, over the
        blocks the file already has (journal_size_limit trims it only past twice that size).

        What is measured is the WAL's content (its frames, as the PASSIVE checkpoint counts
        them), not the file: the file keeps its size once it has grown, and measured by it,
        every check after the first restart restarted again -- ~5 ms of the writer's thread
        four times a second, at any rate of writes, and a wake-up of an idle daemon.
        """
        wal = self._path.with_name(self._path.name + "-wal")
        everysec = self.durability == "everysec"
        interval = _CHECKPOINT_INTERVAL
        synced_writes = checked_writes = 0
        last_sync = time.monotonic()
        reset_frames = WAL_RESET_BYTES // (self._page_size + _WAL_FRAME_HEADER)
        while True:
            await anyio.sleep(interval)
            writes = self.stats.writes
            try:
                due = time.monotonic() - last_sync >= _SYNC_INTERVAL - interval
                if everysec and writes != synced_writes and due:
                    await self._sync_wal(wal)
                    synced_writes, last_sync = writes, time.monotonic()
                if writes != checked_writes:
                    rows = await self._checkpointer.execute_fetchall(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    )
                    _, wal_frames, _ = next(iter(rows))
                    # -1: the checkpoint could not run; a RESTART that readers held up past
                    # the busy timeout did not restart. Either is tried again next time.
                    if wal_frames > reset_frames:
                        if await self._group_commit.run_between_batches(_restart_wal):
                            self.stats.wal_restarts += 1
                            checked_writes = writes
                    elif wal_frames >= 0:
                        checked_writes = writes
            except (OSError, sqlite3.Error, StorageFailure) as exc:
                self.stats.database_errors += 1  # the next start checks the file
                logger.warning("WAL upkeep of %s failed: %s", wal, exc)


def _restart_wal(conn: sqlite3.Connection) -> bool:
    """Checkpoint the whole WAL so that the next write starts it again; False if readers
    kept it busy (past the connection's busy timeout)."""
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    return not busy


def _fsync_wal(wal: Path) -> None:
    # fsync flushes the file's (inode's) dirty pages whichever descriptor asks: SQLite's own
    # writes to the WAL become durable without holding up the writer thread.
    with suppress(FileNotFoundError):
        fsync_file(wal)


#: SQLite's page cache per connection, in KiB (a negative PRAGMA cache_size). The default
#: (2 MB) held a tenth of an account of 100,000 conversations (21 MB at schema 10): random
#: reads went back to the file. 32 MB holds that account's conversations and indexes at
#: schema 10, and the hot part of them since schema 11's renderings (64-100 MB in all); the OS
#: page cache holds the rest. A 128 MB cache was measured no faster there (conv.get of 100
#: random ids at 100,000: 1.9 against 2.1 ms, one run each): what grows with the account is
#: the depth of the searches, not reads of the file. The writer touches a few pages per write
#: (and keeps the hot ones). A cache grows only as pages are read, so a small database costs
#: what it uses: at most ~40 MB more RSS in all.
_READER_CACHE_KIB = 32 * 1024
_WRITER_CACHE_KIB = 8 * 1024
#: Memory-mapped reads stay off (SQLite's default, set explicitly): they were no faster than
#: a warm cache in bench runs, and an I/O error or a file truncated behind convd's back would
#: kill the daemon with SIGBUS instead of failing one request.
_MMAP_BYTES = 0


async def _tune(db: aiosqlite.Connection, cache_kib: int) -> None:
    await db.execute_fetchall(f"PRAGMA cache_size = -{cache_kib}")
    await db.execute_fetchall(f"PRAGMA mmap_size = {_MMAP_BYTES}")
    await db.execute_fetchall("PRAGMA foreign_keys = ON")


async def _configure(db: aiosqlite.Connection, durability: str) -> None:
    # WAL lets the reader see committed data while the writer works. synchronous=FULL fsyncs
    # the WAL on every COMMIT (an acknowledged write survives a power cut); NORMAL leaves the
    # COMMIT in the OS (it survives a crash of convd) and syncs at checkpoints.
    await db.execute_fetchall("PRAGMA journal_mode = WAL")
    synchronous = "FULL" if durability == "full" else "NORMAL"
    await db.execute_fetchall(f"PRAGMA synchronous = {synchronous}")
    await db.execute_fetchall(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
    # SqliteStore._maintain_wal checkpoints on another connection instead of the writer's
    # commits: a checkpoint there held every waiting write behind a copy of the WAL and an
    # fsync of the database file.
    await db.execute_fetchall("PRAGMA wal_autocheckpoint = 0")
    await _tune(db, _WRITER_CACHE_KIB)


async def migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Bring the schema to ``SCHEMA_VERSION``; refuse a database from a newer convd.

    Every pending step runs in one transaction: a new database goes from empty to the current
    schema (application_id included) at once, and a failed upgrade leaves the old one as it was.
    """
    rows = await db.execute_fetchall("PRAGMA user_version")
    version = int(next(iter(rows))[0])
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{path} has schema version {version}, newer than this convd understands "
            f"({SCHEMA_VERSION}); upgrade convd"
        )
    if version == SCHEMA_VERSION:
        return
    if version:
        logger.info("migrating %s from schema version %d to %d", path, version, SCHEMA_VERSION)
    await run_on_connection_thread(db, register_functions)
    steps = "".join(f"{script};\n" for script in MIGRATIONS[version:])
    # A migrated row may render differently: _render_listing renders them all again.
    await db.executescript(
        f"BEGIN IMMEDIATE; {steps} DELETE FROM meta WHERE key = 'listing'; "
        f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    )


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Create the file 0600 before SQLite opens it; SQLite gives -wal and -shm the same mode.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)
    # Drafts are private: tighten a database (or WAL) that someone made readable by others.
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = os.stat(name).st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            logger.warning("%s had mode %04o; setting it to 0600", name, mode)
            os.chmod(name, 0o600)


@asynccontextmanager
async def open_store(
    path: Path,
    *,
    kept_changes: int = 10_000,
    kept_seconds: int = 0,
    durability: str = "full",
    clock: Callable[[], float] = time.time,
    draft_history: int = Limits.draft_history,
    draft_history_seconds: int = Limits.draft_history_seconds,
    listing: ListingRenderer,
    check: StartedCheck | None = None,
    writer_thread_start: Callable[[], None] | None = None,
    writer_pacing: BatchPacing | None = None,
    worker_thread_start: Callable[[], None] | None = None,
    daemon_files: Mapping[Path, str] | None = None,
) -> AsyncIterator[SqliteStore]:
    """Open the database at ``path``: check it (read-only), then create or migrate it.

    ``listing`` renders each conversation as list pages show it; the store keeps that with
    the conversation (see ListingRenderer), and renders them all again when it opens a
    database whose renderings another renderer made.

    Only a missing or empty file is created; anything but a sound convd database is refused
    with DatabaseError before a byte of it is written (see ``opening.examine_database``); a
    clean close after a run in which SQLite reported no error stamps the file so that the
    next start need not check it again (see ``opening.record_clean_close``).
    ``check``: that check of ``path``, already started (``convd serve`` starts it early).
    ``writer_thread_start``: called on the writer's own thread, first; ``writer_pacing``:
    on that thread around each batch and while it waits (see ``writer.BatchPacing``);
    ``worker_thread_start``: on a worker thread the event loop starts later (a backup's),
    before its work. ``daemon_files``: files of the running daemon that a backup must never
    replace, each with what it is ("the daemon's socket"); the database's own are refused
    anyway.
    """
    verdict = examine_database(path) if check is None else check.verdict()
    forget_clean_close(path)
    try:
        _create_private(path)
    except OSError as exc:
        raise DatabaseError(f"cannot create the database {path}: {exc.strerror or exc}") from None
    async with AsyncExitStack() as stack:
        try:
            # No implicit transactions: the group commit writes BEGIN IMMEDIATE (taking the
            # write lock up front, so WAL never answers SQLITE_BUSY on upgrade), its
            # savepoints and COMMIT itself.
            writer = await aiosqlite.connect(path, isolation_level=None, timeout=5.0)
            stack.push_async_callback(_close, writer)
            await _configure(writer, durability)
            await migrate(writer, path)
            await _render_listing(writer, listing)
            reader = await aiosqlite.connect(path, isolation_level=None, timeout=5.0)
            stack.push_async_callback(_close, reader)
            await _tune(reader, _READER_CACHE_KIB)
            rows = await reader.execute_fetchall("SELECT value FROM meta WHERE key = 'history_id'")
            page_size = next(iter(await reader.execute_fetchall("PRAGMA page_size")))[0]
            in_order = await run_on_connection_thread(reader, pages_join_in_order)
            if not in_order:
                logger.warning(
                    "SQLite %s may not keep the order of a list page's conversations in "
                    "group_concat: pages are joined in Python (slower)",
                    sqlite3.sqlite_version,
                )
            # Checkpoints on their own connection and thread, not inside the writer's commits.
            checkpointer = await aiosqlite.connect(path, isolation_level=None, timeout=5.0)
            stack.push_async_callback(_close, checkpointer)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot use the database {path}: {exc}") from exc
        store = SqliteStore(
            path,
            writer,
            reader,
            str(next(iter(rows))[0]),
            checkpointer,
            listing=listing,
            retention=Retention(
                kept_changes,
                kept_seconds,
                clock,
                draft_versions=draft_history,
                draft_seconds=draft_history_seconds,
            ),
            pages_join_in_order=in_order,
            page_size=int(page_size),
            durability=durability,
            writer_thread_start=writer_thread_start,
            writer_pacing=writer_pacing,
            worker_thread_start=worker_thread_start,
            daemon_files=daemon_files,
        )
        async with anyio.create_task_group() as background:
            background.start_soon(store.run)
            yield store
            background.cancel_scope.cancel()
    # A clean close: every connection is closed (the last one checkpointed the WAL and removed
    # it), and SQLite reported no error on the way (reads, writes, WAL upkeep, backups). The
    # next start may skip its quick_check while the file stays exactly as it is now
    # (opening.record_clean_close).
    if verdict.checked_at is not None and store.stats.database_errors == 0:
        record_clean_close(path, verdict.checked_at)


#: Conversations rendered per statement when start-up renders every one again.
_RENDER_CHUNK = 1000


async def _render_listing(db: aiosqlite.Connection, listing: ListingRenderer) -> None:
    """Render every conversation for list pages, in one transaction, unless meta 'listing'
    says the stored renderings are ``listing``'s (a new database, or the same convd)."""
    fingerprint = listing.fingerprint
    rows = await db.execute_fetchall("SELECT value FROM meta WHERE key = 'listing'")
    if any(row[0] == fingerprint for row in rows):
        return
    await db.execute("BEGIN IMMEDIATE")
    try:
        after = -1
        while True:
            # In rowid order, a chunk at a time: the renderings do not move a row.
            chunk = list(
                await db.execute_fetchall(
                    f"SELECT list_key, {CONV_COLUMNS} FROM conversation "
                    "WHERE list_key > ? ORDER BY list_key LIMIT ?",
                    (after, _RENDER_CHUNK),
                )
            )
            if not chunk:
                break
            await db.executemany(
                "UPDATE conversation SET listed_head = ?, listed_tail = ? WHERE list_key = ?",
                [(*listing.render(conversation_from_row(row[1:])), row[0]) for row in chunk],
            )
            after = chunk[-1][0]
        await db.execute(
            "INSERT INTO meta (key, value) VALUES ('listing', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (fingerprint,),
        )
        await db.execute("COMMIT")
    except BaseException:
        with anyio.CancelScope(shield=True):
            if db.in_transaction:
                await db.execute("ROLLBACK")
        raise


async def _close(db: aiosqlite.Connection) -> None:
    # An unclosed aiosqlite connection keeps its (non-daemon) thread, and the process, alive.
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
        await db.close()
