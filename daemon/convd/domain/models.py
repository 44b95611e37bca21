"""Conversations, drafts, accounts and changes: the daemon's own model of the data."""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

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
    "ConversationFilter",
    "ConversationGroup",
    "ConversationRow",
    "Draft",
    "DraftElement",
    "DraftVersion",
    "GroupChange",
    "GroupChangeKind",
    "ListedConversations",
    "Outcome",
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
    #: The conversation's marks: a bitmask of the SDK's TIMConversationMarkType values
    #: (bits 0..3, and custom marks in bits 32..63), as an unsigned 64-bit number.
    marks: int = 0
    #: Names of the conversation groups it is in, in the order it was added to them.
    groups: tuple[str, ...] = ()
    #: Opaque app data (the SDK's conversation custom data): at most 256 bytes of UTF-8.
    custom_data: str = ""

    @property
    def key(self) -> ConvKey:
        return ConvKey(self.conv_type, self.conv_id)

    @property
    def active_time(self) -> int:
        return self.order_key | (PINNED_BIT if self.is_pinned else 0)


class ListedConversations(msgspec.Struct, frozen=True):
    """A page of the list as the store reads it: ``listed`` is the page's conversations as a
    list shows them (ListingRenderer.page of the renderings of the store's renderer),
    ``count`` how many, ``last_active_time`` the last one's sort key (None: the page is
    empty), and ``more`` whether any conversation follows it. The domain passes a page on
    without looking inside: a page of a big account is the one read whose cost grows with
    its size, and it should cost what its bytes cost."""

    listed: bytes
    count: int
    last_active_time: int | None
    more: bool


class ConversationRow(NamedTuple):
    """One conversation of the list with its key, read one by one (a full sync frame)."""

    #: Its sort key (the cursor after it).
    active_time: int
    #: As a list page shows it (ListingRenderer).
    rendering: bytes
    conv_type: int
    conv_id: str


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


class ConversationFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which conversations a filtered list holds; None does not filter, the others must all
    hold.

    ``mark_type``: conversations carrying every bit of it; 0, those without any mark.
    ``group``: the conversations of that group; "", those in no group.
    """

    conv_type: ConvType | None = None
    mark_type: int | None = None
    group: str | None = None
    has_draft: bool | None = None


class ConversationGroup(msgspec.Struct, frozen=True):
    """A conversation group of an account: its store id and its name."""

    id: int
    name: str


class GroupChangeKind(IntEnum):
    CREATED = 0
    DELETED = 1
    NAME_CHANGED = 2
    CONVERSATIONS_ADDED = 3
    CONVERSATIONS_DELETED = 4


class GroupChange(msgspec.Struct, frozen=True, kw_only=True):
    """One committed change of an account's conversation groups.

    It is not a change of the change sequence: ``seq`` is the account's sequence when it was
    committed (its conversations' Update changes come first, with seqs up to it), and it is
    not kept for resuming subscribers. ``conversations`` are the states after the change (for
    CONVERSATIONS_DELETED: no longer in the group); ``old_name`` is set for NAME_CHANGED.
    """

    seq: int
    kind: GroupChangeKind
    name: str
    conversations: tuple[Conversation, ...] = ()
    old_name: str | None = None
    origin: str = ""


class Outcome(msgspec.Struct, frozen=True):
    """What a batch operation did to one conversation: ``error`` None when it succeeded
    (also when nothing had to change)."""

    key: ConvKey
    error: Exception | None = None
