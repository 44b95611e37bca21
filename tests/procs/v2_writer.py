"""A writer on the V2 face: sets drafts, pins and deletes conversations when told to.

Usage: ``v2_writer.py USER``. Emits ``ready`` once logged in, ``state`` on every change of its
connection to convd (``connected`` / ``failed`` with the SDK listener's code and text), and
one ``result`` per command:

* ``{"cmd": "set_draft", "conv": "c2c_bob", "text": "..."}`` (``setConversationDraft``)
* ``{"cmd": "pin", "conv": "c2c_bob", "pinned": true}`` (``pinConversation``)
* ``{"cmd": "delete", "conv": "c2c_bob"}`` (``deleteConversation``)

A result carries ``code`` (0 on success) and ``desc`` from the callback, ``started`` (wall
clock just before the call) and ``elapsed`` (seconds until the callback ran).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from _proc import Commands, Reply, emit, start_watchdog

from convd_client.v2 import V2TIMManager, V2TIMSDKConfig, V2TIMSDKListener


class StateListener(V2TIMSDKListener):
    def onConnectSuccess(self) -> None:
        emit("state", state="connected")

    def onConnectFailed(self, code: int, error: str) -> None:
        emit("state", state="failed", code=code, error=error)


def main() -> int:
    start_watchdog()
    user = sys.argv[1]
    commands = Commands()
    manager = V2TIMManager.getInstance()
    if not manager.initSDK(0, V2TIMSDKConfig(), StateListener()):
        emit("fatal", error="initSDK failed")
        return 1
    conversations = manager.getConversationManager()
    try:
        login: Any = Reply()  # V2 takes any object with the callback methods
        manager.login(user, "", login)
        outcome = login.wait()
        if outcome["code"] != 0:
            emit("fatal", error=f"login failed: {outcome}")
            return 1
        emit("ready")
        for command in commands:
            reply: Any = Reply()
            started, clock = time.time(), time.monotonic()
            if command["cmd"] == "set_draft":
                conversations.setConversationDraft(command["conv"], command["text"], reply)
            elif command["cmd"] == "pin":
                conversations.pinConversation(command["conv"], command["pinned"], reply)
            elif command["cmd"] == "delete":
                conversations.deleteConversation(command["conv"], reply)
            else:
                emit("fatal", error=f"unknown command {command}")
                return 1
            outcome = reply.wait()
            emit(
                "result",
                cmd=command["cmd"],
                code=outcome["code"],
                desc=outcome["desc"],
                started=started,
                elapsed=time.monotonic() - clock,
            )
    finally:
        manager.unInitSDK()
    return 0


if __name__ == "__main__":
    sys.exit(main())
