"""Schema 12's packed rowids: a conversation's ``list_key`` (its place in the list) and a
change's ``change_key``, their ranges for cursors of any value, the CHECKs that keep them
exact, and the migration from schema 11 that keeps every conversation, its order and the
change history."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from convd.domain import (
    PINNED_BIT,
    ConversationFilter,
    ConversationService,
    ConvKey,
    ConvType,
    DraftElement,
    EventBus,
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
from convd.store.writer import change_key_range, list_key, list_key_range

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
    for account in (1, 2, 3):
        for n, active_time in enumerate(_active_times()):
            _insert(db, account, f"c{n}", active_time, list_key(account, active_time))
    for account in (1, 2, 3):
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
    for account in (1, 2, 3):
        db.executemany(
            "INSERT INTO change (change_key, account_id, seq, kind, conv_type, conv_id, origin) "
            "VALUES (?, ?, ?, 0, 1, 'x', 't')",
            [((account << 42) | seq, account, seq) for seq in seqs],
        )
    for account in (1, 2, 3):
        got = db.execute(
            "SELECT account_id, seq FROM change WHERE change_key >= ? AND change_key < ? "
            "ORDER BY change_key",
            change_key_range(account, after),
        ).fetchall()
        assert got == [(account, s) for s in seqs if after is None or s > after]


async def test_schema_11_becomes_12_with_every_conversation_in_order_and_every_change(
    tmp_path: Path,
) -> None:
    path = tmp_path / "convd.db"
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        accounts = [await service.login(0, user) for user in ("alice", "bob")]
        rng = random.Random(12)
        for n in range(300):
            account = accounts[n % 2]
            key = ConvKey(ConvType.C2C if n % 3 else ConvType.GROUP, f"c{rng.randrange(60)}")
            await service.set_draft(account, key, [DraftElement(0, f"d{n}")], origin="t")
            if n % 17 == 0:
                await service.pin(account, key, is_pinned=n % 34 == 0, origin="t")
        before = {
            a.id: (
                (await service.list_page(a, 0, 1000)).listed,
                await store.changes_after(a.id, 0, 10_000),
            )
            for a in accounts
        }
    # The same rows as schema 11 stored them: conversations and changes keyed by their
    # columns (WITHOUT ROWID), in another order than the keys'.
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        raw.executescript(
            "BEGIN;"
            "CREATE TABLE c11 AS SELECT * FROM conversation;"
            "CREATE TABLE h11 AS SELECT * FROM change;"
            "DROP TABLE conversation; DROP TABLE change;"
            + MIGRATIONS[5]
            .split("INSERT INTO conversation_v6")[0]
            .replace("conversation_v6", "conversation")
            + "ALTER TABLE conversation ADD COLUMN custom_data TEXT NOT NULL DEFAULT '';"
            "ALTER TABLE conversation ADD COLUMN marks INTEGER NOT NULL DEFAULT 0;"
            "ALTER TABLE conversation ADD COLUMN conv_groups TEXT;"
            "ALTER TABLE conversation ADD COLUMN listed_head BLOB NOT NULL DEFAULT X'';"
            "ALTER TABLE conversation ADD COLUMN listed_tail BLOB NOT NULL DEFAULT X'';"
            "INSERT INTO conversation SELECT account_id, active_time, conv_type, conv_id, "
            "order_key, is_pinned, unread_num, draft, draft_revision, custom_data, marks, "
            "conv_groups, listed_head, listed_tail FROM c11 ORDER BY conv_id;"
            + MIGRATIONS[0][MIGRATIONS[0].index("CREATE TABLE change") :]
            + "ALTER TABLE change ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0;"
            "INSERT INTO change SELECT account_id, seq, kind, conv_type, conv_id, snapshot, "
            "origin, changed_at FROM h11 ORDER BY conv_id;"
            "DROP TABLE c11; DROP TABLE h11;"
            f"PRAGMA user_version = {SCHEMA_VERSION - 1};"
            "COMMIT;"
        )
        assert raw.execute("SELECT count(*) FROM conversation").fetchone()[0] > 0
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        for account in accounts:
            listed, changes = before[account.id]
            assert (await service.list_page(account, 0, 1000)).listed == listed
            assert await store.changes_after(account.id, 0, 10_000) == changes
        counts = [(await service.list_page(a, 0, 1000)).count for a in accounts]
        assert await service.count_conversations() == sum(counts) > 60
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)


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
    for account in (1, 2, 3):
        for n, active_time in enumerate(_active_times()):
            _insert(db, account, f"c{n}", active_time, list_key(account, active_time))
    listing = db.execute("SELECT listed_head FROM conversation").fetchone()
    assert listing == (b"",)  # renderings are empty here: compare the sort keys
    expected = sorted(_active_times(), reverse=True)
    for account in (1, 2, 3):
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
