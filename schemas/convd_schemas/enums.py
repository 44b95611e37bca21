"""The SDK's enumerations, with the SDK's numbers (TIMCloudDef.h, TIMErrorCode.h)."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "TIMConvEvent",
    "TIMConvType",
    "TIMConversationMarkType",
    "TIMElemType",
    "TIMResult",
]


class TIMConvType(IntEnum):
    """Conversation type (``conv_type``)."""

    kTIMConv_C2C = 1
    kTIMConv_Group = 2


class TIMElemType(IntEnum):
    """Message element type (``elem_type``); drafts accept only ``kTIMElem_Text``."""

    kTIMElem_Invalid = -1
    kTIMElem_Text = 0
    kTIMElem_Image = 1
    kTIMElem_Sound = 2
    kTIMElem_Custom = 3
    kTIMElem_File = 4
    kTIMElem_GroupTips = 5
    kTIMElem_Face = 6
    kTIMElem_Location = 7
    kTIMElem_GroupReport = 8
    kTIMElem_Video = 9
    kTIMElem_FriendChange = 10
    kTIMElem_ProfileChange = 11
    kTIMElem_Merge = 12


class TIMConvEvent(IntEnum):
    """Kind of a conversation event (``conv.event`` notifications)."""

    kTIMConvEvent_Add = 0
    kTIMConvEvent_Del = 1
    kTIMConvEvent_Update = 2
    #: A sync of the conversation list starts (V2 ``onSyncServerStart``).
    kTIMConvEvent_Start = 3
    #: The sync finished (V2 ``onSyncServerFinish``).
    kTIMConvEvent_Finish = 4


class TIMResult(IntEnum):
    """Synchronous return value of every C-style API call."""

    TIM_SUCC = 0
    TIM_ERR_SDKUNINIT = -1
    TIM_ERR_NOTLOGIN = -2
    TIM_ERR_JSON = -3
    TIM_ERR_PARAM = -4
    TIM_ERR_CONV = -5
    TIM_ERR_GROUP = -6


class TIMConversationMarkType(IntEnum):
    """The SDK's standard conversation marks (``conv_mark_array`` items, ``mark_type``).

    An app may also use a custom mark: ``1 << n`` with ``32 <= n < 64`` (the SDK's rule).
    """

    kTIMConversationMarkTypeStar = 0x1
    kTIMConversationMarkTypeUnread = 0x2
    kTIMConversationMarkTypeFold = 0x4
    kTIMConversationMarkTypeHide = 0x8
