"""Drafts as text: how the V2 face writes a draft and how any face reads its text back.

A draft written through V2 (``setConversationDraft``) is stored the way the SDK's own
adapter stores it: one text element in ``draft_msg`` holding the text, with the same text
mirrored into ``draft_user_define``. Reading a draft as text takes its text elements (joined)
and falls back to ``draft_user_define`` when there are none, so a draft written through the
C face (text elements, any ``draft_user_define``) reads back as its text through V2, and a V2
draft reads back through the C face as a normal one-element draft.
"""

from __future__ import annotations

import msgspec

from convd_schemas import Draft, DraftMessage, MessageElem, TIMElemType

__all__ = ["draft_text", "text_draft"]

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


def draft_text(draft: Draft | None) -> str | None:
    """The text of a draft: its text elements joined, else its ``draft_user_define``.

    :return: None when there is no draft
    """
    if draft is None:
        return None
    texts = [
        elem.text_elem_content
        for elem in draft.draft_msg.message_elem_array
        if elem.elem_type == _TEXT and isinstance(elem.text_elem_content, str)
    ]
    if texts:
        return "".join(texts)
    return draft.draft_user_define
