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
    GroupLimitExceeded,
    GroupNameTooLong,
    GroupNotFound,
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
from .events import EventBus, GroupSink, Sink
from .models import (
    PINNED_BIT,
    Account,
    BackupInfo,
    Change,
    ChangeKind,
    Conversation,
    ConversationFilter,
    ConversationGroup,
    ConvKey,
    ConvType,
    Draft,
    DraftElement,
    GroupChange,
    GroupChangeKind,
    Outcome,
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
    "ConversationFilter",
    "ConversationGroup",
    "ConversationNotFound",
    "ConversationPage",
    "ConversationService",
    "DomainError",
    "Draft",
    "DraftElement",
    "DraftRevisionConflict",
    "DraftTooLarge",
    "EventBus",
    "GroupChange",
    "GroupChangeKind",
    "GroupLimitExceeded",
    "GroupNameTooLong",
    "GroupNotFound",
    "GroupSink",
    "InvalidGroupId",
    "InvalidMessageElement",
    "InvalidParameter",
    "InvalidUserId",
    "Limits",
    "NotLoggedIn",
    "Outcome",
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
