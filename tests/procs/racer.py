"""A racer: reads a conversation's draft revision, then writes a draft only if it is unchanged.

Usage: ``racer.py FACE USER CONV_ID`` with FACE ``c`` (``TIMConvGetConvInfo`` and
``TIMConvSetDraftIfRevision``) or ``v2`` (``getConversation`` and
``setConversationDraft(..., ifRevision=...)``); CONV_ID is a C2C peer id.

Commands, each answered by one line of the same ``kind``:

* ``{"cmd": "read"}``: read the conversation; ``revision`` (0 when it does not exist) and
  ``text`` are remembered as the revision this racer last saw;
* ``{"cmd": "race", "text": "...", "at": T}``: at wall-clock time T, write ``text`` with
  ``if_revision`` = the revision last read;
* ``{"cmd": "retry"}``: after losing, write the same text again with ``if_revision`` = the
  revision the conflict reported.

A write's line has ``sent`` (wall clock just before the call), ``code`` (0 or 90001 ...),
``desc``, ``if_revision``, on success the new ``revision`` when the face reports it (C does,
V2's ``onSuccess()`` carries nothing), and on a conflict the ``current_text`` and
``current_revision`` the conflict reported.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from _proc import Commands, Reply, emit, start_watchdog, wait_until

from convd_client import tim
from convd_client.v2 import V2TIMConversation, V2TIMManager

CONFLICT = 90001


def conv_info_text(info: dict[str, Any] | None) -> str | None:
    draft = None if info is None else info.get("conv_draft")
    if draft is None:
        return None
    elements = draft.get("draft_msg", {}).get("message_elem_array", [])
    return "".join(e.get("text_elem_content", "") for e in elements if e.get("elem_type") == 0)


class CFace:
    def __init__(self, user: str, conv_id: str) -> None:
        self.conv_id = conv_id
        assert tim.TIMInit(0, "") == tim.TIM_SUCC
        login = Reply()
        assert tim.TIMLogin(user, "", login, None) == tim.TIM_SUCC
        outcome = login.wait()
        assert outcome["code"] == 0, outcome

    def close(self) -> None:
        tim.TIMUninit()

    def read(self) -> tuple[int, str | None]:
        wanted = [
            {
                "get_conversation_list_param_conv_id": self.conv_id,
                "get_conversation_list_param_conv_type": tim.kTIMConv_C2C,
            }
        ]
        reply = Reply()
        assert tim.TIMConvGetConvInfo(json.dumps(wanted), reply, None) == tim.TIM_SUCC
        outcome = reply.wait()
        assert outcome["code"] == 0, outcome
        if not outcome["json"]:
            return 0, None
        info = outcome["json"][0]
        return int(info["conv_draft_revision"]), conv_info_text(info)

    def write(self, text: str, if_revision: int) -> dict[str, Any]:
        draft = {"draft_msg": {"message_elem_array": [{"elem_type": 0, "text_elem_content": text}]}}
        reply = Reply()
        ret = tim.TIMConvSetDraftIfRevision(
            self.conv_id, tim.kTIMConv_C2C, json.dumps(draft), if_revision, reply, None
        )
        if ret != tim.TIM_SUCC:
            return {"code": ret, "desc": "TIMConvSetDraftIfRevision refused the call"}
        outcome = reply.wait()
        info = outcome["json"]
        fields: dict[str, Any] = {"code": outcome["code"], "desc": outcome["desc"]}
        if outcome["code"] == 0:
            fields["revision"] = info["conv_draft_revision"]
        elif outcome["code"] == CONFLICT:
            fields["current_text"] = conv_info_text(info)
            fields["current_revision"] = 0 if info is None else info["conv_draft_revision"]
        return fields


class V2Face:
    def __init__(self, user: str, conv_id: str) -> None:
        self.conversation_id = f"c2c_{conv_id}"
        self.manager = V2TIMManager.getInstance()
        assert self.manager.initSDK(0)
        self.conversations = self.manager.getConversationManager()
        login: Any = Reply()  # V2 takes any object with the callback methods
        self.manager.login(user, "", login)
        outcome = login.wait()
        assert outcome["code"] == 0, outcome

    def close(self) -> None:
        self.manager.unInitSDK()

    def read(self) -> tuple[int, str | None]:
        reply: Any = Reply()
        self.conversations.getConversation(self.conversation_id, reply)
        outcome = reply.wait()
        if outcome["code"] == 6004:  # no such conversation: revision 0
            return 0, None
        assert outcome["code"] == 0, outcome
        value: V2TIMConversation = outcome["value"]
        return value.draftRevision, value.draftText

    def write(self, text: str, if_revision: int) -> dict[str, Any]:
        reply: Any = Reply()
        self.conversations.setConversationDraft(
            self.conversation_id, text, reply, ifRevision=if_revision
        )
        outcome = reply.wait()
        fields: dict[str, Any] = {"code": outcome["code"], "desc": outcome["desc"]}
        if "current" in outcome:  # onDraftConflict
            current: V2TIMConversation | None = outcome["current"]
            fields["current_text"] = None if current is None else current.draftText
            fields["current_revision"] = 0 if current is None else current.draftRevision
        return fields


def main() -> int:
    start_watchdog()
    face_name, user, conv_id = sys.argv[1:4]
    commands = Commands()
    face: CFace | V2Face = CFace(user, conv_id) if face_name == "c" else V2Face(user, conv_id)
    try:
        emit("ready", face=face_name)
        seen_revision = 0
        text = ""
        for command in commands:
            if command["cmd"] == "read":
                seen_revision, seen_text = face.read()
                emit("read", revision=seen_revision, text=seen_text)
            elif command["cmd"] == "race":
                text = command["text"]
                wait_until(command["at"])
                used, sent = seen_revision, time.time()
                result = face.write(text, used)
                if "current_revision" in result:
                    seen_revision = result["current_revision"]
                emit("race", if_revision=used, sent=sent, **result)
            elif command["cmd"] == "retry":
                used = seen_revision
                result = face.write(text, used)
                emit("retry", if_revision=used, **result)
            else:
                emit("fatal", error=f"unknown command {command}")
                return 1
    finally:
        face.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
