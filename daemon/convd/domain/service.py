"""The conversation and draft rules of the SDK, on top of a Store and an EventBus."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import msgspec

from .errors import (
    ConversationNotFound,
    DomainError,
    DraftRevisionConflict,
    DraftTooLarge,
    DraftVersionNotFound,
    GroupLimitExceeded,
    GroupNameTooLong,
    GroupNotFound,
    InvalidGroupId,
    InvalidMessageElement,
    InvalidParameter,
    InvalidUserId,
    PinLimitExceeded,
    SeqTooOld,
    TooManyConversations,
)
from .events import EventBus, GroupSink, Sink
from .models import (
    Account,
    BackupInfo,
    Change,
    ChangeKind,
    Conversation,
    ConversationFilter,
    ConversationGroup,
    ConversationRow,
    ConvKey,
    ConvType,
    Draft,
    DraftElement,
    DraftVersion,
    GroupChange,
    GroupChangeKind,
    Outcome,
)
from .ports import Store, StoreTransaction

__all__ = ["ConversationPage", "ConversationService", "Limits"]

TEXT_ELEM = 0  # the SDK's kTIMElem_Text
_ELEM_NAMES = {
    1: "Image",
    2: "Sound",
    3: "Custom",
    4: "File",
    5: "GroupTips",
    6: "Face",
    7: "Location",
    8: "GroupReport",
    9: "Video",
    10: "FriendChange",
    11: "ProfileChange",
    12: "Merge",
}


class Limits:
    """The SDK's limits that the domain enforces."""

    max_user_id_bytes = 32
    max_group_id_bytes = 48
    max_pinned = 50
    #: The SDK's message body limit (ERR_SDK_MSG_BODY_SIZE_LIMIT): a draft whose text elements
    #: hold more UTF-8 bytes than this, together, could never be sent.
    max_draft_text_bytes = 12 * 1024
    #: Changes kept per account for resuming subscribers.
    kept_changes = 10_000
    #: Largest custom data of one conversation, in UTF-8 bytes.
    max_custom_data_bytes = 256
    #: Draft history: versions kept per conversation, and their age bound (seconds), by
    #: default (``convd --draft-history`` / ``--draft-history-for``).
    draft_history = 20
    draft_history_seconds = 30 * 86400
    #: Conversations one batch call may name: delete (6017 beyond), custom data, marks and
    #: conversation groups (51006 beyond).
    max_batch_conversations = 100
    #: Conversation groups per account (51010 beyond), and the longest name in UTF-8 bytes.
    max_groups = 20
    max_group_name_bytes = 32


class ConversationPage:
    """One page of the list: its conversations as the store rendered them for a list
    (``listed``, see ListedConversations), how many, and the cursor after it."""

    __slots__ = ("count", "is_finished", "listed", "next_seq")

    def __init__(self, listed: bytes, count: int, next_seq: int, is_finished: bool):
        self.listed = listed
        self.count = count
        self.next_seq = next_seq
        self.is_finished = is_finished


class ConversationRows:
    """One page of the list a row each (see ConversationRow), and the cursor after it."""

    __slots__ = ("is_finished", "next_seq", "rows")

    def __init__(self, rows: list[ConversationRow], next_seq: int, is_finished: bool):
        self.rows = rows
        self.next_seq = next_seq
        self.is_finished = is_finished


def _is_printable_ascii(value: str) -> bool:
    # 0x20..0x7e: of ASCII, exactly what str.isprintable accepts (both run in C; a loop over
    # the characters in Python was ~4 % of the event loop's time per write).
    return value.isascii() and value.isprintable()


def validate_user_id(user_id: str, what: str = "user_id") -> None:
    if not user_id or len(user_id) > Limits.max_user_id_bytes or not _is_printable_ascii(user_id):
        raise InvalidUserId(
            f"{what} {user_id!r} is not a valid identifier: 1..{Limits.max_user_id_bytes} "
            "bytes of printable ASCII (0x20..0x7e)"
        )


def validate_key(key: ConvKey) -> None:
    if not key.conv_id:
        raise InvalidParameter("conv_id must not be empty")
    if key.conv_type is ConvType.C2C:
        validate_user_id(key.conv_id, "C2C conv_id")
    elif len(key.conv_id) > Limits.max_group_id_bytes or not _is_printable_ascii(key.conv_id):
        raise InvalidGroupId(
            f"group conv_id {key.conv_id!r} is not a valid group id: "
            f"1..{Limits.max_group_id_bytes} bytes of printable ASCII (0x20..0x7e)"
        )


def build_draft(
    elements: Sequence[DraftElement], user_define: str, edit_time: int | None, now: int
) -> Draft:
    """Apply the SDK's draft rules: text elements only, at most the message body limit.

    The limit counts the UTF-8 bytes of all text elements together; ``user_define`` is not
    part of the message body and is not counted.
    """
    texts: list[str] = []
    size = 0
    for index, element in enumerate(elements):
        if element.elem_type != TEXT_ELEM:
            name = _ELEM_NAMES.get(element.elem_type, "unknown")
            raise InvalidMessageElement(
                f"drafts hold text only: message_elem_array[{index}] has elem_type "
                f"{element.elem_type} ({name}); only elem_type 0 (kTIMElem_Text) is allowed"
            )
        if element.text is None:
            raise InvalidMessageElement(
                f"message_elem_array[{index}] is a text element without text_elem_content"
            )
        size += len(element.text.encode())
        texts.append(element.text)
    if size > Limits.max_draft_text_bytes:
        raise DraftTooLarge(size, Limits.max_draft_text_bytes)
    return Draft(tuple(texts), user_define, now if edit_time is None else edit_time)


class ConversationService:
    """Every operation of the conversation API for one daemon.

    ``origin`` names the connection that asks, so subscribers can recognise their own echo.
    """

    def __init__(self, store: Store, bus: EventBus, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock

    # -- session -----------------------------------------------------------------------------

    async def login(self, sdk_app_id: int, user_id: str) -> Account:
        validate_user_id(user_id)
        found = await self._store.find_account(sdk_app_id, user_id)
        if found is not None:
            return found
        account_id = await self._store.write(lambda tx: tx.ensure_account(sdk_app_id, user_id))
        return Account(account_id, sdk_app_id, user_id)

    # -- reads -------------------------------------------------------------------------------

    async def list_page(
        self,
        account: Account,
        next_seq: int,
        count: int,
        *,
        where: ConversationFilter | None = None,
    ) -> ConversationPage:
        """A page of the list (of the conversations that match ``where``, if given)."""
        _require_positive(count)
        if where is not None and where.mark_type is not None and where.mark_type >= 1 << 64:
            raise InvalidParameter("mark_type must fit in 64 bits")
        if where is None:
            page = await self._store.list_conversations(account.id, next_seq or None, count)
        else:
            page = await self._store.list_conversations(
                account.id, next_seq or None, count, where=where
            )
        cursor = next_seq if page.last_active_time is None else page.last_active_time
        return ConversationPage(page.listed, page.count, cursor, not page.more)

    async def list_rows(self, account: Account, next_seq: int, count: int) -> ConversationRows:
        """A page of the list, a row each with the conversation's key."""
        _require_positive(count)
        rows = await self._store.list_conversation_rows(account.id, next_seq or None, count + 1)
        page = rows[:count]
        cursor = page[-1].active_time if page else next_seq
        return ConversationRows(page, cursor, len(rows) <= count)

    async def get_many(self, account: Account, keys: Sequence[ConvKey]) -> list[Conversation]:
        for key in keys:
            validate_key(key)
        unique = list(dict.fromkeys(keys))
        found = {c.key: c for c in await self._store.get_conversations(account.id, unique)}
        return [found[key] for key in unique if key in found]

    async def count_conversations(self) -> int:
        return await self._store.count_conversations()

    async def backup(self, path: str, overwrite: bool) -> BackupInfo:
        """Copy the whole database (every account) to ``path``, an absolute file path."""
        target = Path(path)
        if not target.is_absolute():
            raise InvalidParameter(f"backup path {path!r} must be absolute")
        return await self._store.backup(target, overwrite=overwrite)

    # -- writes ------------------------------------------------------------------------------
    # Each write is checked here, then handed to the store as a synchronous operation that
    # runs inside a group commit: it reads the current state, applies the SDK's rule and
    # writes the result, seeing every earlier write of its batch (so revision checks stay
    # exact). Its events are published after the batch commits.

    async def create(self, account: Account, key: ConvKey, *, origin: str) -> Conversation:
        validate_key(key)

        def operation(tx: StoreTransaction) -> Conversation:
            current = tx.get_conversation(account.id, key)
            if current is not None:
                return current
            return self._create(tx, account, key, None, origin)

        return await self._store.write(operation)

    async def delete(self, account: Account, key: ConvKey, *, origin: str) -> None:
        validate_key(key)

        def operation(tx: StoreTransaction) -> None:
            current = tx.get_conversation(account.id, key)
            if current is None:
                raise ConversationNotFound(_not_found(key))
            self._delete_existing(tx, account, current, origin)

        await self._store.write(operation)

    def _delete_existing(
        self, tx: StoreTransaction, account: Account, current: Conversation, origin: str
    ) -> None:
        """Delete ``current`` (its draft history goes with it) as one Delete change."""
        key = current.key
        seq = tx.next_seq(account.id)
        tx.delete_conversation(account.id, key)
        # A client may still hold this revision: the conversation created again must start
        # above it, or an old if_revision could match by accident.
        tx.retire_revision(account.id, key, current.draft_revision, seq)
        change = Change(seq, ChangeKind.DELETE, key, None, origin)
        tx.append_change(account.id, change)
        self._publish_after_commit(tx, account, change)

    async def set_draft(
        self,
        account: Account,
        key: ConvKey,
        elements: Sequence[DraftElement],
        *,
        user_define: str = "",
        edit_time: int | None = None,
        if_revision: int | None = None,
        origin: str,
    ) -> Conversation:
        validate_key(key)
        draft = build_draft(elements, user_define, edit_time, int(self._clock()))

        def operation(tx: StoreTransaction) -> Conversation:
            current = tx.get_conversation(account.id, key)
            _check_revision(if_revision, current)
            if current is None:
                return self._create(tx, account, key, None if draft.is_empty else draft, origin)
            if draft.is_empty:
                return self._clear_draft(tx, account, current, origin)
            if draft.same_content(current.draft):
                return current  # nothing changes: no revision bump, no activation
            return self._replace_draft(tx, account, current, draft, origin, "set")

        return await self._store.write(operation)

    async def cancel_draft(
        self, account: Account, key: ConvKey, *, if_revision: int | None = None, origin: str
    ) -> Conversation:
        validate_key(key)

        def operation(tx: StoreTransaction) -> Conversation:
            current = _existing_at(tx, account, key, if_revision)
            return self._clear_draft(tx, account, current, origin)

        return await self._store.write(operation)

    async def restore_draft(
        self,
        account: Account,
        key: ConvKey,
        *,
        revision: int,
        if_revision: int | None = None,
        origin: str,
    ) -> Conversation:
        """Make the kept version ``revision`` the current draft again (draft history).

        A new revision, the current time as edit time, the conversation activated (as by a
        set) and an Update change; the draft it replaces is kept in the history too.
        Restoring the current revision, or a version equal to the current draft, changes
        nothing.
        """
        validate_key(key)
        now = int(self._clock())

        def operation(tx: StoreTransaction) -> Conversation:
            current = _existing_at(tx, account, key, if_revision)
            if revision == current.draft_revision:
                return current
            version = tx.get_draft_version(account.id, key, revision)
            if version is None:
                raise DraftVersionNotFound(revision)
            if version.draft.same_content(current.draft):
                return current
            restored = Draft(version.draft.texts, version.draft.user_define, now)
            return self._replace_draft(tx, account, current, restored, origin, "restore")

        return await self._store.write(operation)

    async def draft_history(
        self, account: Account, key: ConvKey, count: int
    ) -> tuple[Conversation, list[DraftVersion]]:
        """The conversation and at most ``count`` of its earlier drafts, newest first."""
        validate_key(key)
        _require_positive(count)
        found = await self._store.get_conversations(account.id, [key])
        if not found:
            raise ConversationNotFound(_not_found(key))
        return found[0], await self._store.draft_history(account.id, key, count)

    async def pin(self, account: Account, key: ConvKey, *, is_pinned: bool, origin: str) -> None:
        validate_key(key)

        def operation(tx: StoreTransaction) -> None:
            current = tx.get_conversation(account.id, key)
            if current is None:
                raise ConversationNotFound(_not_found(key))
            if current.is_pinned == is_pinned:
                return
            if is_pinned and tx.count_pinned(account.id) >= Limits.max_pinned:
                raise PinLimitExceeded(
                    f"{Limits.max_pinned} conversations are pinned already; unpin one first"
                )
            seq = tx.next_seq(account.id)
            # Pinning keeps the order key: among pinned conversations the order stays as it was.
            updated = _replace(current, is_pinned=is_pinned)
            self._record(tx, account, seq, ChangeKind.UPDATE, updated, origin)

        await self._store.write(operation)

    async def delete_many(
        self, account: Account, keys: Sequence[ConvKey], *, origin: str
    ) -> list[Outcome]:
        """Delete each conversation named, in one write (deleteConversationList).

        Every key is checked first: an invalid one, an empty list or more than the batch limit
        fails the call and deletes nothing. A key named twice counts once. A conversation that
        does not exist gets ConversationNotFound as its outcome; each one deleted is a Delete
        change of its own, as ``delete`` makes.
        """
        unique = _batch(keys, too_many=InvalidParameter)

        def operation(tx: StoreTransaction) -> list[Outcome]:
            return _each_existing(
                tx,
                account,
                unique,
                lambda current: self._delete_existing(tx, account, current, origin),
            )

        return await self._store.write(operation)

    async def set_custom_data(
        self, account: Account, keys: Sequence[ConvKey], custom_data: str, *, origin: str
    ) -> list[Outcome]:
        """Set the custom data of each conversation named, in one write
        (setConversationCustomData).

        The checks of ``delete_many`` apply (more than the batch limit is
        TooManyConversations, the SDK's own code for custom data), and the data may hold at
        most ``max_custom_data_bytes``. A conversation that does not exist is not created (its
        outcome is ConversationNotFound). A change of the data is an Update change that, like a
        pin, keeps the conversation's place and draft revision; the same data again changes
        nothing.
        """
        size = len(custom_data.encode())
        if size > Limits.max_custom_data_bytes:
            raise InvalidParameter(
                f"custom_data is {size} bytes of UTF-8, more than the "
                f"{Limits.max_custom_data_bytes} a conversation may hold"
            )
        unique = _batch(keys)

        def set_data(tx: StoreTransaction, current: Conversation) -> None:
            if current.custom_data != custom_data:
                self._update_in_place(
                    tx, account, _replace(current, custom_data=custom_data), origin
                )

        def operation(tx: StoreTransaction) -> list[Outcome]:
            return _each_existing(tx, account, unique, partial(set_data, tx))

        return await self._store.write(operation)

    async def mark(
        self,
        account: Account,
        keys: Sequence[ConvKey],
        *,
        mark_type: int,
        enable: bool,
        origin: str,
    ) -> list[Outcome]:
        """Set (``enable``) or clear one mark on each conversation: an Update for each one
        whose marks change; an unknown conversation fails alone (ConversationNotFound)."""
        unique = _batch(keys)
        validate_mark(mark_type)

        def set_mark(tx: StoreTransaction, current: Conversation) -> None:
            marks = current.marks | mark_type if enable else current.marks & ~mark_type
            if marks != current.marks:
                # Marking does not activate the conversation: its place stays.
                self._update_in_place(tx, account, _replace(current, marks=marks), origin)

        def operation(tx: StoreTransaction) -> list[Outcome]:
            return _each_existing(tx, account, unique, partial(set_mark, tx))

        return await self._store.write(operation)

    async def list_groups(self, account: Account) -> list[str]:
        """The account's conversation group names, oldest first."""
        return await self._store.list_groups(account.id)

    async def create_group(
        self, account: Account, name: str, keys: Sequence[ConvKey], *, origin: str
    ) -> list[Outcome]:
        """Create a conversation group with the conversations that exist among ``keys``."""
        validate_group_name(name)
        unique = _batch(keys, allow_empty=True)

        def operation(tx: StoreTransaction) -> list[Outcome]:
            if tx.get_group(account.id, name) is not None:
                raise InvalidParameter(f"a conversation group named {name!r} exists already")
            if tx.count_groups(account.id) >= Limits.max_groups:
                raise GroupLimitExceeded(
                    f"an account has at most {Limits.max_groups} conversation groups; delete "
                    "one first"
                )
            tx.create_group(account.id, name)
            outcomes, added = self._regroup(tx, account, unique, name, add=True, origin=origin)
            self._publish_group(
                tx, account, GroupChangeKind.CREATED, name, tuple(added), origin=origin
            )
            return outcomes

        return await self._store.write(operation)

    async def add_to_group(
        self, account: Account, name: str, keys: Sequence[ConvKey], *, origin: str
    ) -> list[Outcome]:
        """Add the conversations to a group; those already in it count as added."""
        return await self._change_members(account, name, keys, add=True, origin=origin)

    async def remove_from_group(
        self, account: Account, name: str, keys: Sequence[ConvKey], *, origin: str
    ) -> list[Outcome]:
        """Remove the conversations from a group; those not in it count as removed."""
        return await self._change_members(account, name, keys, add=False, origin=origin)

    async def delete_group(self, account: Account, name: str, *, origin: str) -> None:
        """Delete a conversation group; its conversations stay (an Update for each)."""
        validate_group_name(name)

        def operation(tx: StoreTransaction) -> None:
            group = _existing_group(tx, account, name)
            for key in tx.group_members(group):
                current = tx.get_conversation(account.id, key)
                if current is not None:
                    groups = tuple(g for g in current.groups if g != name)
                    self._record(
                        tx,
                        account,
                        tx.next_seq(account.id),
                        ChangeKind.UPDATE,
                        _replace(current, groups=groups),
                        origin,
                    )
            tx.delete_group(group)
            self._publish_group(tx, account, GroupChangeKind.DELETED, name, (), origin=origin)

        await self._store.write(operation)

    async def rename_group(
        self, account: Account, old_name: str, new_name: str, *, origin: str
    ) -> None:
        """Rename a conversation group: an Update for each of its conversations."""
        validate_group_name(old_name)
        validate_group_name(new_name)

        def operation(tx: StoreTransaction) -> None:
            group = _existing_group(tx, account, old_name)
            if new_name == old_name:
                return
            if tx.get_group(account.id, new_name) is not None:
                raise InvalidParameter(f"a conversation group named {new_name!r} exists already")
            # The group first: its conversations are found by its new name when put again.
            tx.rename_group(group, new_name)
            for key in tx.group_members(ConversationGroup(group.id, new_name)):
                current = tx.get_conversation(account.id, key)
                if current is not None:
                    groups = tuple(new_name if g == old_name else g for g in current.groups)
                    self._update_in_place(tx, account, _replace(current, groups=groups), origin)
            self._publish_group(
                tx,
                account,
                GroupChangeKind.NAME_CHANGED,
                new_name,
                (),
                old_name=old_name,
                origin=origin,
            )

        await self._store.write(operation)

    async def _change_members(
        self, account: Account, name: str, keys: Sequence[ConvKey], *, add: bool, origin: str
    ) -> list[Outcome]:
        validate_group_name(name)
        unique = _batch(keys)

        def operation(tx: StoreTransaction) -> list[Outcome]:
            _existing_group(tx, account, name)
            outcomes, changed = self._regroup(tx, account, unique, name, add=add, origin=origin)
            if changed:
                kind = (
                    GroupChangeKind.CONVERSATIONS_ADDED
                    if add
                    else GroupChangeKind.CONVERSATIONS_DELETED
                )
                self._publish_group(tx, account, kind, name, tuple(changed), origin=origin)
            return outcomes

        return await self._store.write(operation)

    def _regroup(
        self,
        tx: StoreTransaction,
        account: Account,
        keys: Sequence[ConvKey],
        name: str,
        *,
        add: bool,
        origin: str,
    ) -> tuple[list[Outcome], list[Conversation]]:
        """Put each conversation in (or take it out of) group ``name``: the outcomes, and the
        conversations that changed (an Update each)."""
        changed: list[Conversation] = []

        def regroup(current: Conversation) -> None:
            if (name in current.groups) == add:
                return  # in it (out of it) already: nothing changes
            groups = (
                (*current.groups, name) if add else tuple(g for g in current.groups if g != name)
            )
            # Grouping does not activate the conversation: its place stays.
            updated = _replace(current, groups=groups)
            self._update_in_place(tx, account, updated, origin)
            changed.append(updated)

        return _each_existing(tx, account, keys, regroup), changed

    def _publish_group(
        self,
        tx: StoreTransaction,
        account: Account,
        kind: GroupChangeKind,
        name: str,
        conversations: tuple[Conversation, ...],
        *,
        old_name: str | None = None,
        origin: str,
    ) -> None:
        # After the Updates of its conversations: the same commit, later in its order.
        change = GroupChange(
            seq=tx.current_seq(account.id),
            kind=kind,
            name=name,
            conversations=conversations,
            old_name=old_name,
            origin=origin,
        )
        tx.after_commit(lambda: self._bus.publish_group(account.id, change))

    # -- change feed -------------------------------------------------------------------------

    async def subscribe(
        self, account: Account, sink: Sink, group_sink: GroupSink | None = None
    ) -> tuple[int, int]:
        """Register ``sink`` for live changes; return its token and the seq it starts after.

        The seq is read and the sink registered at one point of the commit order (inside a
        group commit, registered by its after-commit callback), so no change can fall between
        the returned seq and the first live change the sink receives.
        """
        tokens: list[int] = []
        wanted = True

        def register() -> None:
            if wanted:
                tokens.append(self._bus.add(account.id, sink, group_sink))

        def operation(tx: StoreTransaction) -> int:
            tx.after_commit(register)
            return tx.current_seq(account.id)

        try:
            seq = await self._store.write(operation)
        except BaseException:
            # A caller cancelled while the write was under way (its connection cut, the
            # daemon stopping) never learns the token: a write that commits all the same
            # must not leave the sink registered for good. Either the callback has run (its
            # token is removed here) or it has not (and will register nothing).
            wanted = False
            for token in tokens:
                self._bus.remove(account.id, token)
            raise
        return tokens[0], seq

    def unsubscribe(self, account: Account, token: int) -> None:
        self._bus.remove(account.id, token)

    @property
    def history_id(self) -> str:
        """Names the change history that seqs belong to; a replaced database has a new one."""
        return self._store.history_id

    async def check_resumable(
        self, account: Account, since_seq: int, current_seq: int, history_id: str | None
    ) -> None:
        oldest = await self._store.oldest_kept_seq(account.id)
        if history_id is not None and history_id != self._store.history_id:
            raise SeqTooOld(since_seq, oldest, current_seq, history_replaced=True)
        if since_seq < oldest or since_seq > current_seq:
            raise SeqTooOld(since_seq, oldest, current_seq)

    async def changes_between(
        self, account: Account, after_seq: int, up_to_seq: int, limit: int
    ) -> list[Change]:
        """Committed changes with ``after_seq < seq <= up_to_seq``, oldest first."""
        changes = await self._store.changes_after(account.id, after_seq, limit)
        return [c for c in changes if c.seq <= up_to_seq]

    # -- helpers (run inside write operations, on the store's writer thread) ----------------

    def _create(
        self,
        tx: StoreTransaction,
        account: Account,
        key: ConvKey,
        draft: Draft | None,
        origin: str,
    ) -> Conversation:
        """Create a conversation that does not exist, with ``draft`` if any: an Add change.

        Its revision starts at 0 (1 with a draft: created, then its draft set), or, when a
        conversation of this key may have been deleted before, above every revision that one
        had, so that an ``if_revision`` a client kept from it cannot match the new one.
        """
        retired = tx.retired_revision(account.id, key)
        revision = (0 if retired is None else retired + 1) + (0 if draft is None else 1)
        seq = tx.next_seq(account.id)
        created = Conversation(
            key.conv_type, key.conv_id, order_key=seq, draft=draft, draft_revision=revision
        )
        self._record(tx, account, seq, ChangeKind.ADD, created, origin)
        return created

    def _clear_draft(
        self, tx: StoreTransaction, account: Account, current: Conversation, origin: str
    ) -> Conversation:
        if current.draft is None:
            return current
        seq = tx.next_seq(account.id)
        self._keep_previous(tx, account, current, origin, "cancel")
        # Clearing a draft does not activate the conversation (its order key stays).
        updated = _replace(current, draft=None, draft_revision=current.draft_revision + 1)
        self._record(tx, account, seq, ChangeKind.UPDATE, updated, origin)
        return updated

    def _replace_draft(
        self,
        tx: StoreTransaction,
        account: Account,
        current: Conversation,
        draft: Draft,
        origin: str,
        how: str,
    ) -> Conversation:
        """Make ``draft`` the current one: the replaced draft goes into the history, the
        revision grows by one, and the conversation is activated (it moves to the top of its
        section), as one Update change."""
        seq = tx.next_seq(account.id)
        self._keep_previous(tx, account, current, origin, how)
        updated = _replace(
            current, draft=draft, draft_revision=current.draft_revision + 1, order_key=seq
        )
        self._record(tx, account, seq, ChangeKind.UPDATE, updated, origin)
        return updated

    def _keep_previous(
        self,
        tx: StoreTransaction,
        account: Account,
        current: Conversation,
        origin: str,
        how: str,
    ) -> None:
        """Keep the draft a change is about to replace in the draft history.

        "No draft" is not kept: restoring it is what clearing does, and it would take a slot
        of the bounded history from a draft someone wrote.
        """
        if current.draft is not None:
            tx.keep_draft_version(
                account.id,
                current.key,
                current.draft,
                revision=current.draft_revision,
                replaced_by=origin,
                replaced_how=how,
            )

    def _update_in_place(
        self, tx: StoreTransaction, account: Account, updated: Conversation, origin: str
    ) -> None:
        """Record ``updated`` as an Update change that keeps its place in the list."""
        self._record(tx, account, tx.next_seq(account.id), ChangeKind.UPDATE, updated, origin)

    def _record(
        self,
        tx: StoreTransaction,
        account: Account,
        seq: int,
        kind: ChangeKind,
        conversation: Conversation,
        origin: str,
    ) -> None:
        tx.put_conversation(account.id, conversation)
        change = Change(seq, kind, conversation.key, conversation, origin)
        tx.append_change(account.id, change)
        self._publish_after_commit(tx, account, change)

    def _publish_after_commit(self, tx: StoreTransaction, account: Account, change: Change) -> None:
        tx.after_commit(lambda: self._bus.publish(account.id, change))


def _require_positive(count: int) -> None:
    if count < 1:
        raise InvalidParameter("count must be at least 1")


def validate_mark(mark_type: int) -> None:
    """One of the SDK's marks: Star, Unread, Fold, Hide, or a custom ``1 << n``, 32 <= n < 64."""
    standard = mark_type in (0x1, 0x2, 0x4, 0x8)
    custom = (
        mark_type > 0 and mark_type & (mark_type - 1) == 0 and 32 <= mark_type.bit_length() - 1 < 64
    )
    if not (standard or custom):
        raise InvalidParameter(
            f"mark_type {mark_type} is not a mark: use 0x1 (Star), 0x2 (Unread), 0x4 (Fold), "
            "0x8 (Hide) or a custom mark 1 << n with 32 <= n < 64"
        )


def validate_group_name(name: str) -> None:
    if not name:
        raise InvalidParameter("a conversation group name must not be empty")
    size = len(name.encode())
    if size > Limits.max_group_name_bytes:
        raise GroupNameTooLong(
            f"conversation group name {name!r} is {size} bytes of UTF-8; at most "
            f"{Limits.max_group_name_bytes} are allowed"
        )


def _batch(
    keys: Sequence[ConvKey],
    *,
    allow_empty: bool = False,
    too_many: type[DomainError] = TooManyConversations,
) -> list[ConvKey]:
    """The conversations of a batch call, checked (count, then each key: an invalid one fails
    the whole call), each once, in the order given."""
    if not keys and not allow_empty:
        raise InvalidParameter("name at least one conversation")
    if len(keys) > Limits.max_batch_conversations:
        raise too_many(
            f"{len(keys)} conversations in one request; at most "
            f"{Limits.max_batch_conversations} are allowed"
        )
    for key in keys:
        validate_key(key)
    return list(dict.fromkeys(keys))


def _existing_group(tx: StoreTransaction, account: Account, name: str) -> ConversationGroup:
    group = tx.get_group(account.id, name)
    if group is None:
        raise GroupNotFound(f"no conversation group named {name!r}")
    return group


def _each_existing(
    tx: StoreTransaction,
    account: Account,
    keys: Sequence[ConvKey],
    apply: Callable[[Conversation], None],
) -> list[Outcome]:
    """``apply`` each existing conversation of a batch call, in order: one outcome per key,
    ConversationNotFound for one that does not exist (it fails alone)."""
    outcomes: list[Outcome] = []
    for key in keys:
        current = tx.get_conversation(account.id, key)
        if current is None:
            outcomes.append(Outcome(key, ConversationNotFound(_not_found(key))))
            continue
        apply(current)
        outcomes.append(Outcome(key))
    return outcomes


def _not_found(key: ConvKey) -> str:
    return f"no conversation {key.conv_id!r} of that type"


def _existing_at(
    tx: StoreTransaction, account: Account, key: ConvKey, if_revision: int | None
) -> Conversation:
    """The conversation a draft write changes, at ``if_revision`` when one is given: a missing
    one is a revision conflict when a revision other than 0 was expected, else not found."""
    current = tx.get_conversation(account.id, key)
    if current is None:
        if if_revision is not None and if_revision != 0:
            raise DraftRevisionConflict(if_revision, None)
        raise ConversationNotFound(_not_found(key))
    _check_revision(if_revision, current)
    return current


def _check_revision(if_revision: int | None, current: Conversation | None) -> None:
    if if_revision is None:
        return
    actual = current.draft_revision if current is not None else 0
    if if_revision != actual:
        raise DraftRevisionConflict(if_revision, current)


def _replace(conversation: Conversation, **changes: object) -> Conversation:
    return msgspec.structs.replace(conversation, **changes)
