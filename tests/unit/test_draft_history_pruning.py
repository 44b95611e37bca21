"""Draft history in the domain and the store: what is kept, its bounds (count and age, on the
store's clock), restore, and that a deleted conversation takes its history with it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from convd.domain import (
    ChangeKind,
    ConversationNotFound,
    ConversationService,
    ConvKey,
    ConvType,
    DraftElement,
    DraftRevisionConflict,
    DraftVersionNotFound,
    EventBus,
    Limits,
)
from convd.rpc import ConvListing
from convd.store import SCHEMA_VERSION, open_store
from convd.store.migrations import MIGRATIONS, register_functions
from convd.store.writer import _HISTORY_PRUNE_EVERY
from convd_schemas.limits import DEFAULT_DRAFT_HISTORY, DEFAULT_DRAFT_HISTORY_SECONDS

pytestmark = pytest.mark.anyio

BOB = ConvKey(ConvType.C2C, "bob")


def text(value: str) -> list[DraftElement]:
    return [DraftElement(0, value)]


def test_the_domain_defaults_are_the_contracts() -> None:
    assert Limits.draft_history == DEFAULT_DRAFT_HISTORY == 20
    assert Limits.draft_history_seconds == DEFAULT_DRAFT_HISTORY_SECONDS == 30 * 86400


async def test_every_replaced_draft_is_kept_newest_first_with_who_and_how(tmp_path: Path) -> None:
    now = [1_000_000.0]
    async with open_store(tmp_path / "db", listing=ConvListing(), clock=lambda: now[0]) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        first = await service.set_draft(account, BOB, text("one"), origin="w1")
        assert first.draft_revision == 1
        # The first draft replaced "no draft": nothing is kept for it.
        _, versions = await service.draft_history(account, BOB, 20)
        assert versions == []
        now[0] += 10
        await service.set_draft(account, BOB, text("two"), user_define="ud", origin="w2")
        # The same content again changes nothing, so keeps nothing.
        await service.set_draft(account, BOB, text("two"), user_define="ud", origin="w3")
        now[0] += 10
        await service.cancel_draft(account, BOB, origin="w4")
        # Clearing a cleared draft, and setting the first draft after it, replace "no draft".
        await service.cancel_draft(account, BOB, origin="w5")
        await service.set_draft(account, BOB, text("three"), origin="w6")
        conversation, versions = await service.draft_history(account, BOB, 20)
        assert conversation.draft_revision == 4
        assert [
            (v.revision, v.draft.texts, v.draft.user_define, v.replaced_by, v.replaced_how)
            for v in versions
        ] == [
            (2, ("two",), "ud", "w4", "cancel"),
            (1, ("one",), "", "w2", "set"),
        ]
        assert [v.replaced_at for v in versions] == [1_000_020, 1_000_010]
        assert versions[1].draft.edit_time == first.draft.edit_time if first.draft else False
        # count bounds the answer.
        _, newest = await service.draft_history(account, BOB, 1)
        assert [v.revision for v in newest] == [2]


async def test_typing_and_sending_in_turn_stays_bounded(tmp_path: Path) -> None:
    """Set, clear (sent), set, clear...: only every other revision is kept (no draft is not
    kept), and the count bound still holds for what is stored."""
    async with open_store(tmp_path / "db", listing=ConvListing(), draft_history=5) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        for n in range(100):
            await service.set_draft(account, BOB, text(f"message {n}"), origin="t")
            await service.cancel_draft(account, BOB, origin="t")
            assert _rows(tmp_path / "db", "bob") <= 5 + _HISTORY_PRUNE_EVERY - 1
        _, versions = await service.draft_history(account, BOB, 100)
        assert [v.draft.texts for v in versions] == [(f"message {n}",) for n in range(99, 94, -1)]


async def test_the_history_keeps_the_newest_n_versions(tmp_path: Path) -> None:
    async with open_store(tmp_path / "db", listing=ConvListing(), draft_history=3) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        other = ConvKey(ConvType.GROUP, "team")
        for n in range(10):
            await service.set_draft(account, BOB, text(f"bob {n}"), origin="t")
        await service.set_draft(account, other, text("team 0"), origin="t")
        await service.set_draft(account, other, text("team 1"), origin="t")
        _, versions = await service.draft_history(account, BOB, 100)
        assert [v.draft.texts for v in versions] == [("bob 8",), ("bob 7",), ("bob 6",)]
        # Pruned in the writing transactions, several versions at a time: the rows are gone,
        # not just hidden, and however many writes come, at most N + 7 are ever stored.
        assert 3 <= _rows(tmp_path / "db", "bob") <= 3 + _HISTORY_PRUNE_EVERY - 1
        for n in range(10, 50):
            await service.set_draft(account, BOB, text(f"bob {n}"), origin="t")
            assert _rows(tmp_path / "db", "bob") <= 3 + _HISTORY_PRUNE_EVERY - 1
        # Each conversation has its own bound.
        _, team = await service.draft_history(account, other, 100)
        assert [v.draft.texts for v in team] == [("team 0",)]
        # A pruned version cannot be restored.
        with pytest.raises(DraftVersionNotFound):
            await service.restore_draft(account, BOB, revision=5, origin="t")
        _, versions = await service.draft_history(account, BOB, 100)
        assert [v.draft.texts for v in versions] == [("bob 48",), ("bob 47",), ("bob 46",)]


async def test_versions_older_than_the_age_bound_go_even_of_idle_conversations(
    tmp_path: Path,
) -> None:
    now = [1_000_000.0]
    async with open_store(
        tmp_path / "db", listing=ConvListing(), clock=lambda: now[0], draft_history_seconds=3600
    ) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        idle = ConvKey(ConvType.C2C, "carol")
        await service.set_draft(account, idle, text("carol 1"), origin="t")
        await service.set_draft(account, idle, text("carol 2"), origin="t")
        await service.set_draft(account, BOB, text("bob 1"), origin="t")
        await service.set_draft(account, BOB, text("bob 2"), origin="t")
        now[0] += 3000
        await service.set_draft(account, BOB, text("bob 3"), origin="t")
        _, versions = await service.draft_history(account, BOB, 20)
        assert [v.draft.texts for v in versions] == [("bob 2",), ("bob 1",)]
        now[0] += 1000  # bob 1 and carol 1 are now 4000 s old, bob 2 1000 s
        # Past the bound: no longer listed nor restorable, even before anything prunes it.
        _, versions = await service.draft_history(account, BOB, 20)
        assert [v.draft.texts for v in versions] == [("bob 2",)]
        _, carol = await service.draft_history(account, idle, 20)
        assert carol == []
        with pytest.raises(DraftVersionNotFound):
            await service.restore_draft(account, idle, revision=1, origin="t")
        assert _rows(tmp_path / "db", "carol") == 1
        # A write to another conversation prunes the account's expired versions.
        await service.set_draft(account, BOB, text("bob 4"), origin="t")
        assert _rows(tmp_path / "db", "carol") == 0
        assert _rows(tmp_path / "db", "bob") == 2


async def test_no_history_when_it_is_turned_off(tmp_path: Path) -> None:
    async with open_store(tmp_path / "db", listing=ConvListing(), draft_history=0) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        await service.set_draft(account, BOB, text("one"), origin="t")
        await service.set_draft(account, BOB, text("two"), origin="t")
        _, versions = await service.draft_history(account, BOB, 20)
        assert versions == []
        assert _rows(tmp_path / "db", "bob") == 0


async def test_restore_makes_a_new_revision_and_keeps_what_it_replaced(tmp_path: Path) -> None:
    now = [2_000_000.0]
    changes = []
    bus = EventBus()
    async with open_store(tmp_path / "db", listing=ConvListing(), clock=lambda: now[0]) as store:
        service = ConversationService(store, bus, clock=lambda: now[0])
        account = await service.login(0, "alice")
        bus.add(account.id, changes.append)
        await service.set_draft(account, BOB, text("long draft"), user_define="u1", origin="a")
        overwritten = await service.set_draft(account, BOB, text("oops"), origin="b")
        now[0] += 60
        restored = await service.restore_draft(account, BOB, revision=1, origin="c")
        assert restored.draft is not None
        assert (restored.draft.texts, restored.draft.user_define) == (("long draft",), "u1")
        assert restored.draft.edit_time == 2_000_060
        assert restored.draft_revision == 3
        # Activated, as by a set.
        assert restored.order_key > overwritten.order_key
        assert changes[-1].kind is ChangeKind.UPDATE
        assert changes[-1].conversation == restored
        assert changes[-1].origin == "c"
        _, versions = await service.draft_history(account, BOB, 20)
        assert [(v.revision, v.draft.texts, v.replaced_how) for v in versions] == [
            (2, ("oops",), "restore"),
            (1, ("long draft",), "set"),
        ]
        # The restore can be undone the same way.
        again = await service.restore_draft(account, BOB, revision=2, if_revision=3, origin="c")
        assert again.draft is not None and again.draft.texts == ("oops",)
        # Restoring the current revision, or a version equal to the current draft: no change.
        seen = len(changes)
        same = await service.restore_draft(account, BOB, revision=4, origin="c")
        assert same == again
        assert (await service.restore_draft(account, BOB, revision=2, origin="c")) == again
        assert len(changes) == seen
        # if_revision mismatch: nothing written, the current state in the error.
        with pytest.raises(DraftRevisionConflict) as conflict:
            await service.restore_draft(account, BOB, revision=1, if_revision=3, origin="c")
        assert conflict.value.current == again
        with pytest.raises(DraftVersionNotFound):
            await service.restore_draft(account, BOB, revision=99, origin="c")
        with pytest.raises(ConversationNotFound):
            await service.restore_draft(
                account, ConvKey(ConvType.C2C, "nobody"), revision=1, origin="c"
            )


async def test_deleting_a_conversation_deletes_its_history(tmp_path: Path) -> None:
    async with open_store(tmp_path / "db", listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        for n in range(4):
            await service.set_draft(account, BOB, text(f"v{n}"), origin="t")
        assert _rows(tmp_path / "db", "bob") == 3
        await service.delete(account, BOB, origin="t")
        assert _rows(tmp_path / "db", "bob") == 0
        with pytest.raises(ConversationNotFound):
            await service.draft_history(account, BOB, 20)
        # Created again: a fresh, empty history; old revisions cannot be restored.
        await service.set_draft(account, BOB, text("new"), origin="t")
        _, versions = await service.draft_history(account, BOB, 20)
        assert versions == []
        with pytest.raises(DraftVersionNotFound):
            await service.restore_draft(account, BOB, revision=2, origin="t")


async def test_accounts_do_not_see_each_others_history(tmp_path: Path) -> None:
    async with open_store(tmp_path / "db", listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        alice = await service.login(0, "alice")
        mallory = await service.login(0, "mallory")
        await service.set_draft(alice, BOB, text("secret 1"), origin="t")
        await service.set_draft(alice, BOB, text("secret 2"), origin="t")
        await service.set_draft(alice, BOB, text("secret 3"), origin="t")
        await service.set_draft(mallory, BOB, text("x"), origin="t")
        _, versions = await service.draft_history(mallory, BOB, 20)
        assert versions == []
        with pytest.raises(DraftVersionNotFound):
            await service.restore_draft(mallory, BOB, revision=2, origin="t")


def _rows(db: Path, conv_id: str) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM draft_history WHERE conv_id = ?", (conv_id,)
        ).fetchone()
    return int(row[0])


async def test_schema_9s_history_moves_to_one_kept_in_age_order(tmp_path: Path) -> None:
    """Schema version 10 stores the versions in the order they were kept (by age): the
    expired ones are the table's first rows, and the age bound needs no index."""
    db = tmp_path / "db"
    with sqlite3.connect(db, isolation_level=None) as old:
        register_functions(old)
        for target, script in enumerate(MIGRATIONS[:9], start=1):
            old.executescript(f"BEGIN; {script}; PRAGMA user_version = {target}; COMMIT;")
        old.execute("INSERT INTO account (sdk_app_id, user_id) VALUES (0, 'alice')")
        old.execute(
            "INSERT INTO conversation (account_id, active_time, conv_type, conv_id, order_key, "
            "draft, draft_revision) VALUES (1, 9, 1, 'bob', 9, NULL, 4), (1, 8, 1, 'carol', 8, "
            "NULL, 3)"
        )
        # Clustered by conversation in schema 9: bob's rows first, whatever their age.
        old.executemany(
            "INSERT INTO draft_history VALUES (1, 1, ?, ?, ?, '', 0, ?, 'w', 'set')",
            [
                ("bob", 1, '["bob 1"]', 1_000_000),
                ("bob", 2, '["bob 2"]', 1_000_300),
                ("bob", 3, '["bob 3"]', 1_000_500),
                ("carol", 1, '["carol 1"]', 1_000_100),
                ("carol", 2, '["carol 2"]', 1_000_400),
            ],
        )
    now = [1_000_600.0]
    async with open_store(
        db, listing=ConvListing(), clock=lambda: now[0], draft_history_seconds=3600
    ) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        _, bob = await service.draft_history(account, BOB, 20)
        assert [(v.revision, v.draft.texts) for v in bob] == [
            (3, ("bob 3",)),
            (2, ("bob 2",)),
            (1, ("bob 1",)),
        ]
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            order = conn.execute("SELECT draft_texts FROM draft_history ORDER BY id").fetchall()
            indexes = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'draft_history'"
                )
            }
        assert [json for (json,) in order] == [
            '["bob 1"]',
            '["carol 1"]',
            '["bob 2"]',
            '["carol 2"]',
            '["bob 3"]',
        ]
        assert indexes == {"draft_history_by_conversation"}
        # The oldest three expire; a write that keeps a version prunes them, and only them.
        now[0] = 1_000_350.0 + 3600
        await service.set_draft(account, ConvKey(ConvType.C2C, "dave"), text("d1"), origin="t")
        await service.set_draft(account, ConvKey(ConvType.C2C, "dave"), text("d2"), origin="t")
        assert (_rows(db, "bob"), _rows(db, "carol"), _rows(db, "dave")) == (1, 1, 1)
        _, carol = await service.draft_history(account, ConvKey(ConvType.C2C, "carol"), 20)
        assert [v.revision for v in carol] == [2]
