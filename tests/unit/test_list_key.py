"""Schema 12's packed rowids: a conversation's ``list_key`` (its place in the list) and a
change's ``change_key``, their ranges for cursors of any value, the CHECKs that keep them
exact, and the migration from schema 11 that keeps every conversation, its order and the
change history."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import pytest

from convd.domain import (
    PINNED_BIT,
    Account,
    ChangeKind,
    Conversation,
    ConversationFilter,
    ConversationService,
    ConvKey,
    ConvType,
    Draft,
    DraftElement,
    EventBus,
    StorageFailure,
)
from convd.rpc import ConvListing
from convd.store import open_store
from convd.store.migrations import (
    LIST_KEY_MAX_ACCOUNT,
    LIST_KEY_MAX_ORDER,
    MIGRATIONS,
    SCHEMA_VERSION,
    register_functions,
)
from convd.store.sqlite import list_page_statement
from convd.store.writer import change_key_range, draft_document, list_key, list_key_range

pytestmark = pytest.mark.anyio

ORDERS = (0, 1, 2, 12345, LIST_KEY_MAX_ORDER - 1, LIST_KEY_MAX_ORDER)
ACCOUNTS = (1, 2, 3, LIST_KEY_MAX_ACCOUNT)


def _active_times() -> list[int]:
    return [order | pinned for order in ORDERS for pinned in (0, PINNED_BIT)]


@pytest.fixture
def db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    register_functions(conn)
    for script in MIGRATIONS:
        conn.executescript(script)
    conn.executemany(
        "INSERT INTO account (id, sdk_app_id, user_id) VALUES (?, 0, ?)",
        [(account, f"u{account}") for account in ACCOUNTS],
    )
    return conn


def _insert(db: sqlite3.Connection, account: int, conv_id: str, active_time: int, key: int) -> None:
    db.execute(
        "INSERT INTO conversation (list_key, account_id, conv_type, conv_id, order_key, "
        "is_pinned, active_time) VALUES (?, ?, 1, ?, ?, ?, ?)",
        (
            key,
            account,
            conv_id,
            active_time & ~PINNED_BIT,
            int(active_time >= PINNED_BIT),
            active_time,
        ),
    )


def test_the_list_key_is_the_schemas_and_sorts_as_account_then_active_time(
    db: sqlite3.Connection,
) -> None:
    stored = []
    for account in ACCOUNTS:
        for n, active_time in enumerate(_active_times()):
            # Stored with the key Python computes: the schema's CHECK recomputes it in SQL.
            _insert(db, account, f"c{n}", active_time, list_key(account, active_time))
            stored.append((account, active_time))
    rows = db.execute("SELECT account_id, active_time FROM conversation ORDER BY list_key")
    assert rows.fetchall() == sorted(stored)


@pytest.mark.parametrize(
    ("account", "active_time", "key"),
    [
        (1, 5, 6),  # not the packing of (1, 5)
        (0, 5, 5),  # account ids start at 1
        (LIST_KEY_MAX_ACCOUNT + 1, 5, 5),  # (its packing would not fit in 63 bits)
        (1, LIST_KEY_MAX_ORDER + 1, list_key(1, LIST_KEY_MAX_ORDER + 1)),
        (1, (LIST_KEY_MAX_ORDER + 1) | PINNED_BIT, list_key(1, (LIST_KEY_MAX_ORDER + 1))),
        (1, -1, -1),
    ],
)
def test_a_key_that_is_not_the_exact_packing_is_refused(
    db: sqlite3.Connection, account: int, active_time: int, key: int
) -> None:
    if account > LIST_KEY_MAX_ACCOUNT:
        db.execute("INSERT INTO account (id, sdk_app_id, user_id) VALUES (?, 0, 'big')", (account,))
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        _insert(db, account, "x", active_time, key)


def test_a_change_key_that_is_not_the_exact_packing_is_refused(db: sqlite3.Connection) -> None:
    sql = (
        "INSERT INTO change (change_key, account_id, seq, kind, conv_type, conv_id, origin) "
        "VALUES (?, ?, ?, 0, 1, 'x', 't')"
    )
    db.execute(sql, ((2 << 42) | 7, 2, 7))
    for key, account, seq in (
        ((2 << 42) | 8, 2, 7),
        (-1, 2, -1),
        ((2 << 42) + (1 << 41), 2, 1 << 41),
    ):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            db.execute(sql, (key, account, seq))


CURSORS = (
    None,
    -(1 << 63),
    -5,
    0,
    1,
    2,
    12346,
    LIST_KEY_MAX_ORDER,
    LIST_KEY_MAX_ORDER + 1,
    LIST_KEY_MAX_ORDER + 7,
    PINNED_BIT - 1,
    PINNED_BIT,
    PINNED_BIT + 1,
    PINNED_BIT | 12346,
    PINNED_BIT | LIST_KEY_MAX_ORDER,
    PINNED_BIT | (LIST_KEY_MAX_ORDER + 1),
    (1 << 63) - 1,
)


@pytest.mark.parametrize("cursor", CURSORS)
def test_a_list_cursor_of_any_value_is_the_range_of_the_conversations_before_it(
    db: sqlite3.Connection, cursor: int | None
) -> None:
    for account in (1, 2, LIST_KEY_MAX_ACCOUNT):
        for n, active_time in enumerate(_active_times()):
            _insert(db, account, f"c{n}", active_time, list_key(account, active_time))
    for account in (1, 2, LIST_KEY_MAX_ACCOUNT):
        low, high = list_key_range(account, cursor)
        got = db.execute(
            "SELECT account_id, active_time FROM conversation "
            "WHERE list_key >= ? AND list_key < ? ORDER BY list_key DESC",
            (low, high),
        ).fetchall()
        expected = sorted(
            ((account, t) for t in _active_times() if cursor is None or t < cursor),
            reverse=True,
        )
        assert got == expected


@pytest.mark.parametrize(
    "after", [None, -(1 << 63), -1, 0, 1, 6, 7, 99, LIST_KEY_MAX_ORDER, 1 << 62]
)
def test_a_seq_of_any_value_is_the_range_of_the_changes_after_it(
    db: sqlite3.Connection, after: int | None
) -> None:
    seqs = (0, 1, 7, 8, 100, LIST_KEY_MAX_ORDER)
    for account in (1, 2, LIST_KEY_MAX_ACCOUNT):
        db.executemany(
            "INSERT INTO change (change_key, account_id, seq, kind, conv_type, conv_id, origin) "
            "VALUES (?, ?, ?, 0, 1, 'x', 't')",
            [((account << 42) | seq, account, seq) for seq in seqs],
        )
    for account in (1, 2, LIST_KEY_MAX_ACCOUNT):
        got = db.execute(
            "SELECT account_id, seq FROM change WHERE change_key >= ? AND change_key < ? "
            "ORDER BY change_key",
            change_key_range(account, after),
        ).fetchall()
        assert got == [(account, s) for s in seqs if after is None or s > after]


def _schema_11_database(path: Path) -> None:
    """A database as convd left it at schema 11, as its migrations made it (triggers and
    indexes included): four accounts (ids 1, 2, 3 and 7), conversations of both types with
    pinned ones, drafts, marks (bit 63 too) and a group, and their changes, each inserted in
    shuffled order."""
    rng = random.Random(11)
    document = draft_document(Draft(("hi",), "u", 5))
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        register_functions(db)
        db.executescript(f"BEGIN; {';'.join(MIGRATIONS[:11])}; PRAGMA user_version = 11; COMMIT;")
        rows = []
        for account in (1, 2, 3, 7):
            db.execute(
                "INSERT INTO account (id, sdk_app_id, user_id, last_seq) VALUES (?, 0, ?, 100)",
                (account, f"u{account}"),
            )
            db.execute(
                "INSERT INTO conversation_group (account_id, name) VALUES (?, 'g')", (account,)
            )
            for n in range(1, 40):
                pinned = n % 5 == 0
                rows.append(
                    (
                        account,
                        n | (PINNED_BIT if pinned else 0),
                        1 + n % 2,
                        f"c{n}",
                        n,
                        int(pinned),
                        n % 3,
                        document if n % 4 == 0 else None,
                        n,
                        f"custom {n}",
                        (1 | 1 << 63) - (1 << 64) if n % 6 == 0 else 0,
                        '["g"]' if n % 7 == 0 else None,
                    )
                )
        rng.shuffle(rows)
        db.executemany(
            "INSERT INTO conversation (account_id, active_time, conv_type, conv_id, order_key, "
            "is_pinned, unread_num, draft, draft_revision, custom_data, marks, conv_groups) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        # Odd seqs delete (no snapshot), even ones update.
        changes = [
            (
                account,
                seq,
                int(ChangeKind.DELETE if seq % 2 else ChangeKind.UPDATE),
                1,
                f"c{seq}",
                None
                if seq % 2
                else msgspec.json.encode(Conversation(ConvType.C2C, f"c{seq}", seq)),
                "t",
                seq,
            )
            for account in (1, 2, 3, 7)
            for seq in range(1, 60)
        ]
        rng.shuffle(changes)
        db.executemany(
            "INSERT INTO change (account_id, seq, kind, conv_type, conv_id, snapshot, origin, "
            "changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            changes,
        )


def _contents(path: Path) -> dict[str, list[Any]]:
    with closing(sqlite3.connect(path)) as db:
        return {
            "conversations": db.execute(
                "SELECT account_id, active_time, conv_type, conv_id, order_key, is_pinned, "
                "unread_num, draft, draft_revision, custom_data, marks, conv_groups "
                "FROM conversation ORDER BY account_id, active_time"
            ).fetchall(),
            "changes": db.execute(
                "SELECT account_id, seq, kind, conv_type, conv_id, snapshot, origin, changed_at "
                "FROM change ORDER BY account_id, seq"
            ).fetchall(),
            "accounts": db.execute("SELECT * FROM account ORDER BY id").fetchall(),
            "marks": db.execute("SELECT * FROM conversation_mark ORDER BY 1, 2, 3, 4").fetchall(),
            "members": db.execute(
                "SELECT * FROM conversation_group_member ORDER BY 1, 2, 3, 4"
            ).fetchall(),
            # Every index and trigger as schema 11 defined it (whitespace aside).
            "schema": sorted(
                (kind, name, table, " ".join((sql or "").split()))
                for kind, name, table, sql in db.execute(
                    "SELECT type, name, tbl_name, sql FROM sqlite_schema "
                    "WHERE type IN ('index', 'trigger')"
                )
            ),
        }


async def test_schema_11_becomes_12_with_every_row_index_and_trigger_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "convd.db"
    _schema_11_database(path)
    before = _contents(path)
    assert before["marks"] and before["members"]  # the triggers derived them at schema 11
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        for account in (1, 2, 3, 7):
            listed = await service.list_rows(Account(account, 0, f"u{account}"), 0, 1000)
            stored = before["conversations"]
            expected = sorted((t for a, t, *_ in stored if a == account), reverse=True)
            assert [row.active_time for row in listed.rows] == expected
            changes = await store.changes_after(account, 0, 1000)
            assert [c.seq for c in changes] == list(range(1, 60))
    after = _contents(path)
    assert after == before
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        keys = db.execute("SELECT list_key, account_id, active_time FROM conversation")
        assert all(key == list_key(account, time) for key, account, time in keys)


async def test_the_last_account_a_list_key_holds_works_and_the_next_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "convd.db"
    async with open_store(path, listing=ConvListing()):
        pass
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO account (id, sdk_app_id, user_id) VALUES (?, 0, 'last')",
            (LIST_KEY_MAX_ACCOUNT,),
        )
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        last = await service.login(0, "last")
        assert last.id == LIST_KEY_MAX_ACCOUNT
        key = ConvKey(ConvType.C2C, "bob")
        await service.set_draft(last, key, [DraftElement(0, "hi")], origin="t")
        await service.pin(last, key, is_pinned=True, origin="t")
        assert (await service.list_rows(last, 0, 10)).rows[0].conv_id == "bob"
        assert [c.seq for c in await store.changes_after(last.id, 0, 10)] == [1, 2]
        with pytest.raises(StorageFailure, match="holds the most accounts it can"):
            await service.login(0, "one too many")
        assert await store.find_account(0, "one too many") is None
        assert await service.count_conversations() == 1


async def test_the_last_change_a_change_key_holds_is_made_and_the_next_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "convd.db"
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        alice = await service.login(0, "alice")
        await service.set_draft(
            alice, ConvKey(ConvType.C2C, "bob"), [DraftElement(0, "hi")], origin="t"
        )
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "UPDATE account SET last_seq = ? WHERE id = ?", (LIST_KEY_MAX_ORDER - 1, alice.id)
        )
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        key = ConvKey(ConvType.C2C, "bob")
        last = await service.set_draft(alice, key, [DraftElement(0, "last")], origin="t")
        assert last.order_key == LIST_KEY_MAX_ORDER
        with pytest.raises(StorageFailure, match="used up its changes"):
            await service.set_draft(alice, key, [DraftElement(0, "one too many")], origin="t")
        with pytest.raises(StorageFailure, match="used up its changes"):
            await service.create(alice, ConvKey(ConvType.C2C, "carol"), origin="t")
        (kept,) = await service.get_many(alice, [key])
        assert kept.draft is not None and kept.draft.texts == ("last",)
        assert [c.seq for c in await store.changes_after(alice.id, LIST_KEY_MAX_ORDER - 1, 10)] == [
            LIST_KEY_MAX_ORDER
        ]


@pytest.mark.parametrize(
    "where",
    [None, ConversationFilter(), ConversationFilter(has_draft=False)],
    ids=["unfiltered", "no condition", "the many"],
)
def test_pages_of_one_account_end_where_its_conversations_do(
    db: sqlite3.Connection, where: ConversationFilter | None
) -> None:
    """Paging through an account between two others, pinned ones first: each page holds the
    next ones in list order, and "more follow" counts this account's conversations only."""
    for account in (1, 2, LIST_KEY_MAX_ACCOUNT):
        for n, active_time in enumerate(_active_times()):
            _insert(db, account, f"c{n}", active_time, list_key(account, active_time))
    listing = db.execute("SELECT listed_head FROM conversation").fetchone()
    assert listing == (b"",)  # renderings are empty here: compare the sort keys
    expected = sorted(_active_times(), reverse=True)
    for account in (1, 2, LIST_KEY_MAX_ACCOUNT):
        seen: list[int] = []
        cursor = None
        while True:
            statement = list_page_statement(account, cursor, 5, where, separator=b",")
            _, count, last, more = db.execute(*statement).fetchone()
            rows = db.execute(
                "SELECT active_time FROM conversation WHERE account_id = ? "
                "ORDER BY active_time DESC",
                (account,),
            ).fetchall()
            page = [t for (t,) in rows if cursor is None or t < cursor][:5]
            assert count == len(page) and last == (page[-1] if page else None)
            seen += page
            assert more == int(len(seen) < len(expected)), (account, seen)
            if not more:
                break
            cursor = last
        assert seen == expected
