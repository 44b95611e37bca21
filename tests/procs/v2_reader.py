"""A reader on the V2 face: reads one conversation when told to.

Usage: ``v2_reader.py USER``. Emits ``ready`` once logged in, then for every
``{"cmd": "get", "conv": "c2c_bob"}`` one ``result`` from ``getConversation``: ``code`` (0 on
success) and ``desc``, and on success ``draftText``, ``draftRevision`` and ``isPinned``.
"""

from __future__ import annotations

import sys
from typing import Any

from _proc import Commands, Reply, emit, start_watchdog

from convd_client.v2 import V2TIMConversation, V2TIMManager


def main() -> int:
    start_watchdog()
    user = sys.argv[1]
    commands = Commands()
    manager = V2TIMManager.getInstance()
    manager.initSDK(0)
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
            conversations.getConversation(command["conv"], reply)
            outcome = reply.wait()
            fields: dict[str, Any] = {"code": outcome["code"], "desc": outcome["desc"]}
            value = outcome.get("value")
            if isinstance(value, V2TIMConversation):
                fields.update(
                    conversationID=value.conversationID,
                    draftText=value.draftText,
                    draftRevision=value.draftRevision,
                    isPinned=value.isPinned,
                )
            emit("result", **fields)
    finally:
        manager.unInitSDK()
    return 0


if __name__ == "__main__":
    sys.exit(main())
