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
"""

from __future__ import annotations

import msgspec

from convd_schemas import Draft, DraftMessage, MessageElem, TIMElemType

__all__ = ["draft_text", "text_draft", "v2_draft_text"]

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
