"""List pages are read from renderings the store keeps with each conversation (schema 11).

A page must be byte for byte what the wire contract encodes for the same conversations, in
list order, whatever wrote them (every kind of write, a group rename that touches many rows);
and the store renders every conversation again when it opens a database whose renderings
another renderer made, and only then.
"""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from convd.domain import (
    Account,
    Conversation,
    ConversationFilter,
    ConversationService,
    ConvKey,
    ConvType,
    DraftElement,
    EventBus,
)
from convd.rpc import convert
from convd.rpc.convert import ConvListing, conv_info
from convd.store import open_store
from convd.store import sqlite as sqlite_store
from convd.store.migrations import MIGRATIONS, SCHEMA_VERSION

pytestmark = pytest.mark.anyio

TRICKY = (
    "plain",
    'quotes " and \\ backslash',
    "control \x00 \x01 \x1f \t \n and DEL \x7f",
    "non-ASCII: 王小明 é 😀 \u2028",
)


def _key(n: int) -> ConvKey:
    # Ids are printable ASCII: the ones JSON escapes are among them.
    return ConvKey(ConvType.GROUP if n % 3 == 0 else ConvType.C2C, f'id "\\ {n}')


async def _fill(service: ConversationService, alice: Account) -> None:
    """Conversations that between them set every field, by every kind of write."""
    for n in range(24):
        key = _key(n)
        if n % 2:
            text = TRICKY[n % 4]
            await service.set_draft(
                alice, key, [DraftElement(0, text), DraftElement(0, "2")], user_define=text,
                origin="t",
            )  # fmt: skip
        else:
            await service.create(alice, key, origin="t")
    await service.pin(alice, _key(5), is_pinned=True, origin="t")
    await service.pin(alice, _key(6), is_pinned=True, origin="t")
    await service.set_custom_data(alice, [_key(1), _key(2)], TRICKY[2], origin="t")
    await service.mark(alice, [_key(3), _key(4)], mark_type=1 << 40, enable=True, origin="t")
    await service.mark(alice, [_key(4)], mark_type=1, enable=True, origin="t")
    await service.create_group(alice, "g \u00e9", [_key(7), _key(8)], origin="t")
    await service.create_group(alice, "h", [_key(8), _key(9)], origin="t")
    await service.rename_group(alice, "h", 'h "2"', origin="t")  # rewrites its members
    await service.add_to_group(alice, "g \u00e9", [_key(10), _key(13)], origin="t")
    await service.remove_from_group(alice, "g \u00e9", [_key(7)], origin="t")
    await service.create_group(alice, "gone", [_key(14), _key(15)], origin="t")
    await service.delete_group(alice, "gone", origin="t")
    await service.mark(alice, [_key(3)], mark_type=1 << 40, enable=False, origin="t")
    await service.cancel_draft(alice, _key(11), origin="t")
    await service.set_draft(alice, _key(13), [DraftElement(0, "over")], origin="t")
    await service.set_draft(alice, _key(13), [DraftElement(0, TRICKY[3])], origin="t")
    await service.restore_draft(alice, _key(13), revision=1, origin="t")
    await service.delete(alice, _key(12), origin="t")
    await service.delete_many(alice, [_key(16), _key(18)], origin="t")


async def _expected(service: ConversationService, alice: Account) -> list[Conversation]:
    """The account's conversations in list order (read a row at a time), as the domain has
    them."""
    rows = (await service.list_rows(alice, 0, 1000)).rows
    keys = [ConvKey(ConvType(row.conv_type), row.conv_id) for row in rows]
    return await service.get_many(alice, keys)


async def test_every_page_is_the_wire_encoding_of_its_conversations(tmp_path: Path) -> None:
    async with open_store(tmp_path / "db", listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        alice = await service.login(0, "alice")
        await _fill(service, alice)
        conversations = await _expected(service, alice)
        assert len(conversations) == 21
        assert [c.active_time for c in conversations] == sorted(
            (c.active_time for c in conversations), reverse=True
        )
        # Pages of every size, through the cursor: each is exactly the encoder's JSON.
        for size in (1, 5, 21, 100):
            cursor, seen = 0, 0
            while True:
                page = await service.list_page(alice, cursor, size)
                part = conversations[seen : seen + size]
                assert page.listed == msgspec.json.encode([conv_info(c) for c in part])
                assert page.count == len(part)
                seen += page.count
                assert page.is_finished == (seen == len(conversations))
                if page.is_finished:
                    break
                cursor = page.next_seq
                assert cursor == part[-1].active_time
            assert seen == len(conversations)
        # The rows read one by one carry the same renderings.
        rows = (await service.list_rows(alice, 0, 1000)).rows
        assert [row.rendering for row in rows] == [
            msgspec.json.encode(conv_info(c)) for c in conversations
        ]


async def test_an_empty_page_is_an_empty_array(tmp_path: Path) -> None:
    async with open_store(tmp_path / "db", listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        alice = await service.login(0, "alice")
        page = await service.list_page(alice, 0, 10)
        assert (page.listed, page.count, page.next_seq, page.is_finished) == (b"[]", 0, 0, True)


class _Marked:
    """A renderer that renders like ConvListing with a marker of its own in front, under
    another fingerprint, and counts what it renders."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.rendered = 0

    @property
    def fingerprint(self) -> str:
        return f"marked {self.marker!r}"

    separator = b","

    def page(self, joined: bytes) -> bytes:
        return ConvListing().page(joined)

    def render(self, conversation: Conversation) -> tuple[bytes, bytes]:
        self.rendered += 1
        head, tail = ConvListing().render(conversation)
        return b'{"m":"' + self.marker + b'",' + head[1:], tail


def _stored_fingerprint(path: Path) -> str:
    with closing(sqlite3.connect(path)) as db:
        return str(db.execute("SELECT value FROM meta WHERE key = 'listing'").fetchone()[0])


async def test_another_renderer_renders_every_conversation_again_once(tmp_path: Path) -> None:
    path = tmp_path / "db"
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        alice = await service.login(0, "alice")
        await _fill(service, alice)
        plain = await _expected(service, alice)
    assert _stored_fingerprint(path) == ConvListing().fingerprint

    marked = _Marked(b"x")
    async with open_store(path, listing=marked) as store:
        assert marked.rendered == len(plain)  # every conversation, at opening
        service = ConversationService(store, EventBus())
        alice = await service.login(0, "alice")
        page = await service.list_page(alice, 0, 100)
        infos = msgspec.json.decode(page.listed)
        assert [info.pop("m") for info in infos] == ["x"] * len(plain)
        assert msgspec.json.encode(infos) == msgspec.json.encode([conv_info(c) for c in plain])
    assert _stored_fingerprint(path) == marked.fingerprint

    again = _Marked(b"x")
    async with open_store(path, listing=again):
        assert again.rendered == 0  # the same renderer: nothing to do

    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        alice = await service.login(0, "alice")
        page = await service.list_page(alice, 0, 100)
        assert page.listed == msgspec.json.encode([conv_info(c) for c in plain])


_CONV_INFO = convert._conv_info


def test_a_fingerprint_changes_with_the_renderings(monkeypatch: pytest.MonkeyPatch) -> None:
    before = ConvListing().fingerprint
    assert before == ConvListing().fingerprint
    # A wire field that renders differently (here: the display name) changes it.
    monkeypatch.setattr(
        convert, "_conv_info", lambda conversation, draft: msgspec.structs.replace(
            _CONV_INFO(conversation, draft), conv_show_name="shown"
        ),
    )  # fmt: skip
    convert._listing_fingerprint.cache_clear()
    try:
        assert ConvListing().fingerprint != before
    finally:
        monkeypatch.undo()
        convert._listing_fingerprint.cache_clear()
    assert ConvListing().fingerprint == before


async def test_a_migration_renders_every_conversation_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a migration does, the renderings after it are made anew: a step that
    changes rows need not remember to."""
    path = tmp_path / "db"
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        await _fill(service, await service.login(0, "alice"))
    marked = _Marked(b"x")
    with closing(sqlite3.connect(path)) as db:  # as if made by the marked renderer
        db.execute("UPDATE meta SET value = ? WHERE key = 'listing'", (marked.fingerprint,))
        db.commit()
    # A step that leaves the renderings alone (and meta 'listing' too).
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", (*MIGRATIONS, "SELECT 1"))
    monkeypatch.setattr(sqlite_store, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    async with open_store(path, listing=marked):
        assert marked.rendered == 21
    assert _stored_fingerprint(path) == marked.fingerprint


def _matches(conversation: Conversation, where: ConversationFilter | None) -> bool:
    """What conv.list_by_filter's filter means, as the SDK documents it (None: conv.list)."""
    if where is None:
        return True
    if where.conv_type is not None and conversation.conv_type is not where.conv_type:
        return False
    if where.mark_type == 0 and conversation.marks:
        return False
    if where.mark_type and conversation.marks & where.mark_type != where.mark_type:
        return False
    if where.group == "" and conversation.groups:
        return False
    if where.group and where.group not in conversation.groups:
        return False
    return where.has_draft is None or (conversation.draft is not None) == where.has_draft


@pytest.mark.parametrize("joined_by", ["sqlite", "python"])
async def test_every_filtered_page_is_the_wire_encoding_of_what_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, joined_by: str
) -> None:
    """Each filter's pages, of several sizes, through the cursor: exactly the matching
    conversations in list order, and ``is_finished`` on the last page only (the statement's
    EXISTS over the same index). Joined by SQLite's group_concat, as this SQLite allows, or
    row by row, as convd does where it might not keep the order."""
    if joined_by == "python":
        monkeypatch.setattr(sqlite_store, "pages_join_in_order", lambda db: False)
    rng = random.Random(3)
    async with open_store(tmp_path / "db", listing=ConvListing()) as store:
        assert store.pages_join_in_order is (joined_by == "sqlite")
        service = ConversationService(store, EventBus())
        alice = await service.login(0, "alice")
        keys = [ConvKey(ConvType.GROUP if n % 3 == 0 else ConvType.C2C, f"c{n}") for n in range(60)]

        def some(share: float) -> list[ConvKey]:
            return [key for key in keys if rng.random() < share]

        for key in keys:
            if rng.random() < 0.5:
                await service.set_draft(alice, key, [DraftElement(0, key.conv_id)], origin="t")
            else:
                await service.create(alice, key, origin="t")
        await service.create_group(alice, "g", some(0.4), origin="t")
        await service.create_group(alice, "h", some(0.4), origin="t")
        await service.mark(alice, some(0.4), mark_type=1, enable=True, origin="t")
        await service.mark(alice, some(0.4), mark_type=1 << 40, enable=True, origin="t")
        for key in rng.sample(keys, 10):
            await service.pin(alice, key, is_pinned=True, origin="t")
        for key in rng.sample(keys, 10):
            await service.set_draft(alice, key, [DraftElement(0, "again")], origin="t")
        await service.delete_group(alice, "h", origin="t")
        await service.create_group(alice, "h", some(0.3), origin="t")
        await service.remove_from_group(alice, "g", some(0.2), origin="t")
        everything = await _expected(service, alice)
        filters = [
            None,
            ConversationFilter(),
            ConversationFilter(group="g"),
            ConversationFilter(group="h"),
            ConversationFilter(group=""),
            ConversationFilter(mark_type=1),
            ConversationFilter(mark_type=(1 << 40) | 1),
            ConversationFilter(mark_type=0),
            ConversationFilter(has_draft=True),
            ConversationFilter(has_draft=False),
            ConversationFilter(conv_type=ConvType.GROUP),
            ConversationFilter(conv_type=ConvType.C2C, group="g", has_draft=True),
            ConversationFilter(group="no such group"),
            ConversationFilter(group="longer than any group's name " * 10),
        ]
        for where in filters:
            expected = [c for c in everything if _matches(c, where)]
            for size in (1, 3, 7, 100):
                cursor, seen = 0, 0
                while True:
                    page = await service.list_page(alice, cursor, size, where=where)
                    part = expected[seen : seen + size]
                    assert page.listed == msgspec.json.encode([conv_info(c) for c in part])
                    seen += page.count
                    assert page.is_finished == (seen == len(expected)), (where, size)
                    if page.is_finished:
                        break
                    cursor = page.next_seq
                assert seen == len(expected), (where, size)
