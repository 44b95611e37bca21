"""ConversationService: the SDK's conversation and draft rules, on the real SqliteStore."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest

from convd.domain import (
    PINNED_BIT,
    Account,
    Change,
    ChangeKind,
    Conversation,
    ConversationNotFound,
    ConversationPage,
    ConversationService,
    ConvKey,
    ConvType,
    DraftElement,
    DraftRevisionConflict,
    DraftTooLarge,
    EventBus,
    InvalidGroupId,
    InvalidMessageElement,
    InvalidParameter,
    InvalidUserId,
    Limits,
    PinLimitExceeded,
)
from convd.domain.service import validate_key
from convd.rpc import ConvListing
from convd.store import SqliteStore, open_store

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000
C2C, GROUP = ConvType.C2C, ConvType.GROUP


def listed(page: ConversationPage) -> list[dict[str, Any]]:
    """A page's conversations as a client reads them (and the count it carries agrees)."""
    infos: list[dict[str, Any]] = msgspec.json.decode(page.listed)
    assert page.count == len(infos)
    return infos


class World:
    """A service on a fresh database, one logged-in account, and every change it publishes."""

    def __init__(self, store: SqliteStore, service: ConversationService, account: Account):
        self.store = store
        self.service = service
        self.account = account
        self.changes: list[Change] = []

    async def seq(self, account: Account | None = None) -> int:
        return await self.store.current_seq((account or self.account).id)

    async def order(self, account: Account | None = None) -> list[str]:
        page = await self.service.list_page(account or self.account, 0, 1000)
        return [info["conv_id"] for info in listed(page)]

    async def create(self, conv_id: str, conv_type: ConvType = C2C) -> None:
        await self.service.create(self.account, ConvKey(conv_type, conv_id), origin="t")

    async def draft(
        self,
        conv_id: str,
        *texts: str,
        user_define: str = "",
        edit_time: int | None = None,
        if_revision: int | None = None,
        conv_type: ConvType = C2C,
    ) -> Conversation:
        return await self.service.set_draft(
            self.account,
            ConvKey(conv_type, conv_id),
            [DraftElement(0, t) for t in texts],
            user_define=user_define,
            edit_time=edit_time,
            if_revision=if_revision,
            origin="t",
        )

    async def pin(self, conv_id: str, is_pinned: bool = True) -> None:
        await self.service.pin(self.account, ConvKey(C2C, conv_id), is_pinned=is_pinned, origin="t")

    async def get(self, conv_id: str, conv_type: ConvType = C2C) -> Conversation | None:
        found = await self.service.get_many(self.account, [ConvKey(conv_type, conv_id)])
        return found[0] if found else None


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with open_store(tmp_path / "convd.db", listing=ConvListing()) as store:
        bus = EventBus()
        service = ConversationService(store, bus, clock=lambda: NOW + 0.75)
        account = await service.login(1400000000, "alice")
        w = World(store, service, account)
        bus.add(account.id, w.changes.append)
        yield w


def _key(conv_id: str, conv_type: ConvType = C2C) -> ConvKey:
    return ConvKey(conv_type, conv_id)


# -- create / delete -------------------------------------------------------------------------


async def test_create_makes_a_conversation_and_an_add_change(world: World) -> None:
    created = await world.service.create(world.account, _key("bob"), origin="c9")
    assert (created.conv_id, created.conv_type) == ("bob", C2C)
    assert created.draft is None and created.draft_revision == 0 and not created.is_pinned
    assert await world.seq() == 1
    assert [(c.seq, c.kind, c.origin) for c in world.changes] == [(1, ChangeKind.ADD, "c9")]
    assert world.changes[0].conversation == created


async def test_create_existing_returns_it_unchanged(world: World) -> None:
    await world.draft("bob", "hello")
    await world.create("carol")
    before = await world.get("bob")
    seq = await world.seq()
    again = await world.service.create(world.account, _key("bob"), origin="t")
    assert again == before
    assert await world.seq() == seq  # nothing committed, nothing published
    assert len(world.changes) == seq
    assert await world.order() == ["carol", "bob"]  # and not activated


async def test_c2c_and_group_with_the_same_id_are_different_conversations(world: World) -> None:
    await world.create("same", C2C)
    await world.create("same", GROUP)
    page = await world.service.list_page(world.account, 0, 10)
    assert sorted((ConvType(info["conv_type"]), info["conv_id"]) for info in listed(page)) == [
        (C2C, "same"),
        (GROUP, "same"),
    ]


async def test_delete_removes_conversation_and_draft(world: World) -> None:
    await world.draft("bob", "hello")
    await world.service.delete(world.account, _key("bob"), origin="t")
    assert await world.get("bob") is None
    assert world.changes[-1].kind is ChangeKind.DELETE
    assert world.changes[-1].conversation is None
    recreated = await world.service.create(world.account, _key("bob"), origin="t")
    # Not 0: the deleted one was at revision 1, and a client may still hold that.
    assert recreated.draft is None and recreated.draft_revision == 2


async def test_delete_unknown_is_not_found(world: World) -> None:
    with pytest.raises(ConversationNotFound):
        await world.service.delete(world.account, _key("nobody"), origin="t")
    assert await world.seq() == 0


# -- order -----------------------------------------------------------------------------------


async def test_create_and_set_draft_activate_clear_does_not(world: World) -> None:
    for name in ("a", "b", "c"):
        await world.create(name)
    assert await world.order() == ["c", "b", "a"]
    await world.draft("a", "text")
    assert await world.order() == ["a", "c", "b"]
    await world.draft("b", "text")
    assert await world.order() == ["b", "a", "c"]
    await world.service.cancel_draft(world.account, _key("a"), origin="t")
    assert await world.order() == ["b", "a", "c"]
    await world.draft("b", "")  # an empty draft clears: no activation either
    assert await world.order() == ["b", "a", "c"]


async def test_sdk_pin_example(world: World) -> None:
    """Docs: list 1,2,3,4,5; pin 2 and 3 -> 2,3,1,4,5."""
    for name in ("5", "4", "3", "2", "1"):
        await world.create(name)
    assert await world.order() == ["1", "2", "3", "4", "5"]
    await world.pin("2")
    await world.pin("3")
    assert await world.order() == ["2", "3", "1", "4", "5"]
    # Pinning in the other order gives the same list: pinning keeps the activation order.
    await world.pin("2", False)
    await world.pin("3", False)
    assert await world.order() == ["1", "2", "3", "4", "5"]
    await world.pin("3")
    await world.pin("2")
    assert await world.order() == ["2", "3", "1", "4", "5"]
    # Activating an unpinned conversation moves it to the top of the unpinned section only.
    await world.draft("5", "hi")
    assert await world.order() == ["2", "3", "5", "1", "4"]
    # Activating a pinned one moves it to the top of the pinned section.
    await world.draft("3", "hi")
    assert await world.order() == ["3", "2", "5", "1", "4"]


async def test_active_time_is_order_key_with_bit_62_while_pinned(world: World) -> None:
    await world.create("a")
    await world.create("b")
    page = await world.service.list_page(world.account, 0, 10)
    plain = {info["conv_id"]: info["conv_active_time"] for info in listed(page)}
    assert all(0 < t < PINNED_BIT for t in plain.values())
    await world.pin("a")
    page = await world.service.list_page(world.account, 0, 10)
    pinned = {info["conv_id"]: info["conv_active_time"] for info in listed(page)}
    assert pinned["a"] == plain["a"] | PINNED_BIT
    assert pinned["b"] == plain["b"]
    times = [info["conv_active_time"] for info in listed(page)]
    assert times == sorted(times, reverse=True)


async def test_pinning_twice_and_unpinning_unpinned_change_nothing(world: World) -> None:
    await world.create("a")
    await world.pin("a")
    seq = await world.seq()
    await world.pin("a")
    await world.create("b")
    await world.pin("b", False)
    assert await world.seq() == seq + 1  # only the create of b


# -- paging ----------------------------------------------------------------------------------


async def test_pages_cover_the_list_once_in_order(world: World) -> None:
    for n in range(10):
        await world.create(f"u{n}")
    for name in ("u2", "u7"):
        await world.pin(name)
    full = await world.order()
    seen: list[str] = []
    cursor, finished, pages = 0, False, 0
    while not finished:
        page = await world.service.list_page(world.account, cursor, 3)
        assert len(listed(page)) <= 3
        seen += [info["conv_id"] for info in listed(page)]
        cursor, finished = page.next_seq, page.is_finished
        pages += 1
    assert seen == full and len(seen) == 10
    assert pages == 4


async def test_last_full_page_is_finished(world: World) -> None:
    for n in range(4):
        await world.create(f"u{n}")
    first = await world.service.list_page(world.account, 0, 2)
    assert not first.is_finished
    second = await world.service.list_page(world.account, first.next_seq, 2)
    assert second.is_finished and len(listed(second)) == 2


async def test_empty_list_is_one_finished_page(world: World) -> None:
    page = await world.service.list_page(world.account, 0, 100)
    assert listed(page) == [] and page.is_finished


async def test_count_below_one_is_invalid(world: World) -> None:
    with pytest.raises(InvalidParameter):
        await world.service.list_page(world.account, 0, 0)


# -- get -------------------------------------------------------------------------------------


async def test_get_many_leaves_unknown_out_and_keeps_request_order(world: World) -> None:
    await world.create("a")
    await world.create("g", GROUP)
    found = await world.service.get_many(
        world.account, [_key("g", GROUP), _key("zzz"), _key("a"), _key("a", GROUP), _key("a")]
    )
    assert [(c.conv_type, c.conv_id) for c in found] == [(GROUP, "g"), (C2C, "a")]


async def test_get_many_validates_every_key(world: World) -> None:
    with pytest.raises(InvalidUserId):
        await world.service.get_many(world.account, [_key("ok"), _key("x" * 33)])


# -- drafts ----------------------------------------------------------------------------------


async def test_draft_holds_text_only(world: World) -> None:
    with pytest.raises(InvalidMessageElement, match="drafts hold text only") as refused:
        await world.service.set_draft(
            world.account, _key("bob"), [DraftElement(0, "fine"), DraftElement(1, None)], origin="t"
        )
    assert "message_elem_array[1]" in str(refused.value)
    assert "elem_type 1 (Image)" in str(refused.value)
    assert not isinstance(refused.value, InvalidParameter)  # 6016, not 6017
    assert await world.get("bob") is None and await world.seq() == 0


async def test_text_element_without_text_is_invalid(world: World) -> None:
    with pytest.raises(InvalidMessageElement, match="without text_elem_content"):
        await world.service.set_draft(
            world.account, _key("bob"), [DraftElement(0, None)], origin="t"
        )


async def test_draft_text_is_limited_to_the_message_body_limit(world: World) -> None:
    limit = Limits.max_draft_text_bytes
    assert limit == 12 * 1024
    # Exactly at the limit, counted in UTF-8 bytes over all text elements together: "é" is 2
    # bytes, so two elements of 3072 of them are 12288 bytes (6144 characters).
    at_limit = ["é" * (limit // 4), "é" * (limit // 4)]
    stored = await world.draft("bob", *at_limit)
    assert stored.draft is not None and stored.draft.texts == tuple(at_limit)
    seq = await world.seq()
    with pytest.raises(DraftTooLarge) as refused:
        await world.draft("bob", *at_limit, "x")
    assert refused.value.size == limit + 1 and refused.value.limit == limit
    assert str(limit) in str(refused.value) and str(limit + 1) in str(refused.value)
    with pytest.raises(DraftTooLarge):
        await world.draft("carol", "€" * (limit // 3 + 1))  # 3 bytes each: one char over
    assert await world.get("carol") is None  # refused before anything was created
    assert await world.get("bob") == stored and await world.seq() == seq
    # The user define is not part of the message body: it is not counted.
    with_data = await world.draft("bob", "x", user_define="u" * (2 * limit))
    assert with_data.draft is not None and with_data.draft.user_define == "u" * (2 * limit)


async def test_set_draft_creates_unknown_conversation(world: World) -> None:
    result = await world.draft("new", "hello", user_define="ud", edit_time=123)
    stored = await world.get("new")
    assert stored == result
    assert stored is not None and stored.draft is not None
    assert stored.draft.texts == ("hello",)
    assert stored.draft.user_define == "ud" and stored.draft.edit_time == 123
    assert stored.draft_revision == 1
    assert [c.kind for c in world.changes] == [ChangeKind.ADD]


async def test_edit_time_defaults_to_now_in_seconds(world: World) -> None:
    result = await world.draft("bob", "hello")
    assert result.draft is not None and result.draft.edit_time == NOW


async def test_empty_draft_clears(world: World) -> None:
    await world.draft("bob", "hello")
    cleared = await world.draft("bob", "")
    assert cleared.draft is None and cleared.draft_revision == 2
    # No elements at all and no user data: also "no draft".
    await world.draft("bob", "again")
    assert (await world.draft("bob")).draft is None


async def test_user_define_alone_is_a_draft(world: World) -> None:
    result = await world.draft("bob", user_define="only data")
    assert result.draft is not None and result.draft.texts == ()


async def test_empty_draft_on_unknown_conversation_creates_it_without_draft(world: World) -> None:
    created = await world.draft("bob", "")
    assert created.draft is None and created.draft_revision == 0
    assert await world.get("bob") == created


async def test_identical_draft_changes_nothing(world: World) -> None:
    first = await world.draft("bob", "same", "two", user_define="ud", edit_time=100)
    await world.create("carol")
    seq = await world.seq()
    again = await world.draft("bob", "same", "two", user_define="ud", edit_time=999)
    assert again == first  # not even the edit time
    assert await world.seq() == seq
    assert await world.order() == ["carol", "bob"]


async def test_revision_counts_every_draft_change(world: World) -> None:
    await world.create("bob")
    created = await world.get("bob")
    assert created is not None and created.draft_revision == 0
    revisions = [(await world.draft("bob", text)).draft_revision for text in "abbc"]
    revisions.append((await world.draft("bob", "")).draft_revision)
    assert revisions == [1, 2, 2, 3, 4]
    cancelled = await world.service.cancel_draft(world.account, _key("bob"), origin="t")
    assert cancelled.draft_revision == 4  # there was no draft to cancel
    await world.draft("bob", "d")
    cancelled = await world.service.cancel_draft(world.account, _key("bob"), origin="t")
    assert cancelled.draft_revision == 6 and cancelled.draft is None


async def test_if_revision_mismatch_writes_nothing(world: World) -> None:
    await world.draft("bob", "v1")
    await world.draft("bob", "v2")
    before = await world.get("bob")
    seq = await world.seq()
    with pytest.raises(DraftRevisionConflict) as conflict:
        await world.draft("bob", "v3", if_revision=1)
    assert conflict.value.current == before
    with pytest.raises(DraftRevisionConflict):
        await world.service.cancel_draft(world.account, _key("bob"), if_revision=1, origin="t")
    assert await world.get("bob") == before and await world.seq() == seq
    written = await world.draft("bob", "v3", if_revision=2)
    assert written.draft_revision == 3


async def test_if_revision_on_unknown_conversation(world: World) -> None:
    with pytest.raises(DraftRevisionConflict) as conflict:
        await world.draft("bob", "x", if_revision=1)
    assert conflict.value.current is None
    assert await world.get("bob") is None
    created = await world.draft("bob", "x", if_revision=0)
    assert created.draft_revision == 1


async def test_revisions_survive_delete_and_recreate(world: World) -> None:
    for text in ("v1", "v2", "v3"):
        held = await world.draft("bob", text)
    assert held.draft_revision == 3  # what another window still holds
    await world.service.delete(world.account, _key("bob"), origin="t")
    # While it does not exist, 0 still means "create only if absent"; the old revision does
    # not match the absent conversation.
    with pytest.raises(DraftRevisionConflict) as conflict:
        await world.draft("bob", "stale", if_revision=3)
    assert conflict.value.current is None
    recreated = await world.draft("bob", "new", if_revision=0)
    assert recreated.draft_revision == 5  # above 3: created (4), then its draft set (5)
    assert [c.kind for c in world.changes[-2:]] == [ChangeKind.DELETE, ChangeKind.ADD]
    with pytest.raises(DraftRevisionConflict):
        await world.draft("bob", "stale", if_revision=3)
    # Deleted again at a higher revision, created again by conv.create: above that one.
    await world.service.delete(world.account, _key("bob"), origin="t")
    created = await world.service.create(world.account, _key("bob"), origin="t")
    assert created.draft_revision == 6 and created.draft is None
    # The same id of the other type, and other conversations, start at 0 as ever.
    await world.create("bob", GROUP)
    assert (await world.get("bob", GROUP)) is not None
    assert (await world.get("bob", GROUP)).draft_revision == 0  # type: ignore[union-attr]
    assert (await world.draft("carol", "x")).draft_revision == 1


async def test_revisions_of_conversations_deleted_before_survive_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "convd.db"
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        for text in "abcd":
            await service.set_draft(account, _key("bob"), [DraftElement(0, text)], origin="t")
        await service.delete(account, _key("bob"), origin="t")
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        account = await service.login(0, "alice")
        created = await service.create(account, _key("bob"), origin="t")
        assert created.draft_revision == 5


async def test_cancel_draft_of_unknown_conversation(world: World) -> None:
    with pytest.raises(ConversationNotFound):
        await world.service.cancel_draft(world.account, _key("nobody"), origin="t")
    with pytest.raises(DraftRevisionConflict):
        await world.service.cancel_draft(world.account, _key("nobody"), if_revision=3, origin="t")


# -- pins ------------------------------------------------------------------------------------


async def test_at_most_50_pinned(world: World) -> None:
    for n in range(51):
        await world.create(f"u{n}")
    for n in range(50):
        await world.pin(f"u{n}")
    seq = await world.seq()
    with pytest.raises(PinLimitExceeded):
        await world.pin("u50")
    assert await world.seq() == seq
    await world.pin("u0", False)
    await world.pin("u50")
    page = await world.service.list_page(world.account, 0, 100)
    assert sum(info["conv_is_pinned"] for info in listed(page)) == 50


async def test_pin_unknown_is_not_found(world: World) -> None:
    with pytest.raises(ConversationNotFound):
        await world.pin("nobody")


# -- identifiers -----------------------------------------------------------------------------


async def test_every_printable_ascii_character_makes_a_valid_id() -> None:
    printable = "".join(chr(code) for code in range(0x20, 0x7F))  # space to tilde
    for start in range(0, len(printable), 32):
        validate_key(ConvKey(C2C, printable[start : start + 32]))
    validate_key(ConvKey(GROUP, printable[:48]))


@pytest.mark.parametrize(
    ("conv_type", "conv_id", "error"),
    [
        (C2C, "", InvalidParameter),
        (GROUP, "", InvalidParameter),
        (C2C, "x" * 33, InvalidUserId),
        (C2C, "caf\u00e9", InvalidUserId),
        (C2C, "tab\there", InvalidUserId),
        (C2C, "del\x7f", InvalidUserId),
        (C2C, "unit\x1fseparator", InvalidUserId),
        (C2C, "nbsp\u00a0", InvalidUserId),
        (GROUP, "emoji\U0001f600", InvalidGroupId),
        (GROUP, "g" * 49, InvalidGroupId),
        (GROUP, "gr\u00fcppe", InvalidGroupId),
        (GROUP, "new\nline", InvalidGroupId),
    ],
)
async def test_invalid_ids_are_refused_everywhere(
    world: World, conv_type: ConvType, conv_id: str, error: type[Exception]
) -> None:
    key = ConvKey(conv_type, conv_id)
    service, account = world.service, world.account
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: service.create(account, key, origin="t"),
        lambda: service.delete(account, key, origin="t"),
        lambda: service.set_draft(account, key, [DraftElement(0, "x")], origin="t"),
        lambda: service.cancel_draft(account, key, origin="t"),
        lambda: service.pin(account, key, is_pinned=True, origin="t"),
        lambda: service.get_many(account, [key]),
    ]
    for call in calls:
        with pytest.raises(error):
            await call()
    assert await world.seq() == 0


@pytest.mark.parametrize(
    ("conv_type", "conv_id"),
    [(C2C, "x" * 32), (C2C, " ~!@#$%^&*()_+{}|:<>?"), (GROUP, "g" * 48), (GROUP, "@TGS#abc")],
)
async def test_ids_at_the_limits_are_accepted(
    world: World, conv_type: ConvType, conv_id: str
) -> None:
    created = await world.service.create(world.account, ConvKey(conv_type, conv_id), origin="t")
    assert created.conv_id == conv_id


async def test_login_validates_user_id(world: World) -> None:
    for bad in ("", "x" * 33, "\u00e9"):
        with pytest.raises(InvalidUserId):
            await world.service.login(0, bad)


# -- accounts and the change sequence --------------------------------------------------------


async def test_accounts_are_isolated(world: World) -> None:
    bob = await world.service.login(world.account.sdk_app_id, "bob")
    other_app = await world.service.login(world.account.sdk_app_id + 1, world.account.user_id)
    assert len({world.account.id, bob.id, other_app.id}) == 3
    await world.draft("shared", "alice's")
    assert await world.order(bob) == [] and await world.order(other_app) == []
    assert await world.service.get_many(bob, [_key("shared")]) == []
    with pytest.raises(ConversationNotFound):
        await world.service.delete(other_app, _key("shared"), origin="t")
    await world.service.create(bob, _key("shared"), origin="t")
    mine = await world.get("shared")
    assert mine is not None and mine.draft is not None
    assert await world.seq(bob) == 1 and await world.seq() == 1
    assert await world.service.login(world.account.sdk_app_id, "alice") == world.account


async def test_every_change_advances_the_sequence_by_one_no_op_does_not(world: World) -> None:
    cancel = world.service.cancel_draft
    steps: list[tuple[Callable[[], Awaitable[Any]], int]] = [
        (lambda: world.create("a"), 1),
        (lambda: world.create("a"), 0),
        (lambda: world.draft("a", "x"), 1),
        (lambda: world.draft("a", "x"), 0),
        (lambda: world.pin("a"), 1),
        (lambda: world.pin("a"), 0),
        (lambda: cancel(world.account, _key("a"), origin="t"), 1),
        (lambda: cancel(world.account, _key("a"), origin="t"), 0),
        (lambda: world.draft("b", "new"), 1),
        (lambda: world.service.delete(world.account, _key("a"), origin="t"), 1),
    ]
    expected = 0
    for step, advance in steps:
        await step()
        expected += advance
        assert await world.seq() == expected
    assert [c.seq for c in world.changes] == list(range(1, expected + 1))
    kinds = [c.kind for c in world.changes]
    assert kinds == [
        ChangeKind.ADD,
        ChangeKind.UPDATE,
        ChangeKind.UPDATE,
        ChangeKind.UPDATE,
        ChangeKind.ADD,
        ChangeKind.DELETE,
    ]
    stored = await world.store.changes_after(world.account.id, 0, 100)
    assert stored == world.changes


async def test_a_subscribe_cancelled_while_its_write_commits_leaves_no_sink(
    tmp_path: Path,
) -> None:
    # A connection cut while its conv.subscribe waits for the writer: the write commits all
    # the same, and its after-commit callback must not register a sink that nobody holds
    # the token of (it would stay in the bus, fed every change, for the daemon's life).
    async with open_store(tmp_path / "convd.db", listing=ConvListing()) as store:
        bus = EventBus()
        service = ConversationService(store, bus, clock=lambda: NOW + 0.75)
        account = await service.login(1400000000, "alice")
        received: list[Change] = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(service.subscribe, account, received.append)
            await anyio.lowlevel.checkpoint()  # the subscribe's write is with the writer now
            tasks.cancel_scope.cancel()
        # Committed after the subscribe's write, so published after its callback ran.
        await service.create(account, ConvKey(C2C, "bob"), origin="t")
        assert bus.subscriber_count(account.id) == 0
        assert received == []


class _CommittedThenCancelled:
    """A store whose write commits (its after-commit callbacks run) and whose caller is
    then cancelled before it resumes."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def current_seq(self, account_id: int) -> int:
        return 7

    async def write(self, operation: Callable[[Any], Any]) -> Any:
        operation(self)
        for callback in self.callbacks:
            callback()
        raise anyio.get_cancelled_exc_class()


async def test_a_subscribe_cancelled_after_its_sink_was_registered_removes_it() -> None:
    bus = EventBus()
    service = ConversationService(_CommittedThenCancelled(), bus)  # type: ignore[arg-type]
    account = Account(3, 1400000000, "alice")
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await service.subscribe(account, lambda change: None)
    assert bus.subscriber_count(account.id) == 0
