"""What the domain needs from storage. The store package implements these protocols."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from .models import Account, BackupInfo, Change, Conversation, ConvKey

__all__ = ["Store", "StoreTransaction"]


class StoreTransaction(Protocol):
    """One write transaction. Its changes become visible, all at once, when it commits."""

    async def get_conversation(self, account_id: int, key: ConvKey) -> Conversation | None: ...

    async def count_pinned(self, account_id: int) -> int: ...

    async def current_seq(self, account_id: int) -> int: ...

    async def next_seq(self, account_id: int) -> int:
        """Advance the account's change sequence and return the new value."""
        ...

    async def put_conversation(self, account_id: int, conversation: Conversation) -> None: ...

    async def delete_conversation(self, account_id: int, key: ConvKey) -> None: ...

    async def append_change(self, account_id: int, change: Change) -> None: ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction has committed, before the next one starts."""
        ...


class Store(Protocol):
    #: Names this database's change history: seqs compare only within one history.
    history_id: str

    async def get_account(self, sdk_app_id: int, user_id: str) -> Account:
        """The account with this identity, created on first use."""
        ...

    async def get_conversation(self, account_id: int, key: ConvKey) -> Conversation | None: ...

    async def get_conversations(
        self, account_id: int, keys: Sequence[ConvKey]
    ) -> list[Conversation]: ...

    async def list_conversations(
        self, account_id: int, before_active_time: int | None, limit: int
    ) -> list[Conversation]:
        """Conversations by active time, descending, strictly below ``before_active_time``."""
        ...

    async def count_conversations(self) -> int: ...

    async def current_seq(self, account_id: int) -> int: ...

    async def changes_after(self, account_id: int, seq: int, limit: int) -> list[Change]: ...

    async def oldest_kept_seq(self, account_id: int) -> int:
        """The seq after which every change is still kept (0 when nothing was pruned)."""
        ...

    def write(self) -> AbstractAsyncContextManager[StoreTransaction]:
        """Begin the one write transaction; commits on success, rolls back on any error."""
        ...

    async def backup(self, target: Path, *, overwrite: bool) -> BackupInfo:
        """Write a consistent copy of the whole database to ``target`` while serving.

        Refuses an existing ``target`` unless ``overwrite``; raises BackupFailed.
        """
        ...
