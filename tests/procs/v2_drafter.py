"""A V2 window editing drafts, for the compare-and-set tests: its writes carry the revision
its listeners last saw (the V2 face's default), and its listeners can be held busy.

Usage: ``v2_drafter.py USER``. Emits ``ready`` once logged in (and its login's sync frame is
through), ``event`` per conversation in every onNewConversation / onConversationChanged
(``conv``, ``text``, ``revision``), and one ``result`` per command:

* ``{"cmd": "set_draft", "conv": "c2c_bob", "text": "...", "overwrite": false,
  "stale": false}``: ``setConversationDraft``. With ``stale``, the write is made while this
  window's listeners are held busy (see ``hold``), as a window whose UI thread has not
  caught up: they are let go once the write has picked the revision it sends;
* ``{"cmd": "hold"}``: the next onNewConversation / onConversationChanged holds the logic
  thread (the SDK's callback thread) until a ``stale`` write lets it go, so the events after
  it (and what they would tell the window) wait; answers ``armed`` at once, and ``held`` once
  it holds;
* ``{"cmd": "restore", "conv": "c2c_bob", "revision": N}``: ``restoreConversationDraft``;
* ``{"cmd": "history", "conv": "c2c_bob", "count": N}``: ``getConversationDraftHistory``.

A result has ``code`` and ``desc``; a conflict (``onDraftConflict``) adds ``current_text``
and ``current_revision``; ``history`` adds ``versions`` (revision, text, how).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from _proc import Commands, Reply, emit, start_watchdog

from convd_client.v2 import (
    V2TIMConversation,
    V2TIMConversationListener,
    V2TIMDraftVersion,
    V2TIMManager,
)


class Window(V2TIMConversationListener):
    def __init__(self) -> None:
        self.hold_next = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()
        self.synced = threading.Event()

    def onSyncServerFinish(self) -> None:
        self.synced.set()

    def _show(self, conversations: list[V2TIMConversation]) -> None:
        for conv in conversations:
            emit(
                "event", conv=conv.conversationID, text=conv.draftText, revision=conv.draftRevision
            )

    def onNewConversation(self, conversationList: list[V2TIMConversation]) -> None:
        self.onConversationChanged(conversationList)

    def onConversationChanged(self, conversationList: list[V2TIMConversation]) -> None:
        if self.hold_next.is_set():
            self.hold_next.clear()
            self.release.clear()
            self.holding.set()
            emit("held", convs=[c.conversationID for c in conversationList])
            self.release.wait(30)  # busy: every later callback of this SDK waits behind it
        self._show(conversationList)


def main() -> int:
    start_watchdog()
    user = sys.argv[1]
    commands = Commands()
    manager = V2TIMManager.getInstance()
    if not manager.initSDK(0):
        emit("fatal", error="initSDK failed")
        return 1
    conversations = manager.getConversationManager()
    window = Window()
    conversations.addConversationListener(window)
    core = manager._core
    assert core is not None
    picked = threading.Event()
    seen_revision = core.seen_revision

    def picking(key: Any) -> int | None:
        # Test instrumentation: the write has read the revision it will send.
        revision = seen_revision(key)
        picked.set()
        return revision

    core.seen_revision = picking  # type: ignore[method-assign]
    try:
        login: Any = Reply()
        manager.login(user, "", login)
        outcome = login.wait()
        if outcome["code"] != 0 or not window.synced.wait(10):
            emit("fatal", error=f"login failed: {outcome}")
            return 1
        emit("ready")
        for command in commands:
            reply: Any = Reply()
            name = command["cmd"]
            if name == "hold":
                window.hold_next.set()
                emit("armed")  # the next event will be held: the test may now cause it
                continue
            if name == "set_draft":
                picked.clear()
                conversations.setConversationDraft(
                    command["conv"],
                    command["text"],
                    reply,
                    overwrite=command.get("overwrite", False),
                )
                if command.get("stale"):
                    # An overwrite picks no revision: nothing to wait for.
                    waited = command.get("overwrite") or picked.wait(10)
                    if not window.holding.is_set() or not waited:
                        emit("fatal", error="the stale write did not start while held")
                        return 1
                    window.release.set()
                    window.holding.clear()
            elif name == "restore":
                conversations.restoreConversationDraft(command["conv"], command["revision"], reply)
            elif name == "history":
                conversations.getConversationDraftHistory(command["conv"], command["count"], reply)
            else:
                emit("fatal", error=f"unknown command {command}")
                return 1
            outcome = reply.wait()
            fields: dict[str, Any] = {"code": outcome["code"], "desc": outcome["desc"]}
            if "current" in outcome:
                current: V2TIMConversation | None = outcome["current"]
                fields["current_text"] = None if current is None else current.draftText
                fields["current_revision"] = 0 if current is None else current.draftRevision
            if name == "history" and outcome["code"] == 0:
                versions: list[V2TIMDraftVersion] = outcome["value"]
                fields["versions"] = [[v.revision, v.draftText, v.replacedHow] for v in versions]
            emit("result", cmd=name, **fields)
    finally:
        window.release.set()
        manager.unInitSDK()
    return 0


if __name__ == "__main__":
    sys.exit(main())
