"""Conversations, drafts, accounts and changes: the daemon's own model of the data."""

from __future__ import annotations

from enum import IntEnum
from typing import Final, TypeAlias

import msgspec

__all__ = [
    "PINNED_BIT",
    "Account",
    "BackupInfo",
    "Change",
    "ChangeKind",
    "ConvKey",
    "ConvType",
    "Conversation",
    "ConversationRow",
    "Draft",
    "DraftElement",
    "DraftVersion",
]

#: Pinned conversations carry this bit in their active time, so one descending sort gives
#: "pinned first, then most recently activated" (tim-api.md §5.1).
PINNED_BIT = 1 << 62


class ConvType(IntEnum):
    C2C = 1
    GROUP = 2


class ChangeKind(IntEnum):
    # Same numbers as the SDK's TIMConvEvent, so no table is needed to map them.
    ADD = 0
    DELETE = 1
    UPDATE = 2


class ConvKey(msgspec.Struct, frozen=True):
    conv_type: ConvType
    conv_id: str


class Account(msgspec.Struct, frozen=True):
    id: int
    sdk_app_id: int
    user_id: str


class DraftElement(msgspec.Struct, frozen=True):
    """An element as a client sent it, before the text-only rule is applied."""

    elem_type: int
    text: str | None


class Draft(msgspec.Struct, frozen=True):
    texts: tuple[str, ...]
    user_define: str
    edit_time: int

    @property
    def is_empty(self) -> bool:
        return not self.user_define and not any(self.texts)

    def same_content(self, other: Draft | None) -> bool:
        """Equal text and user data; the edit time alone is not a change."""
        return (
            other is not None
            and self.texts == other.texts
            and self.user_define == other.user_define
        )


class Conversation(msgspec.Struct, frozen=True):
    conv_type: ConvType
    conv_id: str
    order_key: int
    is_pinned: bool = False
    draft: Draft | None = None
    draft_revision: int = 0
    unread_num: int = 0
    #: Opaque app data (the SDK's conversation custom data): at most 256 bytes of UTF-8.
    custom_data: str = ""

    @property
    def key(self) -> ConvKey:
        return ConvKey(self.conv_type, self.conv_id)

    @property
    def active_time(self) -> int:
        return self.order_key | (PINNED_BIT if self.is_pinned else 0)


#: One conversation of a list page, as the store reads it and the rpc layer writes it out:
#: ``(conv_type, conv_id, active_time, is_pinned, unread_num, draft, draft_revision,
#: custom_data)``, where ``draft`` is the draft as the SDK's json_draft_param JSON document
#: (None: no draft).
#: The domain passes list pages through without building a Conversation per row: a page of
#: a big account is the one read whose cost grows with its size, and it should cost what its
#: bytes cost (one conversion, in the rpc layer). ``ROW_ACTIVE_TIME`` is the sort key.
ConversationRow: TypeAlias = tuple[int, str, int, int, int, bytes | None, int, str]
ROW_ACTIVE_TIME: Final = 2


class BackupInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A finished backup: where it is, its size and the schema version it holds."""

    path: str
    size_bytes: int
    schema_version: int


class Change(msgspec.Struct, frozen=True):
    """One committed change of one conversation, numbered by the account's change sequence.

    ``conversation`` is the state after the change, or None when it was deleted.
    """

    seq: int
    kind: ChangeKind
    key: ConvKey
    conversation: Conversation | None
    origin: str


class DraftVersion(msgspec.Struct, frozen=True, kw_only=True):
    """An earlier draft of a conversation, kept in its draft history (issue 9 section 3).

    ``revision`` is the draft revision it had while it was current; ``replaced_at`` (Unix
    seconds, the store's clock), ``replaced_by`` (the origin of the change) and
    ``replaced_how`` (``"set"``, ``"cancel"`` or ``"restore"``) say what replaced it.
    """

    draft: Draft
    revision: int
    replaced_at: int
    replaced_by: str
    replaced_how: str
