"""Group commit: every write of every connection goes through one writer, which runs all the
writes waiting at that moment in one transaction, in arrival order, with one fsync.

The writer is one loop on the writer connection's own SQLite thread, entered once: each batch
(BEGIN, each write inside its own savepoint, COMMIT) runs there as one function call, and the
event loop hands writes over through a thread-safe inbox, waking the thread only when it
waits. aiosqlite has no public call that runs a function on its thread, so
``run_on_connection_thread`` uses its private ``_execute`` and ``_conn`` (verified on aiosqlite
0.22, which pyproject.toml pins; tests/unit/test_store_writer.py fails if they change). The
alternative public routes cost O(statements) hops per write, or move the domain's rules into
SQL triggers.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import queue
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Final, Generic, Protocol, TypeVar

import aiosqlite
import anyio
import msgspec

from ..domain import (
    PINNED_BIT,
    Change,
    Conversation,
    ConversationGroup,
    ConvKey,
    ConvType,
    Draft,
    DraftVersion,
    Limits,
    ListingRenderer,
    StorageFailure,
    WriteOperation,
)
from .migrations import (
    LIST_KEY_ACCOUNT_SHIFT,
    LIST_KEY_MAX_ACCOUNT,
    LIST_KEY_MAX_ORDER,
    LIST_KEY_PINNED_SHIFT,
)

__all__ = [
    "CONV_COLUMNS",
    "CONV_TYPES",
    "DRAFT_VERSION_COLUMNS",
    "BatchPacing",
    "GroupCommitWriter",
    "Retention",
    "StoreStats",
    "change_key_range",
    "conversation_from_row",
    "draft_document",
    "draft_from_columns",
    "draft_from_document",
    "draft_version_from_row",
    "environment_reason",
    "list_key",
    "list_key_range",
    "run_on_connection_thread",
    "signed_marks",
    "storage_failure",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Most writes in one transaction: bounds the time a batch holds the writer (and its
#: waiters' latency) when thousands queue up.
MAX_BATCH: Final = 256
#: How long a stopping writer waits for the batch its thread holds to commit.
_STOP_TIMEOUT: Final = 30.0

CONV_COLUMNS: Final = (
    "conv_type, conv_id, order_key, is_pinned, unread_num, draft, draft_revision, custom_data, "
    "marks, conv_groups"
)
CONV_TYPES: Final = {int(t): t for t in ConvType}
#: What put_conversation writes of a conversation besides its key (CONV_COLUMNS after the
#: key's conv_type and conv_id, then the sort key and the rendering), in this order.
_CONV_VALUES: Final = (
    *CONV_COLUMNS.split(", ")[2:],
    "active_time",
    "list_key",
    "listed_head",
    "listed_tail",
)
_UPSERT_CONVERSATION: Final = (
    f"INSERT INTO conversation (account_id, conv_type, conv_id, {', '.join(_CONV_VALUES)}) "
    f"VALUES ({', '.join('?' * (3 + len(_CONV_VALUES)))}) "
    "ON CONFLICT (account_id, conv_type, conv_id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _CONV_VALUES)
)
_UPDATE_CONVERSATION: Final = (
    "UPDATE conversation SET "
    + ", ".join(f"{column} = ?" for column in _CONV_VALUES)
    + " WHERE account_id = ? AND conv_type = ? AND conv_id = ?"
)
_encoder = msgspec.json.Encoder()


def list_key(account_id: int, active_time: int) -> int:
    """A conversation's ``list_key`` (schema 12): its place in the list, as the rowid of the
    conversation table, ordered as (account_id, active_time) is (migrations' CHECK holds it
    to the same packing)."""
    return (
        (account_id << LIST_KEY_ACCOUNT_SHIFT)
        | ((active_time >> 62) << LIST_KEY_PINNED_SHIFT)
        | (active_time & LIST_KEY_MAX_ORDER)
    )


def change_key(account_id: int, seq: int) -> int:
    """A change's ``change_key`` (schema 12): ``account_id << 42 | seq``, the rowid of the
    change table, so that an account's history is one range of it, in seq order."""
    return (account_id << LIST_KEY_ACCOUNT_SHIFT) | seq


def _account_keys(account_id: int) -> tuple[int, int]:
    """The rowids ``[low, high)`` that ``account_id``'s conversations (list_key) and changes
    (change_key) take, each in its own table."""
    low = account_id << LIST_KEY_ACCOUNT_SHIFT
    return low, low + (1 << LIST_KEY_ACCOUNT_SHIFT)


def change_key_range(account_id: int, after_seq: int | None = None) -> tuple[int, int]:
    """The ``change_key`` rowids (schema 12: ``account_id << 42 | seq``) of ``account_id``'s
    changes, ``[low, high)``; with ``after_seq``, only those of later seqs (a client's: any
    integer)."""
    low, end = _account_keys(account_id)
    if after_seq is None or after_seq < 0:
        return low, end
    return min(end, low + after_seq + 1), end


def list_key_range(account_id: int, before_active_time: int | None = None) -> tuple[int, int]:
    """The list keys of ``account_id``'s conversations, ``[low, high)``; with
    ``before_active_time``, only those of the conversations whose active time is lower (a
    list cursor: any integer)."""
    low, end = _account_keys(account_id)
    if before_active_time is None:
        return low, end
    if before_active_time <= 0:
        return low, low
    pinned = before_active_time >> 62 != 0
    order = before_active_time & ~PINNED_BIT if pinned else before_active_time
    # An order key beyond every storable one is above them all: the end of its half.
    order = min(order, LIST_KEY_MAX_ORDER + 1)
    return low, min(end, low + (int(pinned) << LIST_KEY_PINNED_SHIFT) + order)


#: A JSON array of strings: a draft's texts in the draft history, a conversation's groups.
_texts_decoder = msgspec.json.Decoder(tuple[str, ...])


# A draft is stored as one document in the shape of the SDK's json_draft_param (the schema's
# `draft` column), so that a list page can hand it on as stored. These mirror that shape;
# only text elements (elem_type 0) are ever stored. tests/unit/test_draft_document.py checks
# that the document is byte for byte what the wire contract encodes for the same draft.
class _StoredElem(msgspec.Struct):
    elem_type: int
    text_elem_content: str


class _StoredMessage(msgspec.Struct):
    message_elem_array: list[_StoredElem]


class _StoredDraft(msgspec.Struct):
    draft_msg: _StoredMessage
    draft_user_define: str
    draft_edit_time: int


_TEXT_ELEM = 0
_draft_decoder = msgspec.json.Decoder(_StoredDraft)


def draft_document(draft: Draft) -> bytes:
    """The stored form of ``draft``: the SDK's json_draft_param JSON."""
    return _encoder.encode(
        _StoredDraft(
            _StoredMessage([_StoredElem(_TEXT_ELEM, text) for text in draft.texts]),
            draft.user_define,
            draft.edit_time,
        )
    )


def draft_from_document(document: bytes) -> Draft:
    """The domain's Draft of a stored document (see ``draft_document``)."""
    stored = _draft_decoder.decode(document)
    return Draft(
        tuple(elem.text_elem_content for elem in stored.draft_msg.message_elem_array),
        stored.draft_user_define,
        stored.draft_edit_time,
    )


class StoreStats:
    """Counters since start, for ``daemon.status`` and the benchmarks."""

    __slots__ = (
        "database_errors",
        "reader_thread_hops",
        "wal_restarts",
        "write_batches",
        "writer_thread_hops",
        "writes",
    )

    def __init__(self) -> None:
        self.writes = 0
        self.write_batches = 0
        self.writer_thread_hops = 0
        self.reader_thread_hops = 0
        #: RESTART checkpoints (store.sqlite's WAL upkeep).
        self.wal_restarts = 0
        #: SQLite errors of reads and commits: after any, a shutdown leaves no clean stamp.
        self.database_errors = 0


def conversation_from_row(row: tuple[Any, ...]) -> Conversation:
    conv_type, conv_id, order_key, is_pinned, unread, document, revision, custom_data = row[:8]
    marks, groups = row[8:10]
    draft = None if document is None else draft_from_document(document)
    return Conversation(
        CONV_TYPES[conv_type],
        conv_id,
        order_key,
        bool(is_pinned),
        draft,
        revision,
        unread,
        marks=marks & _UINT64,
        groups=() if groups is None else _texts_decoder.decode(groups),
        custom_data=custom_data,
    )


#: The draft history of a conversation is pruned to its bound every this many revisions.
_HISTORY_PRUNE_EVERY: Final = 8

#: The columns of a draft_history row that make a DraftVersion (draft_version_from_row).
DRAFT_VERSION_COLUMNS: Final = (
    "revision, draft_texts, draft_user_define, draft_edit_time, replaced_at, replaced_by, "
    "replaced_how"
)


def draft_from_columns(texts: str, user_define: str | None, edit_time: int | None) -> Draft:
    """A draft kept as three columns: a JSON array of its texts, its user define and its edit
    time (a draft_history row; schema 5's conversation row, which may hold NULLs)."""
    return Draft(_texts_decoder.decode(texts), user_define or "", edit_time or 0)


def draft_version_from_row(row: tuple[Any, ...]) -> DraftVersion:
    revision, texts, user_define, edit_time, replaced_at, replaced_by, replaced_how = row
    return DraftVersion(
        draft=draft_from_columns(texts, user_define, edit_time),
        revision=revision,
        replaced_at=replaced_at,
        replaced_by=replaced_by,
        replaced_how=replaced_how,
    )


_UINT64: Final = (1 << 64) - 1


def signed_marks(marks: int) -> int:
    """The SDK's unsigned 64-bit marks as the signed integer SQLite stores (same bits)."""
    return marks - (1 << 64) if marks >= 1 << 63 else marks


async def run_on_connection_thread(
    db: aiosqlite.Connection, function: Callable[[sqlite3.Connection], T]
) -> T:
    """Run ``function(connection)`` on ``db``'s own thread, in one hop.

    Like every aiosqlite call it is queued behind the calls before it and, once queued, runs
    to its end even if the awaiting task is cancelled.
    """
    return await db._execute(function, db._conn)  # type: ignore[no-untyped-call,no-any-return]


#: SQLite's primary result codes that say the database (its disk, its file) is failing,
#: rather than that a statement is wrong.
_ENVIRONMENT: Final = {
    sqlite3.SQLITE_FULL: "disk full",
    sqlite3.SQLITE_READONLY: "read-only",
    sqlite3.SQLITE_IOERR: "I/O error",
    sqlite3.SQLITE_BUSY: "busy",
    sqlite3.SQLITE_LOCKED: "busy",
    sqlite3.SQLITE_CANTOPEN: "cannot open a file",
    sqlite3.SQLITE_CORRUPT: "corrupt",
    sqlite3.SQLITE_NOTADB: "corrupt",
    sqlite3.SQLITE_PERM: "permission denied",
}


def environment_reason(exc: sqlite3.Error) -> str | None:
    """What is wrong with the database's environment, or None for any other error."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    reason = _ENVIRONMENT.get(code & 0xFF)
    context = exc.__context__
    if reason == "I/O error" and isinstance(context, OSError) and context.errno == errno.ENOSPC:
        reason = "disk full"
    return reason


def storage_failure(exc: sqlite3.Error) -> StorageFailure:
    """The domain's name for a database that cannot take writes."""
    return StorageFailure(environment_reason(exc) or "database error")


class Retention:
    """How much change history each account keeps, so subscribers can resume.

    A change is kept while it is among the account's last ``changes``, or younger than
    ``seconds`` (0: no age bound) and among its last ``CEILING_FACTOR * changes``: a client
    away for less than ``seconds`` can resume however busy the others were, and the history
    of an account stays bounded whatever a runaway writer does. The age bound prunes the
    oldest changes up to the first young one: changes stamped while the clock ran ahead keep
    those after them (up to the ceiling) until the clock has caught up.
    """

    CEILING_FACTOR: Final = 10

    __slots__ = ("changes", "clock", "draft_seconds", "draft_versions", "seconds")

    def __init__(
        self,
        changes: int,
        seconds: int = 0,
        clock: Callable[[], float] = time.time,
        *,
        draft_versions: int = Limits.draft_history,
        draft_seconds: int = Limits.draft_history_seconds,
    ) -> None:
        self.changes = changes
        self.seconds = seconds
        self.clock = clock
        #: Draft history: versions kept per conversation (0: none), and the age bound in
        #: seconds (0: none). Unlike the change feed, both bounds hold at once.
        self.draft_versions = draft_versions
        self.draft_seconds = draft_seconds

    def draft_cutoff(self, now: int) -> int:
        """Draft versions replaced before this (Unix seconds) are past the age bound."""
        return now - self.draft_seconds if self.draft_seconds else -(2**63)


class _Batch:
    """What the writes of one attempt at a group commit share, on the writer's thread."""

    __slots__ = (
        "conn",
        "kept_versions",
        "last_seqs",
        "listing",
        "now",
        "retention",
        "stored_seqs",
    )

    def __init__(
        self, conn: sqlite3.Connection, retention: Retention, now: int, listing: ListingRenderer
    ) -> None:
        self.conn = conn
        self.retention = retention
        self.now = now
        self.listing = listing
        #: Accounts whose draft history this batch added to: if any, the batch prunes the
        #: history's expired versions at its end.
        self.kept_versions: set[int] = set()
        #: Each account's change sequence, counted here and stored once, at the end of the
        #: batch (store_seqs): an UPDATE ... RETURNING for every change was ~10 % of the
        #: writer's time. ``stored_seqs`` holds what the account row says.
        self.last_seqs: dict[int, int] = {}
        self.stored_seqs: dict[int, int] = {}

    def store_seqs(self) -> None:
        for account_id, last in self.last_seqs.items():
            if last != self.stored_seqs[account_id]:
                self.conn.execute(
                    "UPDATE account SET last_seq = ? WHERE id = ?", (last, account_id)
                )


class _Transaction:
    """The StoreTransaction of one write, on the writer's thread."""

    __slots__ = (
        "_batch",
        "_conn",
        "_existing",
        "_kept_changes",
        "_listing",
        "_now",
        "_retention",
        "callbacks",
    )

    COUNT_PINNED: Final = "SELECT count(*) FROM conversation WHERE list_key >= ? AND list_key < ?"

    def __init__(self, batch: _Batch) -> None:
        self._batch = batch
        self._conn = batch.conn
        # Conversations this write has seen stored (read or written), by (account, type, id):
        # put_conversation updates those in place (see there).
        self._existing: set[tuple[int, int, str]] = set()
        self._listing = batch.listing
        self._retention = batch.retention
        self._kept_changes = batch.retention.changes
        self._now = batch.now
        self.callbacks: list[Callable[[], None]] = []

    def get_conversation(self, account_id: int, key: ConvKey) -> Conversation | None:
        stored = (account_id, int(key.conv_type), key.conv_id)
        row = self._conn.execute(
            f"SELECT {CONV_COLUMNS} FROM conversation "
            "WHERE account_id = ? AND conv_type = ? AND conv_id = ?",
            stored,
        ).fetchone()
        if row is None:
            self._existing.discard(stored)
            return None
        self._existing.add(stored)
        return conversation_from_row(row)

    def count_pinned(self, account_id: int) -> int:
        # Pinned conversations are exactly those with PINNED_BIT in their active time: a range
        # of the table's rowid (list_key), counted without scanning the account.
        row = self._conn.execute(
            self.COUNT_PINNED, (list_key(account_id, PINNED_BIT), list_key_range(account_id)[1])
        ).fetchone()
        return int(row[0])

    def current_seq(self, account_id: int) -> int:
        batch = self._batch
        last = batch.last_seqs.get(account_id)
        if last is None:
            row = self._conn.execute(
                "SELECT last_seq FROM account WHERE id = ?", (account_id,)
            ).fetchone()
            last = batch.last_seqs[account_id] = batch.stored_seqs[account_id] = int(row[0])
        return last

    def next_seq(self, account_id: int) -> int:
        seq = self.current_seq(account_id) + 1
        if seq > LIST_KEY_MAX_ORDER:
            # A change key and an order key hold 41 bits of it (schema 12): two trillion
            # changes. The write fails alone, with nothing of it kept.
            raise StorageFailure(f"the account has used up its changes ({LIST_KEY_MAX_ORDER:,})")
        self._batch.last_seqs[account_id] = seq
        return seq

    def put_conversation(self, account_id: int, conversation: Conversation) -> None:
        draft = conversation.draft
        stored = (account_id, int(conversation.conv_type), conversation.conv_id)
        values = (
            conversation.order_key,
            int(conversation.is_pinned),
            conversation.unread_num,
            None if draft is None else draft_document(draft),
            conversation.draft_revision,
            conversation.custom_data,
            signed_marks(conversation.marks),
            _encoder.encode(conversation.groups).decode() if conversation.groups else None,
            conversation.active_time,
            list_key(account_id, conversation.active_time),
            *self._listing.render(conversation),
        )
        existing = self._existing
        # A conversation this write has seen stored (most writes read it first) is updated in
        # place: the upsert below also fires the BEFORE INSERT triggers (two probes of the
        # key, for the count and the tags) and probes the key for its conflict. Paired runs,
        # 8 writing processes, 5 rounds: full 4,949 -> 5,219 writes/s, everysec within noise.
        # Should the row have gone after all, the update finds nothing and the upsert runs.
        if stored in existing and (
            self._conn.execute(_UPDATE_CONVERSATION, (*values, *stored)).rowcount == 1
        ):
            return
        # An upsert on the key, not INSERT OR REPLACE: the primary key is the sort key, and a
        # REPLACE would silently delete any other row that held the same active time. The
        # conversation's rendering for list pages is written with it (ListingRenderer).
        self._conn.execute(_UPSERT_CONVERSATION, (account_id, *stored[1:], *values))
        existing.add(stored)

    def delete_conversation(self, account_id: int, key: ConvKey) -> None:
        stored = (account_id, int(key.conv_type), key.conv_id)
        self._existing.discard(stored)
        self._conn.execute(
            "DELETE FROM conversation WHERE account_id = ? AND conv_type = ? AND conv_id = ?",
            stored,
        )
        # Its draft history goes with it, in the same transaction, whichever call deletes.
        self._conn.execute(
            "DELETE FROM draft_history WHERE account_id = ? AND conv_type = ? AND conv_id = ?",
            (account_id, int(key.conv_type), key.conv_id),
        )

    def keep_draft_version(
        self,
        account_id: int,
        key: ConvKey,
        draft: Draft,
        *,
        revision: int,
        replaced_by: str,
        replaced_how: str,
    ) -> None:
        retention = self._retention
        if retention.draft_versions <= 0:
            return
        conv = (account_id, int(key.conv_type), key.conv_id)
        self._conn.execute(
            f"INSERT OR REPLACE INTO draft_history "
            f"(account_id, conv_type, conv_id, {DRAFT_VERSION_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *conv,
                revision,
                _encoder.encode(draft.texts).decode(),
                draft.user_define,
                draft.edit_time,
                self._now,
                replaced_by,
                replaced_how,
            ),
        )
        # Those of the last N revisions stay (a revision keeps at most one version, so that
        # is at most N; a range of the primary key, no count needed). Pruned once in every
        # PRUNE_EVERY revisions, several versions at once: deleting one per write rewrote
        # several pages of both b-trees each time. Kept revisions are at most 2 apart (a
        # cleared draft, "no draft", is not kept: set, clear, set keeps every other one), so
        # "revision % PRUNE_EVERY < 2" comes once in every window of PRUNE_EVERY. At most
        # N + PRUNE_EVERY - 1 are stored; reads list and restore only the newest N.
        if revision % _HISTORY_PRUNE_EVERY < 2:
            self._conn.execute(
                "DELETE FROM draft_history WHERE account_id = ? AND conv_type = ? "
                "AND conv_id = ? AND revision <= ?",
                (*conv, revision - retention.draft_versions),
            )
        # ... and no version outlives the age bound, even of a conversation nobody writes
        # again: pruned by the batch (_ExpiredVersions).
        if retention.draft_seconds:
            self._batch.kept_versions.add(account_id)

    def get_draft_version(
        self, account_id: int, key: ConvKey, revision: int
    ) -> DraftVersion | None:
        retention = self._retention
        conv = (account_id, int(key.conv_type), key.conv_id)
        # Only among the newest N: a lowered --draft-history counts before the next prune.
        row = self._conn.execute(
            f"SELECT {DRAFT_VERSION_COLUMNS} FROM ("
            f"SELECT {DRAFT_VERSION_COLUMNS} FROM draft_history "
            "WHERE account_id = ? AND conv_type = ? AND conv_id = ? "
            "ORDER BY revision DESC LIMIT ?) WHERE revision = ? AND replaced_at >= ?",
            (
                *conv,
                max(0, retention.draft_versions),
                revision,
                retention.draft_cutoff(self._now),
            ),
        ).fetchone()
        return None if row is None else draft_version_from_row(row)

    def retire_revision(self, account_id: int, key: ConvKey, revision: int, seq: int) -> None:
        # Keep as many last revisions as the change history keeps changes (one delete takes
        # one seq): older ones are pruned into the account's floor, which never goes down.
        horizon = seq - self._kept_changes
        if horizon > 0:
            pruned = self._conn.execute(
                "DELETE FROM deleted_conversation WHERE account_id = ? AND deleted_seq <= ? "
                "RETURNING last_revision",
                (account_id, horizon),
            ).fetchall()
            if pruned:
                self._conn.execute(
                    "UPDATE account SET revision_floor = max(revision_floor, ?) WHERE id = ?",
                    (max(row[0] for row in pruned), account_id),
                )
        self._conn.execute(
            "INSERT INTO deleted_conversation "
            "(account_id, conv_type, conv_id, last_revision, deleted_seq) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (account_id, conv_type, conv_id) DO UPDATE SET "
            "last_revision = max(last_revision, excluded.last_revision), "
            "deleted_seq = excluded.deleted_seq",
            (account_id, int(key.conv_type), key.conv_id, revision, seq),
        )

    def retired_revision(self, account_id: int, key: ConvKey) -> int | None:
        row = self._conn.execute(
            "SELECT max(revision_floor, coalesce((SELECT last_revision FROM deleted_conversation "
            "WHERE account_id = ? AND conv_type = ? AND conv_id = ?), -1)) "
            "FROM account WHERE id = ?",
            (account_id, int(key.conv_type), key.conv_id, account_id),
        ).fetchone()
        revision = int(row[0])
        return None if revision < 0 else revision

    def append_change(self, account_id: int, change: Change) -> None:
        snapshot = None if change.conversation is None else _encoder.encode(change.conversation)
        self._conn.execute(
            "INSERT INTO change "
            "(change_key, account_id, seq, kind, conv_type, conv_id, snapshot, origin, "
            "changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                change_key(account_id, change.seq),
                account_id,
                change.seq,
                int(change.kind),
                int(change.key.conv_type),
                change.key.conv_id,
                snapshot,
                change.origin,
                self._now,
            ),
        )
        # Prune in steps rather than on every write: one DELETE per tenth of what is kept.
        kept = self._kept_changes
        if change.seq % max(1, min(1000, kept // 10)) == 0 and change.seq > kept:
            self._prune(account_id, change.seq)

    def _prune(self, account_id: int, seq: int) -> None:
        retention = self._retention
        horizon = seq - retention.changes  # beyond the last N
        # The account's changes are one range of the rowid (change_key): up to a seq, a range.
        low = change_key(account_id, 0)
        if retention.seconds:
            # Of those, only the ones before the first younger than the age bound go (the
            # history is in seq order, and so, but for a clock set back, in time order: a
            # change that looks old after young ones waits for them) -- up to the ceiling.
            # Read from the oldest, the search stops at the first young change: it reads what
            # goes. (The max(seq) of the old ones read every kept change: ~5 ms a prune, once
            # in 1,000 writes, with ~50,000 young changes kept.)
            row = self._conn.execute(
                "SELECT seq FROM change WHERE change_key >= ? AND change_key <= ? "
                "AND changed_at >= ? ORDER BY change_key LIMIT 1",
                (low, low + horizon, self._now - retention.seconds),
            ).fetchone()
            aged = horizon if row is None else row[0] - 1
            ceiling = seq - Retention.CEILING_FACTOR * retention.changes
            horizon = max(aged, ceiling)
        if horizon <= 0:
            return
        self._conn.execute(
            "DELETE FROM change WHERE change_key >= ? AND change_key <= ?", (low, low + horizon)
        )
        self._conn.execute(
            "UPDATE account SET pruned_seq = max(pruned_seq, ?) WHERE id = ?",
            (horizon, account_id),
        )

    def ensure_account(self, sdk_app_id: int, user_id: str) -> int:
        row = self._conn.execute(
            "INSERT INTO account (sdk_app_id, user_id) VALUES (?, ?) "
            "ON CONFLICT (sdk_app_id, user_id) DO UPDATE SET user_id = excluded.user_id "
            "RETURNING id",
            (sdk_app_id, user_id),
        ).fetchone()
        account_id = int(row[0])
        if account_id > LIST_KEY_MAX_ACCOUNT:
            # Its conversations' list keys would not fit (schema 12). The write fails alone:
            # the account row goes with it.
            raise StorageFailure(f"it holds the most accounts it can ({LIST_KEY_MAX_ACCOUNT:,})")
        return account_id

    def get_group(self, account_id: int, name: str) -> ConversationGroup | None:
        row = self._conn.execute(
            "SELECT id FROM conversation_group WHERE account_id = ? AND name = ?",
            (account_id, name),
        ).fetchone()
        return None if row is None else ConversationGroup(int(row[0]), name)

    def count_groups(self, account_id: int) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM conversation_group WHERE account_id = ?", (account_id,)
        ).fetchone()
        return int(row[0])

    def create_group(self, account_id: int, name: str) -> ConversationGroup:
        row = self._conn.execute(
            "INSERT INTO conversation_group (account_id, name) VALUES (?, ?) RETURNING id",
            (account_id, name),
        ).fetchone()
        return ConversationGroup(int(row[0]), name)

    def rename_group(self, group: ConversationGroup, name: str) -> None:
        self._conn.execute("UPDATE conversation_group SET name = ? WHERE id = ?", (name, group.id))

    def delete_group(self, group: ConversationGroup) -> None:
        self._conn.execute("DELETE FROM conversation_group WHERE id = ?", (group.id,))

    def group_members(self, group: ConversationGroup) -> list[ConvKey]:
        rows = self._conn.execute(
            "SELECT conv_type, conv_id FROM conversation_group_member WHERE group_id = ? "
            "ORDER BY active_time DESC",
            (group.id,),
        ).fetchall()
        return [ConvKey(CONV_TYPES[conv_type], conv_id) for conv_type, conv_id in rows]

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)


class BatchPacing(Protocol):
    """How the writer's thread shares the CPU with the event loop, called on that thread
    around each batch and while it waits for work (the daemon's thread placement,
    ``convd.placement``)."""

    def before_batch(self, writes: int) -> None:
        """A batch of ``writes`` writes is about to run."""
        ...

    def after_batch(self) -> None:
        """The batch's outcome has just been handed to the event loop, which is to answer
        its writers and publish its events; the next batch has not started."""
        ...

    def idle_timeout(self) -> float | None:
        """How long the writer's thread may wait for the next write (or job) before
        ``idle`` is due; None: as long as it takes."""
        ...

    def idle(self) -> None:
        """The writer's thread has waited ``idle_timeout`` seconds with nothing to do."""
        ...


class _Pending(Generic[T]):
    """One submitted write, from its submission to its answer."""

    __slots__ = ("callbacks", "done", "error", "operation", "result")

    def __init__(self, operation: WriteOperation[T], done: asyncio.Future[None]) -> None:
        self.operation = operation
        # A bare asyncio future (aiosqlite ties the store to asyncio anyway): an Event, anyio's
        # or asyncio's, looks up the running loop on every wait (and CPython 3.11 calls
        # getpid() to do that), a few microseconds a write.
        self.done = done
        self.result: T | None = None
        self.error: BaseException | None = None
        self.callbacks: list[Callable[[], None]] = []


class _Job(Generic[T]):
    """Work for the writer's connection outside any write transaction (a checkpoint)."""

    __slots__ = ("done", "function")

    def __init__(
        self, function: Callable[[sqlite3.Connection], T], done: asyncio.Future[T]
    ) -> None:
        self.function = function
        self.done = done


def _pace(call: Callable[..., T], *args: int) -> T | None:
    """``call(*args)``, or None if it failed. Where the threads run is an optimisation:
    failing at it must not stop the writer."""
    try:
        return call(*args)
    except Exception:
        logger.exception("placing the writer's thread failed")
        return None


def _wait_for_work(
    inbox: queue.SimpleQueue[_Pending[Any] | _Job[Any] | object], pacing: BatchPacing | None
) -> object:
    """The inbox's next item, however long it takes; the pacing learns when it has waited
    as long as it asked (a pin is then released without waiting for the next write)."""
    if pacing is None:
        return inbox.get()
    timeout = _pace(pacing.idle_timeout)
    while True:
        try:
            return inbox.get(timeout=timeout)
        except queue.Empty:
            _pace(pacing.idle)
            # Asked again: woken early, it wants the rest. An idle() that failed to end
            # what it waited for would ask for no wait at all, and the thread would spin.
            timeout = _pace(pacing.idle_timeout)
            if timeout is not None and timeout <= 0:
                timeout = None


#: Tells the writer's thread to return once it has finished what it took.
_STOP: Final = object()


def _resolve(pending: _Pending[Any]) -> None:
    # A submitter cancelled while it waited has cancelled its future already.
    if not pending.done.done():
        pending.done.set_result(None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _run_batch(
    conn: sqlite3.Connection,
    batch: list[_Pending[Any]],
    retention: Retention,
    expired: _ExpiredVersions,
    listing: ListingRenderer,
) -> None:
    """The whole group commit, on the writer's thread.

    The writes run one after the other in one transaction, and one that raises (a revision
    conflict, a limit) must leave nothing behind while the others commit. Refusals are rare,
    so the batch first runs without savepoints: a savepoint around each write cost about a
    fifth of the writer's time (two statements, and a copy of every page the write changes).
    Only when a write raised is that attempt rolled back and the batch run again, each write
    in its own savepoint. Only when COMMIT fails does every write of the batch fail.
    """
    now = int(retention.clock())
    conn.execute("BEGIN IMMEDIATE")
    try:
        shared = _Batch(conn, retention, now, listing)
        if not _run_writes(shared, batch):
            if conn.in_transaction:  # (SQLite may have ended it: a full disk, an I/O error)
                conn.execute("ROLLBACK")
            if len(batch) == 1:
                return  # the refused write was the whole batch: nothing to commit
            conn.execute("BEGIN IMMEDIATE")
            shared = _Batch(conn, retention, now, listing)
            _run_writes_in_savepoints(shared, batch)
        shared.store_seqs()
        if shared.kept_versions:
            expired.prune(conn, retention, now)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class _ExpiredVersions:
    """The draft history's age bound: expired versions are deleted at most once a second,
    by a batch that kept a version (of any account).

    The history is stored in the order versions were kept (schema version 10), so the
    expired ones are its first rows: deleted up to the first that is still young, without a
    scan of the young ones. Once a second, not once a batch: reads never return an expired
    version anyway, and the statement was ~7 % of the writer's time under load. (A clock set
    back can leave an expired version after a young one; reads never return it either, and
    it goes once the versions before it have.)
    """

    __slots__ = ("_second",)

    def __init__(self) -> None:
        self._second: int | None = None

    def prune(self, conn: sqlite3.Connection, retention: Retention, now: int) -> None:
        if now == self._second:
            return
        self._second = now
        conn.execute(
            "DELETE FROM draft_history WHERE id < coalesce("
            "(SELECT id FROM draft_history WHERE replaced_at >= ? ORDER BY id LIMIT 1), "
            "(SELECT max(id) + 1 FROM draft_history))",
            (retention.draft_cutoff(now),),
        )


def _run_writes(shared: _Batch, batch: list[_Pending[Any]]) -> bool:
    """Every write of the batch straight into the transaction; False at the first that
    raised (its error is kept; the transaction then holds part of the batch)."""
    for pending in batch:
        tx = _Transaction(shared)
        try:
            pending.result = pending.operation(tx)
        except Exception as exc:
            pending.error = exc
            return False
        pending.callbacks = tx.callbacks
    return True


def _run_writes_in_savepoints(shared: _Batch, batch: list[_Pending[Any]]) -> None:
    """Every write of the batch again, each in a savepoint: one that raises is undone alone.

    A write operation is a function of the transaction it is given (ports.WriteOperation),
    so running it again on the same state gives what the first attempt gave.
    """
    conn = shared.conn
    for pending in batch:
        tx = _Transaction(shared)
        seqs = dict(shared.last_seqs)  # the counters go back with the savepoint
        conn.execute("SAVEPOINT write")
        try:
            pending.result = pending.operation(tx)
        except Exception as exc:
            # A domain refusal, or a statement that failed: undo this write alone. (If the
            # database itself is failing, ROLLBACK TO or COMMIT fails too, and with it the
            # whole batch.)
            pending.result = None
            pending.error = exc
            pending.callbacks = []
            shared.last_seqs = seqs
            conn.execute("ROLLBACK TO write")
        else:
            pending.error = None
            pending.callbacks = tx.callbacks
        conn.execute("RELEASE write")


class GroupCommitWriter:
    """Takes writes from every connection and commits them in batches, in arrival order.

    The writer is a loop on the writer connection's own SQLite thread, entered once (one
    hop for the writer's whole life): it takes every write waiting in its inbox (up to
    ``max_batch``), commits them in one transaction, hands the batch back to the event loop
    and at once takes the next. There is no artificial delay: a write that arrives while the
    thread is idle wakes it and starts a batch; writes that arrive while a batch commits form
    the next one. Back on the event loop, a batch's after-commit callbacks (event publishing)
    run in commit order, then its writers are answered. The thread does not wait for that
    before it starts the next batch: waiting for the event loop to come round between two
    batches left the thread idle for ~40 % of the time with 8 busy clients.
    """

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        retention: Retention,
        listing: ListingRenderer,
        stats: StoreStats,
        max_batch: int = MAX_BATCH,
        on_thread_start: Callable[[], None] | None = None,
        pacing: BatchPacing | None = None,
    ) -> None:
        self._db = db
        self._retention = retention
        self._listing = listing
        self._stats = stats
        self._max_batch = max_batch
        #: Called on the writer's thread: first (the daemon names the thread), and around
        #: each batch (the daemon places the threads: placement).
        self._on_thread_start = on_thread_start
        self._pacing = pacing
        # Filled by the event loop, emptied by the writer's thread: a SimpleQueue is safe
        # across the two and wakes the thread only when it waits.
        self._inbox: queue.SimpleQueue[_Pending[Any] | _Job[Any] | object] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._closed = False
        self._failing: str | None = None

    async def submit(self, operation: WriteOperation[T]) -> T:
        if self._closed:
            raise StorageFailure("the daemon is stopping")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        pending: _Pending[T] = _Pending(operation, self._loop.create_future())
        self._inbox.put(pending)
        await pending.done
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    async def run_between_batches(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``function(connection)`` on the writer's connection, between two batches."""
        if self._closed:
            raise StorageFailure("the daemon is stopping")
        if not self._running:
            # The writer's loop is not on the thread (yet): it is free.
            return await run_on_connection_thread(self._db, function)
        job: _Job[T] = _Job(function, asyncio.get_running_loop().create_future())
        self._inbox.put(job)
        return await job.done

    async def run(self) -> None:
        """The writer: runs until cancelled, then fails what is still queued."""
        loop = self._loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        self._running = True
        try:
            await run_on_connection_thread(self._db, lambda conn: self._serve(conn, stopped))
        except ValueError:
            # aiosqlite's "Connection closed": the loop never reached the thread.
            _settle(stopped, None, None)
            raise
        finally:
            self._closed = True
            self._inbox.put(_STOP)
            # The batch the thread holds runs to its end whatever happens here: its writers
            # must be answered (and its events published) with what happened. Bounded, should
            # the disk hang.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_TIMEOUT) as waited:
                await stopped
            if waited.cancelled_caught:
                logger.error("the writer did not stop within %s s", _STOP_TIMEOUT)
            self._running = False
            self._fail_queued()

    def _fail_queued(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Pending):
                item.error = StorageFailure("the daemon is stopping")
                _resolve(item)
            elif isinstance(item, _Job):
                _settle(item.done, None, StorageFailure("the daemon is stopping"))

    # -- on the writer's thread ------------------------------------------------------------

    def _serve(self, conn: sqlite3.Connection, stopped: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        inbox = self._inbox
        stats = self._stats
        retention = self._retention
        max_batch = self._max_batch
        held: object = None  # taken from the inbox but not part of the batch before it
        expired = _ExpiredVersions()
        pacing = self._pacing
        try:
            if self._on_thread_start is not None:
                self._on_thread_start()
            while True:
                item = held
                held = None
                if item is None:
                    try:
                        item = inbox.get_nowait()
                    except queue.Empty:
                        item = _wait_for_work(inbox, pacing)
                        stats.writer_thread_hops += 1
                if item is _STOP:
                    return
                if isinstance(item, _Job):
                    self._run_job(conn, item, loop)
                    continue
                batch: list[_Pending[Any]] = [item]  # type: ignore[list-item]
                while len(batch) < max_batch:
                    try:
                        item = inbox.get_nowait()
                    except queue.Empty:
                        break
                    if not isinstance(item, _Pending):
                        held = item
                        break
                    batch.append(item)
                if pacing is not None:
                    _pace(pacing.before_batch, len(batch))
                try:
                    _run_batch(conn, batch, retention, expired, self._listing)
                except sqlite3.Error as exc:
                    loop.call_soon_threadsafe(self._finish, batch, exc)
                except BaseException as exc:
                    # The connection itself is gone (closed under us): nobody waits forever.
                    loop.call_soon_threadsafe(self._finish, batch, exc)
                    raise
                else:
                    loop.call_soon_threadsafe(self._finish, batch, None)
                if pacing is not None:
                    _pace(pacing.after_batch)
        finally:
            # Whatever ends the loop (a bug included), the event loop learns it.
            loop.call_soon_threadsafe(_settle, stopped, None, None)

    @staticmethod
    def _run_job(conn: sqlite3.Connection, job: _Job[Any], loop: asyncio.AbstractEventLoop) -> None:
        try:
            result = job.function(conn)
        except Exception as exc:
            loop.call_soon_threadsafe(_settle, job.done, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, job.done, result, None)

    # -- back on the event loop ------------------------------------------------------------

    def _finish(self, batch: list[_Pending[Any]], error: BaseException | None) -> None:
        stats = self._stats
        stats.write_batches += 1
        stats.writes += len(batch)
        if error is not None:
            failure = (
                self._failure(error)
                if isinstance(error, sqlite3.Error)
                else StorageFailure("the database connection was lost")
            )
            for pending in batch:
                pending.error = failure
                pending.callbacks = []
        else:
            failed = False
            for pending in batch:
                # Any other statement error is a bug: left as it is, the rpc boundary logs it
                # with a correlation id.
                pending_error = pending.error
                if (
                    isinstance(pending_error, sqlite3.Error)
                    and environment_reason(pending_error) is not None
                ):
                    pending.error = self._failure(pending_error)
                    failed = True
            if not failed and self._failing is not None:
                logger.warning("the database accepts writes again")
                self._failing = None
        for pending in batch:
            for callback in pending.callbacks:
                try:
                    callback()
                except Exception:
                    logger.exception("after-commit callback failed")
        for pending in batch:
            _resolve(pending)

    def _failure(self, exc: sqlite3.Error) -> StorageFailure:
        self._stats.database_errors += 1
        failure = storage_failure(exc)
        # Logged once per episode, not once per request: a full disk fails every write.
        if self._failing != failure.reason:
            self._failing = failure.reason
            logger.error("the database cannot be written (%s): %s", failure.reason, exc)
        return failure
