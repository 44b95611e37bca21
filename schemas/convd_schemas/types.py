"""The SDK's data objects, with the SDK's JSON key names exactly (tim-api.md §2)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .enums import TIMConvType
from .limits import MAX_DRAFT_ELEMENTS, MAX_DRAFT_TEXT_CHARS, MAX_INT, MAX_USER_DEFINE_CHARS

__all__ = ["ConvInfo", "ConvKey", "Draft", "DraftMessage", "MessageElem"]

ConvId = Annotated[
    str,
    msgspec.Meta(
        description=(
            "Raw peer user id (C2C) or group id (Group), without the V2 `c2c_`/`group_` prefix."
        ),
        examples=["Windows-02", "Windows-Group-01"],
    ),
]
ConvTypeField = Annotated[TIMConvType, msgspec.Meta(description="1 = C2C, 2 = Group.")]


class MessageElem(msgspec.Struct, kw_only=True):
    """One message element. Drafts hold text only: ``elem_type`` must be 0 (kTIMElem_Text)."""

    elem_type: Annotated[
        int, msgspec.Meta(description="TIMElemType; only 0 (text) is accepted in drafts.")
    ]
    text_elem_content: (
        Annotated[
            str,
            msgspec.Meta(max_length=MAX_DRAFT_TEXT_CHARS, description="The text of a text elem."),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class DraftMessage(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The message inside a draft: only its element array."""

    message_elem_array: Annotated[
        list[MessageElem], msgspec.Meta(max_length=MAX_DRAFT_ELEMENTS)
    ] = msgspec.field(default_factory=list)


class Draft(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A conversation draft, as ``TIMConvSetDraft``'s ``json_draft_param``.

    A draft with no text and an empty ``draft_user_define`` means "no draft" and clears it.
    """

    draft_msg: DraftMessage = msgspec.field(default_factory=DraftMessage)
    draft_user_define: Annotated[
        str,
        msgspec.Meta(max_length=MAX_USER_DEFINE_CHARS, description="Opaque user-defined data."),
    ] = ""
    draft_edit_time: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                le=MAX_INT,
                description="Unix seconds of the last edit; filled with the current time when "
                "left out.",
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class ConvKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Names one conversation: its id and type."""

    conv_id: ConvId
    conv_type: ConvTypeField


class ConvInfo(msgspec.Struct, kw_only=True, omit_defaults=False):
    """A conversation, as the SDK's ConvInfo object, plus convd's ``conv_draft_revision``."""

    conv_id: ConvId
    conv_type: ConvTypeField
    conv_owner: Annotated[str, msgspec.Meta(description='Deprecated by the SDK; always "".')] = ""
    conv_unread_num: Annotated[int, msgspec.Meta(ge=0, description="Unread message count.")] = 0
    conv_active_time: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description=(
                "Sort key: the conversation's order key (grows with every activation: create, "
                "set draft), with bit 62 set while pinned. `conv.list` is sorted by it, "
                "descending: pinned first, then most recently activated first."
            ),
        ),
    ]
    conv_is_has_lastmsg: bool = False
    conv_is_has_draft: bool
    conv_draft: Draft | msgspec.UnsetType = msgspec.UNSET
    conv_is_pinned: bool
    conv_draft_revision: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="convd extension: 0 before the first draft, +1 on every change of the "
            "draft. Pass it back as `if_revision` to write only if nobody changed it since.",
        ),
    ]
