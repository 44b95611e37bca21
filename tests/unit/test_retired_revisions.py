"""Draft revisions survive delete and re-create, in the store: the last revisions of deleted
conversations are kept (bounded like the change history), pruned ones raise the account's
floor, and databases from before schema version 4 are migrated safely."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from convd.domain import ConversationService, ConvKey, ConvType, DraftElement, EventBus
from convd.rpc import ConvListing
from convd.store import SCHEMA_VERSION, open_store
from convd.store.migrations import MIGRATIONS

pytestmark = pytest.mark.anyio

BOB = ConvKey(ConvType.C2C, "bob")


def _sql(path: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


async def test_pruned_last_revisions_raise_the_floor_and_are_never_reused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "convd.db"
    kept = 10
    async with open_store(path, listing=ConvListing(), kept_changes=kept) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        revisions: dict[str, int] = {}
        for n in range(12):
            key = ConvKey(ConvType.C2C, f"u{n}")
            for text in range(n % 4 + 1):
                info = await service.set_draft(
                    account, key, [DraftElement(0, str(text))], origin="t"
                )
            revisions[key.conv_id] = info.draft_revision
            await service.delete(account, key, origin="t")
        # Never more last revisions than the change history keeps changes.
        (count,) = _sql(path, "SELECT count(*) FROM deleted_conversation")[0]
        assert 0 < int(count) <= kept  # type: ignore[call-overload]
        kept_ids = {str(row[0]) for row in _sql(path, "SELECT conv_id FROM deleted_conversation")}
        pruned = set(revisions) - kept_ids
        assert pruned, "nothing was pruned: the test does not test pruning"
        (floor,) = _sql(path, "SELECT revision_floor FROM account")[0]
        assert floor == max(revisions[conv_id] for conv_id in pruned)
        # Every conversation deleted, pruned or not, comes back above its old revision.
        for conv_id, old in revisions.items():
            created = await service.create(account, ConvKey(ConvType.C2C, conv_id), origin="t")
            assert created.draft_revision > old
        # One never seen cannot be told apart from a pruned one: it starts above the floor.
        fresh = await service.create(account, ConvKey(ConvType.C2C, "fresh"), origin="t")
        assert fresh.draft_revision == floor + 1  # type: ignore[operator]
        # Other accounts are not affected.
        other = await service.login(0, "bob")
        assert (await service.create(other, BOB, origin="t")).draft_revision == 0


def _schema_3_database(path: Path) -> None:
    """A database as convd left it before schema version 4: alice deleted a conversation
    (her change history shows it), carol's history was pruned, dave never deleted one."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        for target, script in enumerate(MIGRATIONS[:3], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {target}; COMMIT;")
        db.execute(
            "INSERT INTO account (id, sdk_app_id, user_id, last_seq, pruned_seq) VALUES "
            "(1, 0, 'alice', 7, 0), (2, 0, 'carol', 30, 20), (3, 0, 'dave', 9, 0)"
        )
        db.execute(
            "INSERT INTO change (account_id, seq, kind, conv_type, conv_id, snapshot, origin) "
            "VALUES (1, 7, 1, 1, 'bob', NULL, 'c1'), (3, 9, 2, 1, 'bob', NULL, 'c1')"
        )


async def test_migration_gives_accounts_that_may_have_deleted_a_floor(tmp_path: Path) -> None:
    path = tmp_path / "convd.db"
    _schema_3_database(path)
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        floors = dict(_sql(path, "SELECT user_id, revision_floor FROM account"))
        assert floors == {"alice": 7, "carol": 30, "dave": -1}
        assert _sql(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        # No revision can exceed the account's change sequence, so starting above it is safe.
        alice = await service.login(0, "alice")
        assert (await service.create(alice, BOB, origin="t")).draft_revision == 8
        dave = await service.login(0, "dave")
        assert (await service.create(dave, BOB, origin="t")).draft_revision == 0
