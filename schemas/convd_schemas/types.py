"""The SDK's data objects, with the SDK's JSON key names exactly (tim-api.md §2)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .enums import TIMConvType
from .limits import (
    MAX_CONV_GROUP_NAME_BYTES,
    MAX_CUSTOM_DATA_BYTES,
    MAX_DRAFT_ELEMENTS,
    MAX_DRAFT_TEXT_BYTES,
    MAX_INT,
    MAX_USER_DEFINE_CHARS,
)

__all__ = ["ConvInfo", "ConvKey", "ConvOperationResult", "Draft", "DraftMessage", "MessageElem"]
__all__ = [
    "ConvInfo",
    "ConvKey",
    "ConvListFilter",
    "Draft",
    "DraftMessage",
    "MessageElem",
]

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
    """One message element (an SDK Elem). Drafts hold text only: ``elem_type`` must be 0
    (kTIMElem_Text), with ``text_elem_content``; any other element answers 6016
    (ERR_INVALID_MSG_ELEM).

    Other keys are accepted and ignored: an app may pass an element it built for a message
    (with keys of other element types, or newer SDK keys), and a non-text element must reach
    the text-only rule (6016) rather than fail as an unknown member. Only ``elem_type`` and
    ``text_elem_content`` are stored.
    """

    elem_type: Annotated[
        int, msgspec.Meta(description="TIMElemType; only 0 (text) is accepted in drafts.")
    ]
    text_elem_content: (
        Annotated[
            str,
            msgspec.Meta(
                description="The text of a text elem. All text elements of one draft together "
                f"may hold at most {MAX_DRAFT_TEXT_BYTES} bytes of UTF-8 (the SDK's 12 KB "
                "message body limit); a larger draft answers 8001 "
                "(ERR_SDK_MSG_BODY_SIZE_LIMIT)."
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class DraftMessage(msgspec.Struct, kw_only=True):
    """The message inside a draft: an SDK Message, of which only the element array is kept.

    A real app sends a whole Message here (``message_conv_id``, ``message_conv_type``,
    ``message_sender``, ``message_client_time``, ...): those keys are accepted and ignored, as
    the SDK ignores them for a draft. This is the one level of a draft that accepts unknown
    keys besides the elements (the Draft object itself has exactly the SDK's three keys, and a
    misspelt one is refused with -32602). ``message_elem_array`` left out means no elements, as
    in an empty Message, so a misspelt ``message_elem_array`` reads as "no text".
    """

    message_elem_array: Annotated[
        list[MessageElem], msgspec.Meta(max_length=MAX_DRAFT_ELEMENTS)
    ] = msgspec.field(default_factory=list)


class Draft(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A conversation draft, as ``TIMConvSetDraft``'s ``json_draft_param``.

    A draft with no text and an empty ``draft_user_define`` means "no draft" and clears it.
    It has exactly the SDK's three keys: any other key is refused (-32602), so a misspelt
    ``draft_user_define`` cannot silently drop data. ``draft_msg`` is an SDK Message and
    accepts the Message's other keys (see DraftMessage).
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


# gc=False: a ConvInfo holds strings, numbers, lists of them and a Draft, so it can never be
# part of a reference cycle; untracked, the thousands a list page makes do not set off
# garbage collections.
class ConvInfo(msgspec.Struct, kw_only=True, omit_defaults=False, gc=False):
    """A conversation, as the SDK's ConvInfo object, plus convd's ``conv_draft_revision``.

    It carries the SDK's keys that mean something on one machine: custom data
    (``conv.set_custom_data``), marks (``conv.mark``) and conversation groups
    (``conv.group_*``) are stored; the receive option is always Receive (0) and the display
    name is the id.
    """

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
    conv_show_name: Annotated[
        str,
        msgspec.Meta(
            description="Display name. convd knows no friend remarks, nicknames or group "
            "names, so it is the conversation's id (always filled by convd)."
        ),
    ] = ""
    conv_recv_opt: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="TIMReceiveMessageOpt; always 0 (Receive): convd receives no messages.",
        ),
    ] = 0
    conv_mark_array: Annotated[
        list[int],
        msgspec.Meta(
            description="Marks (TIMConversationMarkType: Star 0x1, Unread 0x2, Fold 0x4, "
            "Hide 0x8, or a custom mark 1 << n with 32 <= n < 64), one item per mark, "
            "ascending; set with `conv.mark`."
        ),
    ] = msgspec.field(default_factory=list)
    conv_custom_data: Annotated[
        str,
        msgspec.Meta(
            description="Per-conversation custom data, as `conv.set_custom_data` (SDK "
            f"TIMConvSetConversationCustomData) stored it: at most {MAX_CUSTOM_DATA_BYTES} "
            'bytes of UTF-8; "" when none was set.'
        ),
    ] = ""
    conv_conversation_group_array: Annotated[
        list[str],
        msgspec.Meta(
            description="Names of the conversation groups it is in, in the order it was "
            "added to them (`conv.group_*`)."
        ),
    ] = msgspec.field(default_factory=list)
    conv_draft_revision: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="convd extension: +1 on every change of the draft; a new "
            "conversation starts at 0. A conversation deleted and created again starts above "
            "every revision it had before (where convd may have forgotten that one, above "
            "every revision the account's deleted conversations may have had), so an old "
            "revision never matches it. Pass it back as `if_revision` to write only if nobody "
            "changed it since.",
        ),
    ]


class ConvOperationResult(msgspec.Struct, kw_only=True):
    """The outcome of a batch call for one conversation, as the SDK's
    TIMConversationOperationResult / V2TIMConversationOperationResult.

    The SDK names the conversation by its V2 id (``conversation_operation_result_conversation_id``,
    ``c2c_<id>`` / ``group_<id>``); on the wire it is ``conv_id`` and ``conv_type``, as everywhere
    in convd's contract, and the faces build the SDK's shape from them.
    """

    conv_id: ConvId
    conv_type: ConvTypeField
    result_code: Annotated[
        int,
        msgspec.Meta(
            description="0 when the operation succeeded for this conversation, else the SDK "
            "error code (6004: no such conversation)."
        ),
    ]
    result_info: Annotated[
        str, msgspec.Meta(description='What went wrong for this conversation; "" on success.')
    ]


#: A mark as the SDK types it: an unsigned 64-bit integer.
MarkType = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        description="A TIMConversationMarkType (an unsigned 64-bit number): Star 0x1, Unread "
        "0x2, Fold 0x4, Hide 0x8, or a custom mark 1 << n with 32 <= n < 64.",
    ),
]
#: A conversation group's name: 1..32 bytes of UTF-8 (the SDK's limit). The byte length is
#: checked by convd (51011), not by the schema (which counts characters).
GroupName = Annotated[
    str,
    msgspec.Meta(
        description=f"A conversation group's name: 1..{MAX_CONV_GROUP_NAME_BYTES} bytes of "
        "UTF-8 (longer: 51011; empty: 6017).",
        examples=["friends"],
    ),
]


class ConvListFilter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which conversations a filtered list holds (the SDK's TIMConversationListFilter, 7.x keys,
    plus convd's ``conversation_list_filter_has_draft``). A key left out does not filter;
    given keys must all hold."""

    conversation_list_filter_conv_type: (
        Annotated[TIMConvType, msgspec.Meta(description="Only this type: 1 = C2C, 2 = Group.")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    conversation_list_filter_mark_type: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                description="Only conversations that carry every mark of this value (an "
                "unsigned 64-bit number; larger: 6017); 0: only conversations without any mark.",
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    conversation_list_filter_conversation_group: (
        Annotated[
            str,
            msgspec.Meta(
                description='Only the conversations of this conversation group; "": only '
                "conversations in no group. An unknown group gives an empty list."
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    conversation_list_filter_has_unread_count: Annotated[
        bool,
        msgspec.Meta(
            description="true: only conversations with unread messages. convd receives no "
            "messages, so none has: the list is then empty."
        ),
    ] = False
    conversation_list_filter_has_group_at_info: Annotated[
        bool,
        msgspec.Meta(
            description="true: only conversations with @ information. convd receives no "
            "messages, so none has: the list is then empty."
        ),
    ] = False
    conversation_list_filter_has_draft: (
        Annotated[
            bool,
            msgspec.Meta(
                description="convd extension: true, only conversations with a draft; false, "
                "only those without."
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
