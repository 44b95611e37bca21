"""Every filter of conv.list_by_filter reads an index in list order: EXPLAIN QUERY PLAN shows
index searches only, no full scan and no temporary B-tree for the ORDER BY."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from convd.domain import ConversationFilter, ConvType
from convd.store.migrations import MIGRATIONS, register_functions
from convd.store.sqlite import (
    filtered_list_query,
    list_page_statement,
    pages_join_in_order,
    plan_joins_in_order,
)
from convd.store.writer import list_key

FILTERS = {
    "type": ConversationFilter(conv_type=ConvType.GROUP),
    "the other type": ConversationFilter(conv_type=ConvType.C2C),
    "one mark": ConversationFilter(mark_type=0x1),
    "a custom mark (bit 63)": ConversationFilter(mark_type=1 << 63),
    "two marks": ConversationFilter(mark_type=0x1 | 0x4),
    "unmarked": ConversationFilter(mark_type=0),
    "a group": ConversationFilter(group="work"),
    "no group": ConversationFilter(group=""),
    "with a draft": ConversationFilter(has_draft=True),
    "without a draft": ConversationFilter(has_draft=False),
    "no condition": ConversationFilter(),
    "all at once": ConversationFilter(
        conv_type=ConvType.C2C, mark_type=0x2, group="work", has_draft=True
    ),
    "type and unmarked": ConversationFilter(conv_type=ConvType.C2C, mark_type=0),
    "mark and no group": ConversationFilter(mark_type=0x8, group="", has_draft=False),
}

INDEX = {
    "type": "conversation_groups_in_order",
    "the other type": "INTEGER PRIMARY KEY",
    "one mark": "conversation_mark_in_order",
    "a custom mark (bit 63)": "conversation_mark_in_order",
    "two marks": "conversation_mark_in_order",
    "unmarked": "INTEGER PRIMARY KEY",
    "a group": "conversation_group_member_in_order",
    "no group": "INTEGER PRIMARY KEY",
    "with a draft": "conversation_drafts_in_order",
    "without a draft": "INTEGER PRIMARY KEY",
    "no condition": "INTEGER PRIMARY KEY",  # the table itself: stored in list order
    "all at once": "conversation_group_member_in_order",
    "type and unmarked": "INTEGER PRIMARY KEY",
    "mark and no group": "conversation_mark_in_order",
}


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    register_functions(conn)
    for script in MIGRATIONS:
        conn.executescript(script)
    # Some rows and statistics, so the planner weighs real choices.
    conn.execute("INSERT INTO account (id, sdk_app_id, user_id) VALUES (1, 0, 'a')")
    conn.executemany(
        "INSERT INTO conversation (account_id, conv_type, conv_id, order_key, active_time, "
        "list_key, marks, conv_groups, draft) VALUES (1, ?, ?, ?, ?, ?, ?, NULL, ?)",
        [
            (1 + n % 2, f"c{n}", n, n, list_key(1, n), n % 16, b'{"x":1}' if n % 7 == 0 else None)
            for n in range(1, 2000)
        ],
    )
    conn.execute("ANALYZE")
    yield conn
    conn.close()


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("cursor", [None, 12345], ids=["first page", "next page"])
def test_each_filter_reads_an_index_in_list_order(
    db: sqlite3.Connection, name: str, cursor: int | None
) -> None:
    sql, params = filtered_list_query(1, cursor, 101, FILTERS[name])
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
    text = "\n".join(plan)
    assert "TEMP B-TREE" not in text, text
    assert not any(step.startswith("SCAN") for step in plan), text
    assert f"{INDEX[name]} " in plan[0] + " ", text
    assert plan[0].startswith("SEARCH"), text


def test_the_queries_return_what_the_filter_says(db: sqlite3.Connection) -> None:
    """The same SQL, run: a check that the plans above are of queries that answer right."""
    sql, params = filtered_list_query(1, None, 5, ConversationFilter(has_draft=True))
    rows = db.execute(sql, params).fetchall()
    assert [row[3] for row in rows] == ["c1995", "c1988", "c1981", "c1974", "c1967"]
    sql, params = filtered_list_query(1, 1967, 2, ConversationFilter(has_draft=True))
    assert [row[3] for row in db.execute(sql, params)] == ["c1960", "c1953"]


@pytest.mark.parametrize("name", [*sorted(FILTERS), None])
@pytest.mark.parametrize("cursor", [None, 12345], ids=["first page", "next page"])
def test_the_page_statement_reads_the_same_index_in_order(
    db: sqlite3.Connection, name: str | None, cursor: int | None
) -> None:
    """The statement a page runs (the renderings joined in SQLite, and whether more follow)
    drives the same index twice, and reads its page as a co-routine: in list order, which
    group_concat keeps."""
    sql, params = list_page_statement(
        1, cursor, 101, None if name is None else FILTERS[name], separator=b","
    )
    rows = db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    plan = [row[3] for row in rows]
    text = "\n".join(plan)
    assert plan_joins_in_order(rows), text
    # Only the subqueries are scanned, never a table or an index of the account's rows.
    scanned = [step.split()[1] for step in plan if step.startswith("SCAN")]
    assert not {"c", "m", "conversation"} & set(scanned), text
    index = "INTEGER PRIMARY KEY" if name is None else INDEX[name]
    assert sum(f"{index} " in step + " " for step in plan) == 2, text


def test_a_page_statement_answers_with_the_page_and_what_follows(db: sqlite3.Connection) -> None:
    where = ConversationFilter(has_draft=True)
    statement = list_page_statement(1, None, 2, where, separator=b"<>")
    joined, count, last, more = db.execute(*statement).fetchone()
    assert (count, last, more) == (2, 1988, 1)
    rows = db.execute(*filtered_list_query(1, None, 2, where)).fetchall()
    assert joined == b"<>".join(row[1] for row in rows)
    statement = list_page_statement(1, 8, 5, where, separator=b",")
    assert db.execute(*statement).fetchone()[1:] == (1, 7, 0)
    statement = list_page_statement(1, 7, 5, where, separator=b",")
    assert db.execute(*statement).fetchone() == (None, 0, None, 0)


def test_this_sqlite_joins_every_shape_of_page_in_order(db: sqlite3.Connection) -> None:
    """What open_store asks before it lets SQLite join pages (else Python joins them)."""
    assert pages_join_in_order(db)


def test_a_page_read_without_its_own_co_routine_is_not_in_order(db: sqlite3.Connection) -> None:
    """The check must tell a flattened page (no ORDER BY and LIMIT of its own: the aggregate
    reads the table in whatever order) or a sorted one from the statement convd runs."""
    flattened = (
        "SELECT listed, n FROM (SELECT group_concat(rendering, ',') AS listed, count(*) AS n "
        "FROM (SELECT listed_head AS rendering FROM conversation WHERE account_id = 1)) AS page"
    )
    sorted_apart = (
        "SELECT group_concat(rendering, ',') FROM (SELECT listed_head AS rendering "
        "FROM conversation WHERE account_id = 1 ORDER BY conv_id LIMIT 5)"
    )
    for sql in (flattened, sorted_apart):
        assert not plan_joins_in_order(db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()), sql
