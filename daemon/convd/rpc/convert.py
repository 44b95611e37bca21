"""Between the domain's models and the wire types of convd_schemas."""

from __future__ import annotations

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
    "wire_draft",
]

_TEXT = int(TIMElemType.kTIMElem_Text)
_WIRE_CONV_TYPES = {t: TIMConvType(int(t)) for t in domain.ConvType}
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
