"""The domain: conversations, drafts and their events. No SQL, no JSON-RPC, no sockets.

Public surface: ``ConversationService`` (every operation), ``EventBus`` (fan-out after
commit), the models, the errors, and the ``Store`` protocol the store package implements.
"""

from __future__ import annotations

from .errors import (
    BackupFailed,
    ConversationNotFound,
    DomainError,
    DraftRevisionConflict,
    DraftTooLarge,
    DraftVersionNotFound,
    InvalidGroupId,
    InvalidMessageElement,
    InvalidParameter,
    InvalidUserId,
    NotLoggedIn,
    PinLimitExceeded,
    SeqTooOld,
    StorageFailure,
    SubscriptionNotFound,
    TooManyConversations,
)
from .events import EventBus, Sink
from .models import (
    PINNED_BIT,
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
from .ports import Store, StoreTransaction, WriteOperation
from .service import BatchOutcome, ConversationPage, ConversationService, Limits

__all__ = [
    "PINNED_BIT",
    "Account",
    "BackupFailed",
    "BackupInfo",
    "BatchOutcome",
    "Change",
    "ChangeKind",
    "ConvKey",
    "ConvType",
    "Conversation",
    "ConversationNotFound",
    "ConversationPage",
    "ConversationRow",
    "ConversationService",
    "DomainError",
    "Draft",
    "DraftElement",
    "DraftRevisionConflict",
    "DraftTooLarge",
    "DraftVersion",
    "DraftVersionNotFound",
    "EventBus",
    "InvalidGroupId",
    "InvalidMessageElement",
    "InvalidParameter",
    "InvalidUserId",
    "Limits",
    "NotLoggedIn",
    "PinLimitExceeded",
    "SeqTooOld",
    "Sink",
    "StorageFailure",
    "Store",
    "StoreTransaction",
    "SubscriptionNotFound",
    "TooManyConversations",
    "WriteOperation",
]
