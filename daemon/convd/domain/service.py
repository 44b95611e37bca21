"""The conversation and draft rules of the SDK, on top of a Store and an EventBus."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from .errors import (
    ConversationNotFound,
    DomainError,
    DraftRevisionConflict,
    DraftTooLarge,
    DraftVersionNotFound,
    InvalidGroupId,
    InvalidMessageElement,
    InvalidParameter,
    InvalidUserId,
    PinLimitExceeded,
    SeqTooOld,
    TooManyConversations,
)
from .events import EventBus, Sink
from .models import (
    ROW_ACTIVE_TIME,
    Account,
    BackupInfo,
    Change,
    ChangeKind,
    Conversation,
    ConversationRow,
    ConvKey,
    ConvType,
    Draft,
    DraftElement,
    DraftVersion,
)
from .ports import Store, StoreTransaction

__all__ = ["BatchOutcome", "ConversationPage", "ConversationService", "Limits"]

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
    #: Most conversations one batch call may name (deleteConversationList,
    #: setConversationCustomData).
    max_batch_convs = 100
    #: Largest custom data of one conversation, in UTF-8 bytes.
    max_custom_data_bytes = 256
    #: Draft history: versions kept per conversation, and their age bound (seconds), by
    #: default (``convd --draft-history`` / ``--draft-history-for``).
    draft_history = 20
    draft_history_seconds = 30 * 86400


#: What a batch operation did for one conversation: its key, and None when it succeeded, or
#: the domain error that kept it from succeeding (the batch's other conversations go on).
BatchOutcome = tuple[ConvKey, DomainError | None]


class ConversationPage:
    """One page of the list: its rows (see ConversationRow) and the cursor after it."""

    __slots__ = ("is_finished", "next_seq", "rows")

    def __init__(self, rows: list[ConversationRow], next_seq: int, is_finished: bool):
        self.rows = rows
        self.next_seq = next_seq
        self.is_finished = is_finished


def _is_printable_ascii(value: str) -> bool:
    return all(0x20 <= ord(ch) <= 0x7E for ch in value)


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

    async def list_page(self, account: Account, next_seq: int, count: int) -> ConversationPage:
        if count < 1:
            raise InvalidParameter("count must be at least 1")
        rows = await self._store.list_conversations(account.id, next_seq or None, count + 1)
        page = rows[:count]
        cursor = page[-1][ROW_ACTIVE_TIME] if page else next_seq
        return ConversationPage(page, cursor, len(rows) <= count)

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
            seq = tx.next_seq(account.id)
            tx.delete_conversation(account.id, key)
            # A client may still hold this revision: the conversation created again must
            # start above it, or an old if_revision could match by accident.
            tx.retire_revision(account.id, key, current.draft_revision, seq)
            change = Change(seq, ChangeKind.DELETE, key, None, origin)
            tx.append_change(account.id, change)
            self._publish_after_commit(tx, account, change)

        await self._store.write(operation)

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
            seq = tx.next_seq(account.id)
            self._keep_previous(tx, account, current, origin, "set")
            # Setting a draft activates the conversation: it moves to the top of its section.
            updated = _replace(
                current, draft=draft, draft_revision=current.draft_revision + 1, order_key=seq
            )
            self._record(tx, account, seq, ChangeKind.UPDATE, updated, origin)
            return updated

        return await self._store.write(operation)

    async def cancel_draft(
        self, account: Account, key: ConvKey, *, if_revision: int | None = None, origin: str
    ) -> Conversation:
        validate_key(key)

        def operation(tx: StoreTransaction) -> Conversation:
            current = tx.get_conversation(account.id, key)
            if current is None:
                if if_revision is not None and if_revision != 0:
                    raise DraftRevisionConflict(if_revision, None)
                raise ConversationNotFound(_not_found(key))
            _check_revision(if_revision, current)
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
            current = tx.get_conversation(account.id, key)
            if current is None:
                if if_revision is not None and if_revision != 0:
                    raise DraftRevisionConflict(if_revision, None)
                raise ConversationNotFound(_not_found(key))
            _check_revision(if_revision, current)
            if revision == current.draft_revision:
                return current
            version = tx.get_draft_version(account.id, key, revision)
            if version is None:
                raise DraftVersionNotFound(revision)
            if version.draft.same_content(current.draft):
                return current
            seq = tx.next_seq(account.id)
            self._keep_previous(tx, account, current, origin, "restore")
            restored = Draft(version.draft.texts, version.draft.user_define, now)
            updated = _replace(
                current, draft=restored, draft_revision=current.draft_revision + 1, order_key=seq
            )
            self._record(tx, account, seq, ChangeKind.UPDATE, updated, origin)
            return updated

        return await self._store.write(operation)

    async def draft_history(
        self, account: Account, key: ConvKey, count: int
    ) -> tuple[Conversation, list[DraftVersion]]:
        """The conversation and at most ``count`` of its earlier drafts, newest first."""
        validate_key(key)
        if count < 1:
            raise InvalidParameter("count must be at least 1")
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
    ) -> list[BatchOutcome]:
        """Delete each conversation named, in one write (deleteConversationList).

        Every key is checked first: an invalid one, an empty list or more than the batch limit
        fails the call and deletes nothing. A key named twice counts once. A conversation that
        does not exist gets ConversationNotFound as its outcome; each one deleted is a Delete
        change of its own, as ``delete`` makes.
        """
        unique = _batch_keys(keys, InvalidParameter)

        def operation(tx: StoreTransaction) -> list[BatchOutcome]:
            outcomes: list[BatchOutcome] = []
            for key in unique:
                current = tx.get_conversation(account.id, key)
                if current is None:
                    outcomes.append((key, ConversationNotFound(_not_found(key))))
                    continue
                seq = tx.next_seq(account.id)
                tx.delete_conversation(account.id, key)
                # As in delete: a re-created conversation starts above this revision.
                tx.retire_revision(account.id, key, current.draft_revision, seq)
                change = Change(seq, ChangeKind.DELETE, key, None, origin)
                tx.append_change(account.id, change)
                self._publish_after_commit(tx, account, change)
                outcomes.append((key, None))
            return outcomes

        return await self._store.write(operation)

    async def set_custom_data(
        self, account: Account, keys: Sequence[ConvKey], custom_data: str, *, origin: str
    ) -> list[BatchOutcome]:
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
        unique = _batch_keys(keys, TooManyConversations)

        def operation(tx: StoreTransaction) -> list[BatchOutcome]:
            outcomes: list[BatchOutcome] = []
            for key in unique:
                current = tx.get_conversation(account.id, key)
                if current is None:
                    outcomes.append((key, ConversationNotFound(_not_found(key))))
                    continue
                if current.custom_data != custom_data:
                    seq = tx.next_seq(account.id)
                    updated = _replace(current, custom_data=custom_data)
                    self._record(tx, account, seq, ChangeKind.UPDATE, updated, origin)
                outcomes.append((key, None))
            return outcomes

        return await self._store.write(operation)

    # -- change feed -------------------------------------------------------------------------

    async def subscribe(self, account: Account, sink: Sink) -> tuple[int, int]:
        """Register ``sink`` for live changes; return its token and the seq it starts after.

        The seq is read and the sink registered at one point of the commit order (inside a
        group commit, registered by its after-commit callback), so no change can fall between
        the returned seq and the first live change the sink receives.
        """
        tokens: list[int] = []

        def operation(tx: StoreTransaction) -> int:
            tx.after_commit(lambda: tokens.append(self._bus.add(account.id, sink)))
            return tx.current_seq(account.id)

        seq = await self._store.write(operation)
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


def _not_found(key: ConvKey) -> str:
    return f"no conversation {key.conv_id!r} of that type"


def _batch_keys(keys: Sequence[ConvKey], too_many: type[DomainError]) -> list[ConvKey]:
    """The keys of a batch call, checked (count, then each key) and without repeats."""
    if not keys:
        raise InvalidParameter("name at least one conversation")
    if len(keys) > Limits.max_batch_convs:
        raise too_many(
            f"{len(keys)} conversations named; one request may name at most "
            f"{Limits.max_batch_convs}"
        )
    for key in keys:
        validate_key(key)
    return list(dict.fromkeys(keys))


def _check_revision(if_revision: int | None, current: Conversation | None) -> None:
    if if_revision is None:
        return
    actual = current.draft_revision if current is not None else 0
    if if_revision != actual:
        raise DraftRevisionConflict(if_revision, current)


def _replace(conversation: Conversation, **changes: object) -> Conversation:
    return msgspec.structs.replace(conversation, **changes)
