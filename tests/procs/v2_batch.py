"""The V2 face's batch calls and unread count in their own process, and a V2 listener.

Usage: ``v2_batch.py USER``. Emits ``ready`` once logged in and its login's sync is done;
then every listener call as ``{"kind": "event", "name": "onConversationChanged", ...}``
(``conversations``: ``[{conversationID, customData, draftText}]`` or ``ids``: V2 ids), and one
``result`` per command, with the callback's ``code``, ``desc`` and ``value``:

* ``{"cmd": "delete_list", "ids": [...]}`` (``deleteConversationList``): ``value`` is a list of
  ``{conversationID, resultCode, resultInfo}``;
* ``{"cmd": "set_custom_data", "ids": [...], "data": "..."}`` (``setConversationCustomData``):
  the same;
* ``{"cmd": "get", "conv": "c2c_bob"}`` (``getConversation``): ``{conversationID, customData}``;
* ``{"cmd": "unread"}`` (``getTotalUnreadMessageCount``): the count.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from typing import Any

from _proc import Commands, Reply, emit, start_watchdog

from convd_client.v2 import (
    V2TIMConversation,
    V2TIMConversationListener,
    V2TIMConversationOperationResult,
    V2TIMManager,
)


def _conversations(conversations: list[V2TIMConversation]) -> list[dict[str, Any]]:
    return [
        {"conversationID": c.conversationID, "customData": c.customData, "draftText": c.draftText}
        for c in conversations
    ]


class Listener(V2TIMConversationListener):
    def __init__(self) -> None:
        self.synced = threading.Event()

    def onSyncServerFinish(self) -> None:
        self.synced.set()

    def onNewConversation(self, conversationList: list[V2TIMConversation]) -> None:
        if self.synced.is_set():
            emit("event", name="onNewConversation", conversations=_conversations(conversationList))

    def onConversationChanged(self, conversationList: list[V2TIMConversation]) -> None:
        if self.synced.is_set():
            changed = _conversations(conversationList)
            emit("event", name="onConversationChanged", conversations=changed)

    def onConversationDeleted(self, conversationIDList: list[str]) -> None:
        if self.synced.is_set():
            emit("event", name="onConversationDeleted", ids=conversationIDList)

    def onTotalUnreadMessageCountChanged(self, totalUnreadCount: int) -> None:
        emit("event", name="onTotalUnreadMessageCountChanged", count=totalUnreadCount)


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, V2TIMConversationOperationResult):
        return dataclasses.asdict(value)
    if isinstance(value, V2TIMConversation):
        return {"conversationID": value.conversationID, "customData": value.customData}
    return value


def main() -> int:
    start_watchdog()
    user = sys.argv[1]
    commands = Commands()
    manager = V2TIMManager.getInstance()
    manager.initSDK(0)
    conversations = manager.getConversationManager()
    listener = Listener()
    conversations.addConversationListener(listener)
    try:
        login: Any = Reply()
        manager.login(user, "", login)
        outcome = login.wait()
        if outcome["code"] != 0 or not listener.synced.wait(10):
            emit("fatal", error=f"login failed: {outcome}")
            return 1
        emit("ready")
        for command in commands:
            reply: Any = Reply()
            if command["cmd"] == "delete_list":
                conversations.deleteConversationList(command["ids"], True, reply)
            elif command["cmd"] == "set_custom_data":
                conversations.setConversationCustomData(command["ids"], command["data"], reply)
            elif command["cmd"] == "get":
                conversations.getConversation(command["conv"], reply)
            elif command["cmd"] == "unread":
                conversations.getTotalUnreadMessageCount(reply)
            else:
                emit("fatal", error=f"unknown command {command}")
                return 1
            outcome = reply.wait()
            emit(
                "result",
                cmd=command["cmd"],
                code=outcome["code"],
                desc=outcome["desc"],
                value=_plain(outcome.get("value")),
            )
    finally:
        manager.unInitSDK()
    return 0


if __name__ == "__main__":
    sys.exit(main())
