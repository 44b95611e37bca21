"""Between the domain's models and the wire types of convd_schemas."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, cast

import msgspec

from convd_schemas import (
    ConvGroupEventConversationsAdded,
    ConvGroupEventConversationsDeleted,
    ConvGroupEventCreated,
    ConvGroupEventDeleted,
    ConvGroupEventNameChanged,
    ConvGroupEventParams,
    ConvInfo,
    ConvKey,
    ConvListFilter,
    ConvListResult,
    Draft,
    DraftMessage,
    DraftVersion,
    MessageElem,
    TIMConvType,
)
from convd_schemas.enums import TIMElemType

from .. import __version__, domain

__all__ = [
    "ConvListing",
    "conv_info",
    "domain_elements",
    "domain_filter",
    "domain_key",
    "domain_keys",
    "draft_version",
    "group_event",
    "list_result",
    "listed_info",
    "mark_array",
    "wire_draft",
    "wire_key",
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
    return _conv_info(conversation, msgspec.UNSET if draft is None else wire_draft(draft))


def _conv_info(conversation: domain.Conversation, draft: Draft | msgspec.UnsetType) -> ConvInfo:
    return ConvInfo(
        conv_id=conversation.conv_id,
        conv_type=_WIRE_CONV_TYPES[conversation.conv_type],
        conv_unread_num=conversation.unread_num,
        conv_active_time=conversation.active_time,
        conv_is_has_draft=conversation.draft is not None,
        conv_draft=draft,
        conv_is_pinned=conversation.is_pinned,
        # convd knows no remarks, nicknames or group names: the id is the display name.
        conv_show_name=conversation.conv_id,
        conv_mark_array=mark_array(conversation.marks),
        conv_conversation_group_array=list(conversation.groups),
        conv_draft_revision=conversation.draft_revision,
        conv_custom_data=conversation.custom_data,
    )


#: Stands for the draft document in a rendering (ConvListing.render), which is split there:
#: no JSON msgspec writes has a NUL byte (it escapes control characters in strings).
_DRAFT_SLOT = b"\x00"
_listing_encoder = msgspec.json.Encoder()


class ConvListing:
    """Renders conversations for list pages: the ListingRenderer the store is opened with.

    A rendering is the conversation's wire ConvInfo, byte for byte as ``conv_info`` encodes,
    cut where its draft goes: the store keeps the draft once, as the SDK's json_draft_param
    document (which is what ``wire_draft`` encodes to), and puts it back in between. A page
    is the JSON array of its renderings.
    """

    @property
    def separator(self) -> bytes:
        return b","

    def page(self, joined: bytes) -> bytes:
        # A JSON array: one copy of the page, made here rather than by SQL (whose || copied
        # the whole page at each end).
        return b"[" + joined + b"]"

    def render(self, conversation: domain.Conversation) -> tuple[bytes, bytes]:
        if conversation.draft is None:
            return _listing_encoder.encode(_conv_info(conversation, msgspec.UNSET)), b""
        slot = cast(Draft, msgspec.Raw(_DRAFT_SLOT))
        head, tail = _listing_encoder.encode(_conv_info(conversation, slot)).split(_DRAFT_SLOT)
        return head, tail

    @property
    def fingerprint(self) -> str:
        # convd's and msgspec's versions (a release may render some value differently that
        # no sample shows), and the renderings of two conversations that between them set
        # every field (a change between releases, as in development).
        return _listing_fingerprint()


@cache
def _listing_fingerprint() -> str:
    samples = (
        domain.Conversation(
            domain.ConvType.GROUP,
            'g "1"\n\u00e9',
            7,
            is_pinned=True,
            draft=domain.Draft(("a", 'b"\u4e2d'), "user", 1700000000),
            draft_revision=3,
            unread_num=2,
            marks=(1 << 32) | 5,
            groups=("work", "x\ty"),
            custom_data="c\u00e9",
        ),
        domain.Conversation(domain.ConvType.C2C, "u", 1),
    )
    renderings = [b"|".join(ConvListing().render(sample)).decode() for sample in samples]
    return "\n".join([f"convd {__version__}, msgspec {msgspec.__version__}", *renderings])


def list_result(page: domain.ConversationPage) -> ConvListResult:
    """A page of the list (``conv.list``, ``conv.list_by_filter``) as the SDK's result: the
    stored renderings as they are (msgspec writes a Raw as its bytes)."""
    return ConvListResult(
        conversation_list_result_conv_list=cast(list[ConvInfo], msgspec.Raw(page.listed)),
        conversation_list_result_next_seq=page.next_seq,
        conversation_list_result_is_finished=page.is_finished,
    )


def listed_info(row: domain.ConversationRow) -> ConvInfo:
    """One conversation of the list read a row at a time, as its wire ConvInfo (encoded as
    it was stored)."""
    return cast(ConvInfo, msgspec.Raw(row.rendering))


def wire_key(key: domain.ConvKey) -> ConvKey:
    """A conversation's key on the wire: its id and type (a Del event, a batch result)."""
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


def mark_array(marks: int) -> list[int]:
    """A marks bitmask as ConvInfo's ``conv_mark_array``: one mark per set bit, ascending."""
    return [1 << bit for bit in range(marks.bit_length()) if marks >> bit & 1]


def _unset(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


def domain_filter(wire: ConvListFilter) -> domain.ConversationFilter | None:
    """The filter as the domain takes it; None when nothing can match (unread messages and
    @ information, which convd never has)."""
    if wire.conversation_list_filter_has_unread_count:
        return None
    if wire.conversation_list_filter_has_group_at_info:
        return None
    conv_type = _unset(wire.conversation_list_filter_conv_type)
    return domain.ConversationFilter(
        conv_type=None if conv_type is None else _DOMAIN_CONV_TYPES[conv_type],
        mark_type=_unset(wire.conversation_list_filter_mark_type),
        group=_unset(wire.conversation_list_filter_conversation_group),
        has_draft=_unset(wire.conversation_list_filter_has_draft),
    )


def group_event(
    change: domain.GroupChange, subscription: int, infos: Callable[[domain.Conversation], ConvInfo]
) -> ConvGroupEventParams:
    """The ``conv.group_event`` params of a change of the conversation groups."""
    kind = change.kind
    head: dict[str, Any] = {
        "subscription": subscription,
        "seq": change.seq,
        "origin": change.origin,
        "group_name": change.name,
    }
    conv_array = [infos(c) for c in change.conversations]
    if kind is domain.GroupChangeKind.CREATED:
        return ConvGroupEventCreated(**head, conv_array=conv_array)
    if kind is domain.GroupChangeKind.DELETED:
        return ConvGroupEventDeleted(**head)
    if kind is domain.GroupChangeKind.NAME_CHANGED:
        return ConvGroupEventNameChanged(**head, old_name=change.old_name or "")
    if kind is domain.GroupChangeKind.CONVERSATIONS_ADDED:
        return ConvGroupEventConversationsAdded(**head, conv_array=conv_array)
    return ConvGroupEventConversationsDeleted(**head, conv_array=conv_array)
