"""The Store on SQLite through aiosqlite: one writer connection behind a lock, one reader.

SQL lives here and nowhere else.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import msgspec

from ..domain import (
    Account,
    BackupInfo,
    Change,
    ChangeKind,
    Conversation,
    ConvKey,
    ConvType,
    Draft,
)
from .maintenance import backup_database
from .migrations import MIGRATIONS, SCHEMA_VERSION
from .opening import DatabaseError, check_database

__all__ = ["DatabaseError", "SqliteStore", "open_store"]

logger = logging.getLogger(__name__)

_CONV_COLUMNS = (
    "conv_type, conv_id, order_key, is_pinned, unread_num, draft_texts, draft_user_define, "
    "draft_edit_time, draft_revision"
)
_texts_decoder = msgspec.json.Decoder(tuple[str, ...])
_snapshot_decoder = msgspec.json.Decoder(Conversation)
_encoder = msgspec.json.Encoder()
# Bound on how long shutdown waits for SQLite to finish a statement.
_CLOSE_TIMEOUT = 10.0


def _conversation(row: sqlite3.Row | tuple[Any, ...]) -> Conversation:
    conv_type, conv_id, order_key, is_pinned, unread, texts, user_define, edit_time, rev = row
    draft = (
        None
        if texts is None
        else Draft(_texts_decoder.decode(texts), user_define or "", edit_time or 0)
    )
    return Conversation(
        ConvType(conv_type), conv_id, order_key, bool(is_pinned), draft, rev, unread
    )


def _change(row: tuple[Any, ...]) -> Change:
    seq, kind, conv_type, conv_id, snapshot, origin = row
    conversation = None if snapshot is None else _snapshot_decoder.decode(snapshot)
    return Change(
        seq, ChangeKind(kind), ConvKey(ConvType(conv_type), conv_id), conversation, origin
    )


class _Transaction:
    """A StoreTransaction on the writer connection; only valid inside ``SqliteStore.write``."""

    def __init__(self, db: aiosqlite.Connection, kept_changes: int) -> None:
        self._db = db
        self._kept_changes = kept_changes
        self.callbacks: list[Callable[[], None]] = []

    async def get_conversation(self, account_id: int, key: ConvKey) -> Conversation | None:
        rows = await self._db.execute_fetchall(
            f"SELECT {_CONV_COLUMNS} FROM conversation "
            "WHERE account_id = ? AND conv_type = ? AND conv_id = ?",
            (account_id, int(key.conv_type), key.conv_id),
        )
        for row in rows:
            return _conversation(row)
        return None

    async def count_pinned(self, account_id: int) -> int:
        rows = await self._db.execute_fetchall(
            "SELECT count(*) FROM conversation WHERE account_id = ? AND is_pinned = 1",
            (account_id,),
        )
        return int(next(iter(rows))[0])

    async def current_seq(self, account_id: int) -> int:
        rows = await self._db.execute_fetchall(
            "SELECT last_seq FROM account WHERE id = ?", (account_id,)
        )
        return int(next(iter(rows))[0])

    async def next_seq(self, account_id: int) -> int:
        rows = await self._db.execute_fetchall(
            "UPDATE account SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
            (account_id,),
        )
        return int(next(iter(rows))[0])

    async def put_conversation(self, account_id: int, conversation: Conversation) -> None:
        draft = conversation.draft
        await self._db.execute_fetchall(
            f"INSERT OR REPLACE INTO conversation (account_id, {_CONV_COLUMNS}, active_time) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                account_id,
                int(conversation.conv_type),
                conversation.conv_id,
                conversation.order_key,
                int(conversation.is_pinned),
                conversation.unread_num,
                None if draft is None else _encoder.encode(draft.texts).decode(),
                None if draft is None else draft.user_define,
                None if draft is None else draft.edit_time,
                conversation.draft_revision,
                conversation.active_time,
            ),
        )

    async def delete_conversation(self, account_id: int, key: ConvKey) -> None:
        await self._db.execute_fetchall(
            "DELETE FROM conversation WHERE account_id = ? AND conv_type = ? AND conv_id = ?",
            (account_id, int(key.conv_type), key.conv_id),
        )

    async def append_change(self, account_id: int, change: Change) -> None:
        snapshot = None if change.conversation is None else _encoder.encode(change.conversation)
        await self._db.execute_fetchall(
            "INSERT INTO change (account_id, seq, kind, conv_type, conv_id, snapshot, origin) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                account_id,
                change.seq,
                int(change.kind),
                int(change.key.conv_type),
                change.key.conv_id,
                snapshot,
                change.origin,
            ),
        )
        # Prune in steps rather than on every write: one DELETE per tenth of what is kept.
        if change.seq % max(1, min(1000, self._kept_changes // 10)) == 0 and (
            change.seq > self._kept_changes
        ):
            horizon = change.seq - self._kept_changes
            await self._db.execute_fetchall(
                "DELETE FROM change WHERE account_id = ? AND seq <= ?", (account_id, horizon)
            )
            await self._db.execute_fetchall(
                "UPDATE account SET pruned_seq = max(pruned_seq, ?) WHERE id = ?",
                (horizon, account_id),
            )

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)


class SqliteStore:
    """Implements the domain's Store protocol."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        kept_changes: int,
        history_id: str,
    ) -> None:
        self._path = path
        self._writer = writer
        self._reader = reader
        self._kept_changes = kept_changes
        self.history_id = history_id
        # aiosqlite runs one connection's statements on one thread, but two tasks would
        # interleave statements inside each other's transactions: one writer at a time.
        self._write_lock = anyio.Lock()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_Transaction]:
        async with self._write_lock:
            # No BEGIN here: the writer connection opens its transaction (BEGIN IMMEDIATE) by
            # itself, in the same thread hop as the first write statement. The reads before
            # it are still consistent, as this lock makes this the database's only writer; a
            # write that turns out to change nothing costs no transaction at all.
            tx = _Transaction(self._writer, self._kept_changes)
            try:
                yield tx
            except BaseException:
                # A cancelled await does not stop SQLite's thread: finish the rollback even
                # when cancelled, or the next writer would run inside this transaction.
                # (rollback() queues behind any statement still running; it is a no-op when
                # no transaction was opened.)
                with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                    await self._writer.rollback()
                raise
            if self._writer.in_transaction:
                try:
                    with anyio.CancelScope(shield=True):
                        await self._writer.commit()
                except BaseException:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                        await self._writer.rollback()
                    raise
            # Still under the lock: events leave in commit order, and only after commit.
            for callback in tx.callbacks:
                callback()

    async def get_account(self, sdk_app_id: int, user_id: str) -> Account:
        rows = await self._reader.execute_fetchall(
            "SELECT id FROM account WHERE sdk_app_id = ? AND user_id = ?", (sdk_app_id, user_id)
        )
        for (account_id,) in rows:
            return Account(account_id, sdk_app_id, user_id)
        async with self.write():
            rows = await self._writer.execute_fetchall(
                "INSERT INTO account (sdk_app_id, user_id) VALUES (?, ?) "
                "ON CONFLICT (sdk_app_id, user_id) DO UPDATE SET user_id = excluded.user_id "
                "RETURNING id",
                (sdk_app_id, user_id),
            )
            return Account(int(next(iter(rows))[0]), sdk_app_id, user_id)

    async def get_conversation(self, account_id: int, key: ConvKey) -> Conversation | None:
        found = await self.get_conversations(account_id, [key])
        return found[0] if found else None

    async def get_conversations(
        self, account_id: int, keys: Sequence[ConvKey]
    ) -> list[Conversation]:
        if not keys:
            return []
        # One statement for the whole batch: a VALUES list joined on the primary key.
        values = ", ".join("(?, ?)" for _ in keys)
        params: list[Any] = []
        for key in keys:
            params.extend((int(key.conv_type), key.conv_id))
        params.append(account_id)
        columns = ", ".join("c." + column.strip() for column in _CONV_COLUMNS.split(","))
        rows = await self._reader.execute_fetchall(
            f"WITH wanted (conv_type, conv_id) AS (VALUES {values}) "
            f"SELECT {columns} FROM wanted JOIN conversation AS c "
            "ON c.conv_type = wanted.conv_type AND c.conv_id = wanted.conv_id "
            "AND c.account_id = ?",
            params,
        )
        return [_conversation(row) for row in rows]

    async def list_conversations(
        self, account_id: int, before_active_time: int | None, limit: int
    ) -> list[Conversation]:
        if before_active_time is None:
            rows = await self._reader.execute_fetchall(
                f"SELECT {_CONV_COLUMNS} FROM conversation WHERE account_id = ? "
                "ORDER BY active_time DESC LIMIT ?",
                (account_id, limit),
            )
        else:
            rows = await self._reader.execute_fetchall(
                f"SELECT {_CONV_COLUMNS} FROM conversation "
                "WHERE account_id = ? AND active_time < ? ORDER BY active_time DESC LIMIT ?",
                (account_id, before_active_time, limit),
            )
        return [_conversation(row) for row in rows]

    async def count_conversations(self) -> int:
        # Kept per account by triggers (schema version 3): a few rows, whatever their size.
        rows = await self._reader.execute_fetchall(
            "SELECT coalesce(sum(conversations), 0) FROM account"
        )
        return int(next(iter(rows))[0])

    async def current_seq(self, account_id: int) -> int:
        return (await self._account_seqs(account_id))[0]

    async def oldest_kept_seq(self, account_id: int) -> int:
        return (await self._account_seqs(account_id))[1]

    async def changes_after(self, account_id: int, seq: int, limit: int) -> list[Change]:
        rows = await self._reader.execute_fetchall(
            "SELECT seq, kind, conv_type, conv_id, snapshot, origin FROM change "
            "WHERE account_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (account_id, seq, limit),
        )
        return [_change(tuple(row)) for row in rows]

    async def backup(self, target: Path, *, overwrite: bool) -> BackupInfo:
        # A fresh connection in a worker thread: neither the reader nor the writer waits.
        return await anyio.to_thread.run_sync(
            lambda: backup_database(self._path, target, overwrite=overwrite)
        )

    async def _account_seqs(self, account_id: int) -> tuple[int, int]:
        rows = await self._reader.execute_fetchall(
            "SELECT last_seq, pruned_seq FROM account WHERE id = ?", (account_id,)
        )
        for last_seq, pruned_seq in rows:
            return int(last_seq), int(pruned_seq)
        return 0, 0


#: SQLite's page cache per connection, in KiB (a negative PRAGMA cache_size). The default
#: (2 MB) holds a tenth of the database of an account with 100,000 conversations (about 21 MB
#: with its change history): random reads went back to the file. The reader's cache holds all
#: of it; the writer touches a few pages per write (and keeps the hot ones). A cache grows only
#: as pages are read, so a small database costs what it uses: at most ~40 MB more RSS in all.
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
    steps = "".join(f"{script};\n" for script in MIGRATIONS[version:])
    await db.executescript(
        f"BEGIN IMMEDIATE; {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
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
    path: Path, *, kept_changes: int = 10_000, durability: str = "full"
) -> AsyncIterator[SqliteStore]:
    """Open the database at ``path``: check it (read-only), then create or migrate it.

    Only a missing or empty file is created; anything but a sound convd database is refused
    with DatabaseError before a byte of it is written (see ``opening.check_database``).
    """
    check_database(path)
    try:
        _create_private(path)
    except OSError as exc:
        raise DatabaseError(f"cannot create the database {path}: {exc.strerror or exc}") from None
    async with AsyncExitStack() as stack:
        try:
            # "IMMEDIATE": sqlite3 sends BEGIN IMMEDIATE before the first write statement of a
            # transaction (taking the write lock up front, so WAL never answers SQLITE_BUSY on
            # upgrade); COMMIT and ROLLBACK are explicit, in SqliteStore.write.
            writer = await aiosqlite.connect(path, isolation_level="IMMEDIATE", timeout=5.0)
            stack.push_async_callback(_close, writer)
            await _configure(writer, durability)
            await migrate(writer, path)
            reader = await aiosqlite.connect(path, isolation_level=None, timeout=5.0)
            stack.push_async_callback(_close, reader)
            await _tune(reader, _READER_CACHE_KIB)
            rows = await reader.execute_fetchall("SELECT value FROM meta WHERE key = 'history_id'")
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot use the database {path}: {exc}") from exc
        yield SqliteStore(path, writer, reader, kept_changes, str(next(iter(rows))[0]))


async def _close(db: aiosqlite.Connection) -> None:
    # An unclosed aiosqlite connection keeps its (non-daemon) thread, and the process, alive.
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
        await db.close()
