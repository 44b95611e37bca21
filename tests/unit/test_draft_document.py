"""The stored draft document and schema version 6 (the conversation table in list order).

A list page hands each stored draft on as it is (between the conversation's stored rendering,
rpc/convert.py ``ConvListing``), so the stored document must be exactly what the wire contract
encodes for the same draft; and a
database from before version 6 must come out of the migration with the same documents, in
list order, with every conversation still found by its key.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from convd.domain import (
    PINNED_BIT,
    ConversationService,
    ConvKey,
    ConvType,
    Draft,
    DraftElement,
    EventBus,
)
from convd.rpc.convert import ConvListing, conv_info, wire_draft
from convd.store import open_store
from convd.store.migrations import MIGRATIONS, SCHEMA_VERSION
from convd.store.sqlite import list_page_statement
from convd.store.writer import draft_document, draft_from_document

pytestmark = pytest.mark.anyio

TRICKY = (
    "plain",
    "",
    'quotes " and \\ backslash',
    "control \x00 \x01 \x1f \t \n \r \x08 \x0c and DEL \x7f",
    "non-ASCII: 王小明 é 😀 \u2028 \u2029",
    "</script> / slash",
)


@pytest.mark.parametrize("text", TRICKY)
def test_the_stored_document_is_the_wire_encoding_of_the_draft(text: str) -> None:
    draft = Draft((text, "second"), f"ud {text}", 1_700_000_000)
    document = draft_document(draft)
    assert document == msgspec.json.encode(wire_draft(draft))
    assert draft_from_document(document) == draft


def test_a_draft_without_text_elements_round_trips() -> None:
    draft = Draft((), "only user data", 0)
    assert draft_from_document(draft_document(draft)) == draft


def _schema_5_database(path: Path) -> None:
    """A database as convd left it at schema version 5: drafts as three columns."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        for target, script in enumerate(MIGRATIONS[:5], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {target}; COMMIT;")
        db.execute(
            "INSERT INTO account (id, sdk_app_id, user_id, last_seq) VALUES (1, 0, 'alice', 40)"
        )
        rows = [
            (1, f"u{n}", n, 0, n, msgspec.json.encode([text, "b"]).decode(), f"ud{n}", 1000 + n, n)
            for n, text in enumerate(TRICKY, start=1)
        ]
        rows.append((2, "@TGS#grp", 30, 1, 30 | (1 << 62), None, None, None, 4))
        db.executemany(
            "INSERT INTO conversation (account_id, conv_type, conv_id, order_key, is_pinned, "
            "active_time, draft_texts, draft_user_define, draft_edit_time, draft_revision) "
            "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


async def test_migration_6_keeps_every_conversation_in_list_order(tmp_path: Path) -> None:
    path = tmp_path / "convd.db"
    _schema_5_database(path)
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        alice = await service.login(0, "alice")
        page = await service.list_rows(alice, 0, 100)
        assert [row.conv_id for row in page.rows] == [
            "@TGS#grp",
            *(f"u{n}" for n in range(len(TRICKY), 0, -1)),
        ]
        keys = [ConvKey(ConvType(row.conv_type), row.conv_id) for row in page.rows]
        by_key = {c.key: c for c in await service.get_many(alice, keys)}
        for row in page.rows:
            conversation = by_key[ConvKey(ConvType(row.conv_type), row.conv_id)]
            # The migrated document reads back as the draft it was, and it is byte for byte
            # what the wire contract encodes for it (the migration uses the writer's encoder),
            # as is the conversation's rendering for list pages (made at the first start).
            assert row.rendering == msgspec.json.encode(conv_info(conversation))
        listed = (await service.list_page(alice, 0, 100)).listed
        assert listed == b"[" + b",".join(row.rendering for row in page.rows) + b"]"
        for n, text in enumerate(TRICKY, start=1):
            draft = by_key[ConvKey(ConvType.C2C, f"u{n}")].draft
            assert draft == Draft((text, "b"), f"ud{n}", 1000 + n)
        group = by_key[ConvKey(ConvType.GROUP, "@TGS#grp")]
        assert group.draft is None and group.is_pinned and group.draft_revision == 4
        # Writes after the migration: the key finds the row, the order follows.
        await service.set_draft(
            alice, ConvKey(ConvType.C2C, "u1"), [DraftElement(0, "new")], origin="t"
        )
        first = (await service.list_rows(alice, 0, 2)).rows
        assert [row.conv_id for row in first] == ["@TGS#grp", "u1"]
        assert await service.count_conversations() == len(TRICKY) + 1
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counted = db.execute("SELECT conversations FROM account").fetchone()
        assert counted == (len(TRICKY) + 1,)


async def test_a_list_page_reads_one_range_of_the_table(tmp_path: Path) -> None:
    path = tmp_path / "convd.db"
    async with open_store(path, listing=ConvListing()):
        pass
    with closing(sqlite3.connect(path)) as db:
        for cursor in (None, 5, PINNED_BIT | 5):
            sql, params = list_page_statement(1, cursor, 9, None, separator=b",")
            plan = " ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
            # Both the page and the look past its end: ranges of the rowid (list_key).
            assert plan.count("USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)") == 2, plan
            assert "TEMP B-TREE" not in plan, plan
