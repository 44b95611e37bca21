"""The V2 face's batch calls and unread count: ``deleteConversationList``,
``setConversationCustomData``, ``getTotalUnreadMessageCount`` and the listener's
``onTotalUnreadMessageCountChanged``: results, listeners, codes."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from convd_client.v2 import (
    V2TIMCallback,
    V2TIMConversation,
    V2TIMConversationListener,
    V2TIMConversationOperationResult,
    V2TIMManager,
    V2TIMSDKConfig,
    V2TIMValueCallback,
)
from support import DaemonProcess

ERR_INVALID_CONVERSATION = 6004
ERR_SDK_NOT_INITIALIZED = 6013
ERR_SDK_NOT_LOGGED_IN = 6014
ERR_INVALID_PARAMETERS = 6017
ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT = 51006


class Outcome:
    """What one callback reports: ("ok", value) or ("error", (code, desc)), and its thread."""

    def __init__(self) -> None:
        self.results: queue.Queue[tuple[str, Any, int]] = queue.Queue()

    def callback(self) -> V2TIMValueCallback[Any]:
        return V2TIMValueCallback(
            onSuccess=lambda value: self.results.put(("ok", value, threading.get_ident())),
            onError=lambda code, desc: self.results.put(
                ("error", (code, desc), threading.get_ident())
            ),
        )

    def ok(self, timeout: float = 5) -> Any:
        kind, value, thread = self.results.get(timeout=timeout)
        assert kind == "ok", value
        assert thread != threading.get_ident()
        return value

    def error(self, timeout: float = 5) -> tuple[int, str]:
        kind, value, _ = self.results.get(timeout=timeout)
        assert kind == "error", value
        return tuple(value)  # type: ignore[return-value]


class Listener(V2TIMConversationListener):
    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.synced = threading.Event()

    def onSyncServerFinish(self) -> None:
        self.synced.set()

    def onNewConversation(self, conversationList: list[V2TIMConversation]) -> None:
        self.calls.put(("new", conversationList))

    def onConversationChanged(self, conversationList: list[V2TIMConversation]) -> None:
        if self.synced.is_set():
            self.calls.put(("changed", conversationList))

    def onConversationDeleted(self, conversationIDList: list[str]) -> None:
        self.calls.put(("deleted", conversationIDList))

    def onTotalUnreadMessageCountChanged(self, totalUnreadCount: int) -> None:
        self.calls.put(("unread", totalUnreadCount))

    def next(self, timeout: float = 5) -> tuple[str, Any]:
        return self.calls.get(timeout=timeout)


def manager() -> V2TIMManager:
    return V2TIMManager.getInstance()


@pytest.fixture
def listener(shared_daemon: DaemonProcess, user: str) -> Iterator[Listener]:
    """The SDK initialized and logged in as ``user``, its login's sync done."""
    assert manager().initSDK(0, V2TIMSDKConfig(socketPath=str(shared_daemon.socket)))
    recorder = Listener()
    conversations = manager().getConversationManager()
    conversations.addConversationListener(recorder)
    try:
        done: queue.Queue[object] = queue.Queue()
        manager().login(user, "", V2TIMCallback(onSuccess=lambda: done.put("ok")))
        assert done.get(timeout=5) == "ok"
        assert recorder.synced.wait(5)
        yield recorder
    finally:
        conversations.removeConversationListener(recorder)
        manager().unInitSDK()


def set_draft(conversation_id: str, text: str) -> None:
    done: queue.Queue[object] = queue.Queue()
    manager().getConversationManager().setConversationDraft(
        conversation_id, text, V2TIMCallback(onSuccess=lambda: done.put("ok"))
    )
    assert done.get(timeout=5) == "ok"


def get(conversation_id: str) -> V2TIMConversation:
    outcome = Outcome()
    manager().getConversationManager().getConversation(conversation_id, outcome.callback())
    value = outcome.ok()
    assert isinstance(value, V2TIMConversation)
    return value


def test_delete_conversation_list(listener: Listener) -> None:
    set_draft("c2c_bob", "hi")
    set_draft("group_team", "hello")
    assert [listener.next()[0] for _ in range(2)] == ["new", "new"]
    outcome = Outcome()
    manager().getConversationManager().deleteConversationList(
        ["c2c_bob", "c2c_nobody", "group_team"], False, outcome.callback()
    )
    assert outcome.ok() == [
        V2TIMConversationOperationResult("c2c_bob", 0, ""),
        V2TIMConversationOperationResult(
            "c2c_nobody", ERR_INVALID_CONVERSATION, "no conversation 'nobody' of that type"
        ),
        V2TIMConversationOperationResult("group_team", 0, ""),
    ]
    assert listener.next() == ("deleted", ["c2c_bob"])
    assert listener.next() == ("deleted", ["group_team"])
    gone = Outcome()
    manager().getConversationManager().getConversation("c2c_bob", gone.callback())
    assert gone.error()[0] == ERR_INVALID_CONVERSATION


def test_delete_conversation_list_refusals(listener: Listener) -> None:
    conversations = manager().getConversationManager()
    for ids in ([], "c2c_bob", ["bob"], [f"c2c_user{n}" for n in range(101)]):
        outcome = Outcome()
        conversations.deleteConversationList(ids, True, outcome.callback())  # type: ignore[arg-type]
        assert outcome.error()[0] == ERR_INVALID_PARAMETERS, ids


def test_set_conversation_custom_data(listener: Listener) -> None:
    set_draft("c2c_bob", "hi")
    listener.next()
    before = get("c2c_bob")
    assert before.customData == ""
    outcome = Outcome()
    conversations = manager().getConversationManager()
    conversations.setConversationCustomData(
        ["c2c_bob", "c2c_zed"], "pinned-by-me", outcome.callback()
    )
    assert outcome.ok() == [
        V2TIMConversationOperationResult("c2c_bob", 0, ""),
        V2TIMConversationOperationResult(
            "c2c_zed", ERR_INVALID_CONVERSATION, "no conversation 'zed' of that type"
        ),
    ]
    kind, changed = listener.next()
    assert kind == "changed"
    assert [(c.conversationID, c.customData) for c in changed] == [("c2c_bob", "pinned-by-me")]
    after = get("c2c_bob")
    assert after.customData == "pinned-by-me"
    assert (after.orderKey, after.draftRevision) == (before.orderKey, before.draftRevision)
    # bytes (the C++ face's V2TIMBuffer) are accepted as UTF-8 text; None removes the data.
    conversations.setConversationCustomData(["c2c_bob"], "ü".encode(), outcome.callback())
    outcome.ok()
    assert get("c2c_bob").customData == "ü"
    conversations.setConversationCustomData(["c2c_bob"], None, outcome.callback())
    outcome.ok()
    assert get("c2c_bob").customData == ""


def test_set_conversation_custom_data_refusals(listener: Listener) -> None:
    conversations = manager().getConversationManager()
    for ids, data, code in (
        (["c2c_bob"], "x" * 257, ERR_INVALID_PARAMETERS),
        (["c2c_bob"], b"\xff", ERR_INVALID_PARAMETERS),
        ([], "x", ERR_INVALID_PARAMETERS),
        (["bob"], "x", ERR_INVALID_PARAMETERS),
        ([f"c2c_user{n}" for n in range(101)], "x", ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT),
    ):
        outcome = Outcome()
        conversations.setConversationCustomData(ids, data, outcome.callback())
        assert outcome.error()[0] == code, (ids, data)


def test_total_unread_message_count_is_zero_and_never_changes(listener: Listener) -> None:
    outcome = Outcome()
    manager().getConversationManager().getTotalUnreadMessageCount(outcome.callback())
    assert outcome.ok() == 0
    set_draft("c2c_bob", "hi")
    assert listener.next()[0] == "new"  # the next call is not an unread count
    assert listener.calls.empty()


def test_the_new_calls_before_init_and_before_login(shared_daemon: DaemonProcess) -> None:
    conversations = manager().getConversationManager()
    outcome = Outcome()
    conversations.getTotalUnreadMessageCount(outcome.callback())
    assert outcome.error()[0] == ERR_SDK_NOT_INITIALIZED
    assert manager().initSDK(0, V2TIMSDKConfig(socketPath=str(shared_daemon.socket)))
    try:
        conversations.getTotalUnreadMessageCount(outcome.callback())
        assert outcome.error()[0] == ERR_SDK_NOT_LOGGED_IN
        conversations.deleteConversationList(["c2c_bob"], False, outcome.callback())
        assert outcome.error()[0] == ERR_SDK_NOT_LOGGED_IN
        conversations.setConversationCustomData(["c2c_bob"], "x", outcome.callback())
        assert outcome.error()[0] == ERR_SDK_NOT_LOGGED_IN
    finally:
        manager().unInitSDK()
