"""What the domain needs from storage. The store package implements these protocols."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from .models import (
    Account,
    BackupInfo,
    Change,
    Conversation,
    ConversationFilter,
    ConversationGroup,
    ConversationRow,
    ConvKey,
    Draft,
    DraftVersion,
    ListedConversations,
)

__all__ = ["ListingRenderer", "Store", "StoreTransaction", "WriteOperation"]

T = TypeVar("T")


class ListingRenderer(Protocol):
    """How a conversation appears in a list page, as bytes the store keeps with it.

    The store renders each conversation when it writes it and stores the rendering beside
    it, so that a list page is read, not built: ``head + draft document + tail`` is the
    conversation as listed (the draft, stored once as its own document, goes between the
    two; with no draft, ``tail`` is empty), and a page is ``page()`` of its conversations'
    renderings joined by ``separator``. Neither the store nor the domain looks inside.
    """

    @property
    def separator(self) -> bytes:
        """What goes between two renderings in a page."""
        ...

    def page(self, joined: bytes) -> bytes:
        """A page of the list, from its renderings in list order joined by ``separator``
        (empty: a page of none)."""
        ...

    @property
    def fingerprint(self) -> str:
        """Changes whenever a rendering would: the store renders every conversation again
        when the one its renderings were made with differs (a new convd), and after every
        migration."""
        ...

    def render(self, conversation: Conversation) -> tuple[bytes, bytes]:
        """``(head, tail)`` of ``conversation`` as a list page shows it."""
        ...


class StoreTransaction(Protocol):
    """One write's view of the shared write transaction.

    A write operation runs synchronously on the store's writer thread, between other writes
    of the same group commit: it sees every earlier write of the batch and nothing later. It
    must not touch event-loop state; what has to happen there goes into ``after_commit``.
    If the operation raises, its statements are rolled back and its ``after_commit``
    callbacks are dropped; the other writes of the batch are unaffected. An operation may run
    more than once before its batch commits (the store runs a batch again after one of its
    writes raised), so it must be a function of the transaction alone: no effect outside it
    but through ``after_commit``, which only the run that commits schedules.
    """

    def get_conversation(self, account_id: int, key: ConvKey) -> Conversation | None: ...

    def count_pinned(self, account_id: int) -> int: ...

    def current_seq(self, account_id: int) -> int: ...

    def next_seq(self, account_id: int) -> int:
        """Advance the account's change sequence and return the new value."""
        ...

    def put_conversation(self, account_id: int, conversation: Conversation) -> None: ...

    def delete_conversation(self, account_id: int, key: ConvKey) -> None: ...

    def retire_revision(self, account_id: int, key: ConvKey, revision: int, seq: int) -> None:
        """Remember ``revision``, the last draft revision of a conversation deleted at ``seq``,
        so that the conversation created again never reuses a revision a client may hold.

        The store may forget single conversations' last revisions (it keeps as many as the
        account's change history keeps changes), but never lowers what
        ``retired_revision`` answers for any conversation.
        """
        ...

    def retired_revision(self, account_id: int, key: ConvKey) -> int | None:
        """The highest draft revision a deleted conversation of this key may have had, or None
        when no conversation of this key can have existed before."""
        ...

    def append_change(self, account_id: int, change: Change) -> None: ...

    def ensure_account(self, sdk_app_id: int, user_id: str) -> int:
        """The id of the account with this identity, created if needed."""
        ...

    def get_group(self, account_id: int, name: str) -> ConversationGroup | None:
        """The account's conversation group of that name, if any."""
        ...

    def count_groups(self, account_id: int) -> int: ...

    def create_group(self, account_id: int, name: str) -> ConversationGroup:
        """A new, empty conversation group (the name is free)."""
        ...

    def rename_group(self, group: ConversationGroup, name: str) -> None:
        """Give the group a new name (free). Its conversations' ``groups`` still name it by
        its old name until they are put again."""
        ...

    def delete_group(self, group: ConversationGroup) -> None:
        """Remove the group, which no conversation names any longer."""
        ...

    def group_members(self, group: ConversationGroup) -> list[ConvKey]:
        """The conversations whose ``groups`` name the group, in list order."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the event loop once the batch has committed, in commit order,
        before the next batch starts and before the write's caller is answered."""
        ...

    def keep_draft_version(
        self,
        account_id: int,
        key: ConvKey,
        draft: Draft,
        *,
        revision: int,
        replaced_by: str,
        replaced_how: str,
    ) -> None:
        """Add ``draft`` (current at ``revision`` until now) to the conversation's draft
        history, stamped with the store's clock, and prune that history to its bounds (the
        newest N versions, none older than the age bound) in the same transaction.

        ``delete_conversation`` deletes the conversation's history with it.
        """
        ...

    def get_draft_version(
        self, account_id: int, key: ConvKey, revision: int
    ) -> DraftVersion | None:
        """The kept version with this revision, or None (never kept, pruned, or too old)."""
        ...


#: A write: a synchronous function of one transaction, run by the store's writer.
WriteOperation = Callable[[StoreTransaction], T]


class Store(Protocol):
    #: Names this database's change history: seqs compare only within one history.
    history_id: str

    async def write(self, operation: WriteOperation[T]) -> T:
        """Run ``operation`` in the next group commit and return its result once committed.

        Raises what the operation raised (its writes then never happened), or
        ``StorageFailure`` when the commit itself failed.
        """
        ...

    async def find_account(self, sdk_app_id: int, user_id: str) -> Account | None: ...

    async def get_conversations(
        self, account_id: int, keys: Sequence[ConvKey]
    ) -> list[Conversation]: ...

    async def list_conversations(
        self,
        account_id: int,
        before_active_time: int | None,
        limit: int,
        *,
        where: ConversationFilter | None = None,
    ) -> ListedConversations:
        """At most ``limit`` conversations by active time, descending, strictly below
        ``before_active_time``; with ``where``, only those that match it (read through an
        index in that order, so a page does not scan the account)."""
        ...

    async def list_conversation_rows(
        self, account_id: int, before_active_time: int | None, limit: int
    ) -> list[ConversationRow]:
        """The same conversations as ``list_conversations`` (no filter), a row each."""
        ...

    async def list_groups(self, account_id: int) -> list[str]:
        """The account's conversation group names, oldest first."""
        ...

    async def count_conversations(self) -> int: ...

    async def current_seq(self, account_id: int) -> int: ...

    async def changes_after(self, account_id: int, seq: int, limit: int) -> list[Change]: ...

    async def oldest_kept_seq(self, account_id: int) -> int:
        """The seq after which every change is still kept (0 when nothing was pruned)."""
        ...

    async def draft_history(self, account_id: int, key: ConvKey, limit: int) -> list[DraftVersion]:
        """At most ``limit`` kept versions of the conversation's draft, newest first (none
        beyond the history's bounds, even if not yet pruned)."""
        ...

    async def backup(self, target: Path, *, overwrite: bool) -> BackupInfo:
        """Write a consistent copy of the whole database to ``target`` while serving.

        Refuses an existing ``target`` unless ``overwrite``; raises BackupFailed.
        """
        ...
