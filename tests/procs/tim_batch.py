"""The C face's batch calls and unread count in their own process, and a C-face listener.

Usage: ``tim_batch.py USER``. Emits ``ready`` once logged in and its login's sync is done;
then every conversation event as ``{"kind": "event", "conv_event": N, "conv_array": [...]}``,
and one ``result`` per command with the synchronous ``ret`` and the callback's ``code``,
``desc`` and parsed ``json``:

* ``{"cmd": "delete_list", "ids": [...]}`` (``TIMConvDeleteConversationList``);
* ``{"cmd": "set_custom_data", "ids": [...], "data": "..."}``
  (``TIMConvSetConversationCustomData``);
* ``{"cmd": "unread"}`` (``TIMConvGetTotalUnreadMessageCount``).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from _proc import Commands, Reply, emit, start_watchdog

from convd_client import tim

_synced = threading.Event()


def on_event(conv_event: int, json_conv_array: str, user_data: Any) -> None:
    if not _synced.is_set():
        if conv_event == tim.kTIMConvEvent_Finish:
            _synced.set()
        return
    emit("event", conv_event=conv_event, conv_array=json.loads(json_conv_array))


def on_unread_changed(total_unread_count: int, user_data: Any) -> None:
    emit("unread_changed", count=total_unread_count)


def main() -> int:
    start_watchdog()
    user = sys.argv[1]
    commands = Commands()
    if tim.TIMInit(0, "") != tim.TIM_SUCC:
        emit("fatal", error="TIMInit failed")
        return 1
    tim.TIMSetConvEventCallback(on_event, None)
    tim.TIMSetConvTotalUnreadMessageCountChangedCallback(on_unread_changed, None)
    try:
        login = Reply()
        if tim.TIMLogin(user, "", login, None) != tim.TIM_SUCC:
            emit("fatal", error="TIMLogin refused the call")
            return 1
        outcome = login.wait()
        if outcome["code"] != 0 or not _synced.wait(10):
            emit("fatal", error=f"login failed: {outcome}")
            return 1
        emit("ready")
        for command in commands:
            reply = Reply()
            if command["cmd"] == "delete_list":
                ids = json.dumps(command["ids"])
                ret = tim.TIMConvDeleteConversationList(ids, True, reply, None)
            elif command["cmd"] == "set_custom_data":
                ids = json.dumps(command["ids"])
                ret = tim.TIMConvSetConversationCustomData(ids, command["data"], reply, None)
            elif command["cmd"] == "unread":
                ret = tim.TIMConvGetTotalUnreadMessageCount(reply, None)
            else:
                emit("fatal", error=f"unknown command {command}")
                return 1
            outcome = reply.wait() if ret == tim.TIM_SUCC else {"code": None, "desc": ""}
            emit(
                "result",
                cmd=command["cmd"],
                ret=ret,
                code=outcome["code"],
                desc=outcome["desc"],
                json=outcome.get("json"),
            )
    finally:
        tim.TIMUninit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
