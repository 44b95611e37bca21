"""Drafts as text: how the V2 face writes a draft and how each face reads its text back.

A draft written through V2 (``setConversationDraft``) is stored the way the SDK's own V2
layer stores it: the text goes into ``draft_user_define``, and the same text is also kept as
one text element in ``draft_msg`` (as the SDK's native adapter does), so that readers of the
C face see a normal one-element text draft.

Reading differs by face, as in the SDK:

* V2 (:func:`v2_draft_text`, ``V2TIMConversation.draftText``) reads ``draft_user_define`` when
  it is not empty, else the text elements joined. The SDK header's example draft (text element
  "this draft", user define "this is userdefine") therefore reads "this is userdefine"
  through V2.
* The C face's text (:func:`draft_text`, used by ``convctl``) is the text elements joined,
  falling back to ``draft_user_define`` for a draft without text.

Draft info (reply-to, quote, mentions) lives in ``draft_user_define`` as a JSON object (see
:class:`DraftInfo` and the README's "Draft info" section). :func:`parse_draft_info` reads it
back, and answers None for anything else (plain text above all), so apps that keep plain text
there are unaffected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from convd_schemas import Draft, DraftMessage, MessageElem, TIMElemType

__all__ = [
    "DRAFT_INFO_TYPES",
    "DraftInfo",
    "draft_info_draft",
    "draft_text",
    "parse_draft_info",
    "text_draft",
    "v2_draft_text",
]

_TEXT = int(TIMElemType.kTIMElem_Text)


def text_draft(text: str, user_define: str | None = None, edit_time: int | None = None) -> Draft:
    """A draft holding ``text`` as one text element.

    :param text: the draft text; an empty text makes an empty draft (which clears)
    :param user_define: ``draft_user_define``; by default the text itself, as V2 stores it
    :param edit_time: ``draft_edit_time`` in Unix seconds; by default the daemon's clock
    """
    elements = [MessageElem(elem_type=_TEXT, text_elem_content=text)] if text else []
    return Draft(
        draft_msg=DraftMessage(message_elem_array=elements),
        draft_user_define=text if user_define is None else user_define,
        draft_edit_time=msgspec.UNSET if edit_time is None else edit_time,
    )


def _element_text(draft: Draft) -> str | None:
    texts = [
        elem.text_elem_content
        for elem in draft.draft_msg.message_elem_array
        if elem.elem_type == _TEXT and isinstance(elem.text_elem_content, str)
    ]
    return "".join(texts) if texts else None


def draft_text(draft: Draft | None) -> str | None:
    """The text of a draft as the C face sees it: its text elements joined, else its
    ``draft_user_define``.

    :return: None when there is no draft
    """
    if draft is None:
        return None
    text = _element_text(draft)
    return draft.draft_user_define if text is None else text


def v2_draft_text(draft: Draft | None) -> str | None:
    """The text of a draft as V2's ``draftText``: its ``draft_user_define`` when not empty,
    else its text elements joined (the SDK's V2 layer keeps the text in the user define).

    :return: None when there is no draft
    """
    if draft is None:
        return None
    if draft.draft_user_define:
        return draft.draft_user_define
    return _element_text(draft) or ""


#: The values of a draft info's ``type``: the draft replies to, or quotes, ``messageID``.
DRAFT_INFO_TYPES: Final = ("reply", "quote")


@dataclass
class DraftInfo:
    """What a draft refers to besides its text: the message it replies to or quotes, and the
    users it mentions, kept as a JSON object in ``draft_user_define`` (modelled on the SDK's
    web chat engine's draft info: ``messageID`` and ``type`` "reply" / "quote").

    :param text: the draft's text (what the input box shows)
    :param messageID: the id of the message replied to or quoted ("" for none)
    :param type: "reply" or "quote" with a ``messageID``, else ""
    :param abstract: a short summary of that message, for the input box's banner
    :param atUserList: user ids mentioned (the SDK's @ message's list; its @all marker too)
    :param extra: other members of the object, kept as they were
    """

    text: str = ""
    messageID: str = ""
    type: str = ""
    abstract: str = ""
    atUserList: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def toJSON(self) -> str:
        """The JSON object for ``draft_user_define`` (members left empty are left out)."""
        members: dict[str, Any] = dict(self.extra)
        for name in ("text", "messageID", "type", "abstract"):
            value = getattr(self, name)
            if value:
                members[name] = value
        if self.atUserList:
            members["atUserList"] = list(self.atUserList)
        return json.dumps(members, ensure_ascii=False, separators=(",", ":"))


_STRING_MEMBERS = ("text", "messageID", "type", "abstract")
#: The members that make an object a draft info rather than some other JSON an app stored.
_MARKERS = ("messageID", "atUserList")


def parse_draft_info(user_define: str | None) -> DraftInfo | None:
    """The draft info kept in ``user_define``, or None when it holds anything else.

    A draft info is a JSON object with a ``messageID`` (a non-empty string, with ``type``
    "reply" or "quote") or an ``atUserList`` (a list of strings), or both; ``text`` and
    ``abstract`` are strings when present. Plain text, other JSON, or an object with a
    member of the wrong type is not one (None): the app's own data is left alone.
    """
    if not user_define or not user_define.lstrip().startswith("{"):
        return None
    try:
        members = json.loads(user_define)
    except ValueError:
        return None
    if not isinstance(members, dict) or not any(name in members for name in _MARKERS):
        return None
    for name in _STRING_MEMBERS:
        if name in members and not isinstance(members[name], str):
            return None
    mentions = members.get("atUserList", [])
    if not isinstance(mentions, list) or not all(isinstance(m, str) for m in mentions):
        return None
    message_id = members.get("messageID", "")
    kind = members.get("type", "")
    if bool(message_id) != bool(kind) or (kind and kind not in DRAFT_INFO_TYPES):
        return None  # a reference needs both an id and what it is
    known = (*_STRING_MEMBERS, "atUserList")
    return DraftInfo(
        text=members.get("text", ""),
        messageID=message_id,
        type=kind,
        abstract=members.get("abstract", ""),
        atUserList=list(mentions),
        extra={k: v for k, v in members.items() if k not in known},
    )


def draft_info_draft(info: DraftInfo, edit_time: int | None = None) -> Draft:
    """A draft holding ``info``: its JSON in ``draft_user_define`` and its ``text`` as the
    text element (so C-face readers and ``convctl`` show the text, not the JSON)."""
    return text_draft(info.text, info.toJSON(), edit_time)
