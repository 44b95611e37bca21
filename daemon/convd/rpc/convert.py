"""Between the domain's models and the wire types of convd_schemas."""

from __future__ import annotations

from typing import cast

import msgspec

from convd_schemas import (
    ConvInfo,
    ConvKey,
    Draft,
    DraftMessage,
    DraftVersion,
    MessageElem,
    TIMConvType,
)
from convd_schemas.enums import TIMElemType

from .. import domain

__all__ = [
    "conv_info",
    "deleted_conv",
    "domain_elements",
    "domain_key",
    "domain_keys",
    "draft_version",
    "listed_conv_info",
    "wire_draft",
]

_TEXT = int(TIMElemType.kTIMElem_Text)
_WIRE_CONV_TYPES = {t: TIMConvType(int(t)) for t in domain.ConvType}
_WIRE_CONV_TYPES_BY_NUMBER = {int(t): TIMConvType(int(t)) for t in domain.ConvType}
_DOMAIN_CONV_TYPES = {TIMConvType(int(t)): t for t in domain.ConvType}


def domain_key(conv_id: str, conv_type: TIMConvType) -> domain.ConvKey:
    return domain.ConvKey(_DOMAIN_CONV_TYPES[conv_type], conv_id)


def domain_keys(keys: list[ConvKey]) -> list[domain.ConvKey]:
    return [domain_key(k.conv_id, k.conv_type) for k in keys]


def domain_elements(draft: Draft) -> list[domain.DraftElement]:
    return [
        domain.DraftElement(
            elem.elem_type,
            None
            if isinstance(elem.text_elem_content, msgspec.UnsetType)
            else elem.text_elem_content,
        )
        for elem in draft.draft_msg.message_elem_array
    ]


def wire_draft(draft: domain.Draft) -> Draft:
    return Draft(
        draft_msg=DraftMessage(
            message_elem_array=[
                MessageElem(elem_type=_TEXT, text_elem_content=text) for text in draft.texts
            ]
        ),
        draft_user_define=draft.user_define,
        draft_edit_time=draft.edit_time,
    )


def conv_info(conversation: domain.Conversation) -> ConvInfo:
    draft = conversation.draft
    return ConvInfo(
        conv_id=conversation.conv_id,
        conv_type=_WIRE_CONV_TYPES[conversation.conv_type],
        conv_unread_num=conversation.unread_num,
        conv_active_time=conversation.active_time,
        conv_is_has_draft=draft is not None,
        conv_draft=msgspec.UNSET if draft is None else wire_draft(draft),
        conv_is_pinned=conversation.is_pinned,
        # convd knows no remarks, nicknames or group names: the id is the display name.
        conv_show_name=conversation.conv_id,
        conv_draft_revision=conversation.draft_revision,
        conv_custom_data=conversation.custom_data,
    )


def listed_conv_info(row: domain.ConversationRow) -> ConvInfo:
    """A list page's row, straight to its wire form: the one conversion a listed
    conversation goes through (see domain.ConversationRow)."""
    conv_type, conv_id, active_time, is_pinned, unread_num, draft, revision, custom_data = row
    return ConvInfo(
        conv_id=conv_id,
        conv_type=_WIRE_CONV_TYPES_BY_NUMBER[conv_type],
        conv_unread_num=unread_num,
        conv_active_time=active_time,
        conv_is_has_draft=draft is not None,
        # The stored document is the draft's wire JSON (the SDK's json_draft_param): it is
        # written out as it is, never decoded here. msgspec encodes a Raw as its bytes.
        conv_draft=msgspec.UNSET if draft is None else cast(Draft, msgspec.Raw(draft)),
        conv_is_pinned=bool(is_pinned),
        conv_show_name=conv_id,
        conv_custom_data=custom_data,
        conv_draft_revision=revision,
    )


def deleted_conv(key: domain.ConvKey) -> ConvKey:
    """What a Del event carries for a deleted conversation: its id and type."""
    return ConvKey(conv_id=key.conv_id, conv_type=_WIRE_CONV_TYPES[key.conv_type])


def draft_version(version: domain.DraftVersion) -> DraftVersion:
    """An earlier draft, as ``conv.draft_history`` lists it."""
    return DraftVersion(
        revision=version.revision,
        draft=wire_draft(version.draft),
        replaced_at=version.replaced_at,
        replaced_by=version.replaced_by,
        replaced_how=version.replaced_how,
    )
