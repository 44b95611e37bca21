"""A subscriber on the C-style face: prints every conversation event it receives.

Usage: ``c_listener.py USER``. ``TIMInit`` (socket from ``$CONVD_SOCKET``),
``TIMSetConvEventCallback``, then ``TIMLogin``; emits ``ready`` once the login's sync
(kTIMConvEvent_Start .. _Finish, emitted as kind ``login_sync``) is done. Every event then
arrives as ``{"kind": "event", "conv_event": N, "conv_array": [...] or null, "t": wall clock}``
(``conv_array`` is the parsed ``json_conv_array``; null for the ``""`` of Start/Finish).

Command ``{"cmd": "set_draft", "conv": "bob", "text": "..."}`` makes a synchronous
``TIMConvSetDraft`` (C2C) and emits ``result`` with its ``ret`` and ``elapsed`` seconds.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from _proc import Commands, Reply, emit, start_watchdog

from convd_client import tim

_synced = threading.Event()


def on_event(conv_event: int, json_conv_array: str, user_data: Any) -> None:
    conv_array = json.loads(json_conv_array) if json_conv_array else None
    kind = "event" if _synced.is_set() else "login_sync"
    emit(kind, conv_event=conv_event, conv_array=conv_array, t=time.time())
    if conv_event == tim.kTIMConvEvent_Finish:
        _synced.set()


def main() -> int:
    start_watchdog()
    user = sys.argv[1]
    commands = Commands()
    if tim.TIMInit(0, "") != tim.TIM_SUCC:
        emit("fatal", error="TIMInit failed")
        return 1
    tim.TIMSetConvEventCallback(on_event, None)
    try:
        login = Reply()
        if tim.TIMLogin(user, "", login, None) != tim.TIM_SUCC:
            emit("fatal", error="TIMLogin refused the call")
            return 1
        outcome = login.wait()
        if outcome["code"] != 0:
            emit("fatal", error=f"login failed: {outcome}")
            return 1
        if not _synced.wait(10):
            emit("fatal", error="no sync after the login")
            return 1
        emit("ready")
        for command in commands:
            if command["cmd"] != "set_draft":
                emit("fatal", error=f"unknown command {command}")
                return 1
            draft = {
                "draft_msg": {
                    "message_elem_array": [{"elem_type": 0, "text_elem_content": command["text"]}]
                }
            }
            clock = time.monotonic()
            ret = tim.TIMConvSetDraft(command["conv"], tim.kTIMConv_C2C, json.dumps(draft))
            emit("result", cmd="set_draft", ret=ret, elapsed=time.monotonic() - clock)
    finally:
        tim.TIMUninit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
