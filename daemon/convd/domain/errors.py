"""What can go wrong in the domain. No codes here: the rpc layer maps these to the wire."""

from __future__ import annotations

from .models import Conversation

__all__ = [
    "BackupFailed",
    "ConversationNotFound",
    "DomainError",
    "DraftRevisionConflict",
    "DraftTooLarge",
    "DraftVersionNotFound",
    "GroupLimitExceeded",
    "GroupNameTooLong",
    "GroupNotFound",
    "InvalidGroupId",
    "InvalidMessageElement",
    "InvalidParameter",
    "InvalidUserId",
    "NotLoggedIn",
    "PinLimitExceeded",
    "SeqTooOld",
    "StorageFailure",
    "SubscriptionNotFound",
    "TooManyConversations",
]


class DomainError(Exception):
    """Base of every expected failure; its text is safe to show to the client."""


class NotLoggedIn(DomainError):
    def __init__(self) -> None:
        super().__init__("log in first: call session.login")


class InvalidParameter(DomainError):
    pass


class InvalidMessageElement(DomainError):
    """A draft element that is not a text element with its text (drafts hold text only)."""


class DraftTooLarge(DomainError):
    """A draft whose text exceeds the SDK's message body limit: it could never be sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the draft's text is {size} bytes of UTF-8, more than the message body limit of "
            f"{limit} bytes (all text elements together)"
        )
        self.size = size
        self.limit = limit


class InvalidUserId(DomainError):
    pass


class InvalidGroupId(DomainError):
    pass


class ConversationNotFound(DomainError):
    pass


class PinLimitExceeded(DomainError):
    pass


class SubscriptionNotFound(DomainError):
    pass


class BackupFailed(DomainError):
    """The backup could not be written; ``errno_name`` is the OS error (``"EEXIST"``) if any;
    ``database_failed``: the database engine failed while copying (not the target's file)."""

    def __init__(
        self,
        message: str,
        path: str,
        errno_name: str | None = None,
        *,
        database_failed: bool = False,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.errno_name = errno_name
        self.database_failed = database_failed


class StorageFailure(DomainError):
    """The database could not take the write (disk full, read-only, I/O error).

    Nothing of the failed write was kept; reads may still work. ``reason`` is one of
    ``"disk full"``, ``"read-only"``, ``"I/O error"``, ``"busy"``, ``"database error"``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the database cannot be written: {reason}; nothing was changed")
        self.reason = reason


class DraftRevisionConflict(DomainError):
    def __init__(self, expected: int, current: Conversation | None) -> None:
        actual = current.draft_revision if current is not None else 0
        super().__init__(
            f"draft revision is {actual}, not {expected}"
            + ("" if current is not None else " (the conversation does not exist)")
        )
        self.current = current


class SeqTooOld(DomainError):
    def __init__(
        self, since_seq: int, oldest_seq: int, current_seq: int, *, history_replaced: bool = False
    ) -> None:
        reason = (
            f"the change history of seq {since_seq} was replaced (the database was restored "
            "or recreated)"
            if history_replaced
            else f"changes after seq {since_seq} are not available (kept: after {oldest_seq} "
            f"up to {current_seq})"
        )
        super().__init__(f"{reason}; reload the conversation list and subscribe without since_seq")
        self.oldest_seq = oldest_seq
        self.current_seq = current_seq


class TooManyConversations(DomainError):
    """A batch request names more conversations than the SDK allows in one request."""


class DraftVersionNotFound(DomainError):
    """A restore named a revision that the conversation's draft history does not hold."""

    def __init__(self, revision: int) -> None:
        super().__init__(
            f"the draft history holds no version with revision {revision} (never kept, "
            "pruned, or deleted with its conversation); nothing was written"
        )
        self.revision = revision

    """A batch call named more conversations than the SDK allows in one request."""


class GroupNotFound(DomainError):
    """The account has no conversation group of that name."""


class GroupLimitExceeded(DomainError):
    """The account has as many conversation groups as the SDK allows."""


class GroupNameTooLong(DomainError):
    """A conversation group name longer than the SDK allows."""
