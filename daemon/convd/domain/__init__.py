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
)
from .events import EventBus, Sink
from .models import (
    PINNED_BIT,
    Account,
    BackupInfo,
    Change,
    ChangeKind,
    Conversation,
    ConvKey,
    ConvType,
    Draft,
    DraftElement,
    DraftVersion,
)
from .ports import Store, StoreTransaction, WriteOperation
from .service import ConversationPage, ConversationService, Limits

__all__ = [
    "PINNED_BIT",
    "Account",
    "BackupFailed",
    "BackupInfo",
    "Change",
    "ChangeKind",
    "ConvKey",
    "ConvType",
    "Conversation",
    "ConversationNotFound",
    "ConversationPage",
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
    "WriteOperation",
]
