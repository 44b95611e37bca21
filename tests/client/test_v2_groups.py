"""The V2 face's markConversation, getConversationListByFilter, conversation groups and
their listener methods, over the real daemon."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest

from convd_client.v2 import (
    V2TIMCallback,
    V2TIMConversation,
    V2TIMConversationListener,
    V2TIMConversationListFilter,
    V2TIMConversationMarkType,
    V2TIMConversationOperationResult,
    V2TIMConversationType,
    V2TIMManager,
    V2TIMSDKConfig,
    V2TIMValueCallback,
)
from support import DaemonProcess

STAR = V2TIMConversationMarkType.V2TIM_CONVERSATION_MARK_TYPE_STAR
FOLD = V2TIMConversationMarkType.V2TIM_CONVERSATION_MARK_TYPE_FOLD


class Outcome:
    def __init__(self) -> None:
        self.results: queue.Queue[tuple[str, Any]] = queue.Queue()

    def callback(self) -> V2TIMCallback:
        return V2TIMCallback(
            onSuccess=lambda: self.results.put(("ok", None)),
            onError=lambda code, desc: self.results.put(("error", code)),
        )

    def value_callback(self) -> V2TIMValueCallback[Any]:
        return V2TIMValueCallback(
            onSuccess=lambda value: self.results.put(("ok", value)),
            onError=lambda code, desc: self.results.put(("error", code)),
        )

    def ok(self) -> Any:
        kind, value = self.results.get(timeout=5)
        assert kind == "ok", value
        return value

    def error(self) -> int:
        kind, value = self.results.get(timeout=5)
        assert kind == "error", value
        code: int = value
        return code


class GroupListener(V2TIMConversationListener):
    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Any, ...]] = queue.Queue()

    def onConversationChanged(self, conversationList: list[V2TIMConversation]) -> None:
        self.calls.put(("changed", [c.conversationID for c in conversationList]))

    def onConversationGroupCreated(
        self, groupName: str, conversationList: list[V2TIMConversation]
    ) -> None:
        self.calls.put(("created", groupName, [c.conversationID for c in conversationList]))

    def onConversationGroupDeleted(self, groupName: str) -> None:
        self.calls.put(("deleted", groupName))

    def onConversationGroupNameChanged(self, oldName: str, newName: str) -> None:
        self.calls.put(("renamed", oldName, newName))

    def onConversationsAddedToGroup(
        self, groupName: str, conversationList: list[V2TIMConversation]
    ) -> None:
        self.calls.put(("added", groupName, [c.conversationGroupList for c in conversationList]))

    def onConversationsDeletedFromGroup(
        self, groupName: str, conversationList: list[V2TIMConversation], reason: int
    ) -> None:
        self.calls.put(("removed", groupName, [c.conversationID for c in conversationList], reason))

    def next_group_call(self) -> tuple[Any, ...]:
        while True:
            item = self.calls.get(timeout=5)
            if item[0] != "changed":
                return item


def manager() -> V2TIMManager:
    return V2TIMManager.getInstance()


conversations = V2TIMManager.getConversationManager


@pytest.fixture
def logged_in(shared_daemon: DaemonProcess, user: str) -> Iterator[str]:
    assert manager().initSDK(0, V2TIMSDKConfig(socketPath=str(shared_daemon.socket)))
    try:
        outcome = Outcome()
        manager().login(user, "sig", outcome.callback())
        outcome.ok()
        yield user
    finally:
        manager().unInitSDK()


def create(shared_daemon: DaemonProcess, user: str, *ids: str) -> None:
    with shared_daemon.client(user) as line:
        for conv_id in ids:
            conv_type = 2 if conv_id.startswith("g") else 1
            line.call("conv.create", {"conv_id": conv_id, "conv_type": conv_type})


def test_mark_conversation_and_mark_list(logged_in: str, shared_daemon: DaemonProcess) -> None:
    create(shared_daemon, logged_in, "bob")
    outcome = Outcome()
    conversations().markConversation(
        ["c2c_bob", "c2c_nobody"], STAR, True, outcome.value_callback()
    )
    results: list[V2TIMConversationOperationResult] = outcome.ok()
    assert [(r.conversationID, r.resultCode) for r in results] == [
        ("c2c_bob", 0),
        ("c2c_nobody", 6004),
    ]
    conversations().getConversation("c2c_bob", outcome.value_callback())
    assert outcome.ok().markList == [STAR]
    conversations().markConversation(["c2c_bob"], 0, True, outcome.value_callback())
    assert outcome.error() == 6017
    conversations().markConversation(["bob"], STAR, True, outcome.value_callback())
    assert outcome.error() == 6017


def test_list_by_filter(logged_in: str, shared_daemon: DaemonProcess) -> None:
    create(shared_daemon, logged_in, "u1", "g1", "u2")
    outcome = Outcome()
    conversations().markConversation(["c2c_u1"], FOLD, True, outcome.value_callback())
    outcome.ok()
    conversations().createConversationGroup("work", ["group_g1"], outcome.value_callback())
    outcome.ok()

    def ids(flt: V2TIMConversationListFilter, count: int = 100) -> list[str]:
        conversations().getConversationListByFilter(flt, 0, count, outcome.value_callback())
        return [c.conversationID for c in outcome.ok().conversationList]

    assert ids(V2TIMConversationListFilter(type=V2TIMConversationType.V2TIM_C2C)) == [
        "c2c_u2",
        "c2c_u1",
    ]
    assert ids(V2TIMConversationListFilter(markType=FOLD)) == ["c2c_u1"]
    assert ids(V2TIMConversationListFilter(markType=0)) == ["c2c_u2", "group_g1"]
    assert ids(V2TIMConversationListFilter(conversationGroup="work")) == ["group_g1"]
    assert ids(V2TIMConversationListFilter(conversationGroup="")) == ["c2c_u2", "c2c_u1"]
    assert ids(V2TIMConversationListFilter(hasDraft=True)) == []
    assert ids(V2TIMConversationListFilter(hasUnreadCount=True)) == []
    assert ids(V2TIMConversationListFilter(), count=2) == ["c2c_u2", "group_g1"]
    conversations().getConversationListByFilter(
        V2TIMConversationListFilter(), 0, 0, outcome.value_callback()
    )
    assert outcome.error() == 6017


def test_groups_and_listener(logged_in: str, shared_daemon: DaemonProcess) -> None:
    listener = GroupListener()
    conversations().addConversationListener(listener)
    try:
        create(shared_daemon, logged_in, "bob", "carol")
        outcome = Outcome()
        conversations().createConversationGroup("friends", ["c2c_bob"], outcome.value_callback())
        assert [r.resultCode for r in outcome.ok()] == [0]
        assert listener.next_group_call() == ("created", "friends", ["c2c_bob"])
        conversations().addConversationsToGroup("friends", ["c2c_carol"], outcome.value_callback())
        outcome.ok()
        assert listener.next_group_call() == ("added", "friends", [["friends"]])
        conversations().getConversationGroupList(outcome.value_callback())
        assert outcome.ok() == ["friends"]
        conversations().renameConversationGroup("friends", "pals", outcome.callback())
        outcome.ok()
        assert listener.next_group_call() == ("renamed", "friends", "pals")
        conversations().getConversation("c2c_carol", outcome.value_callback())
        assert outcome.ok().conversationGroupList == ["pals"]
        conversations().deleteConversationsFromGroup("pals", ["c2c_bob"], outcome.value_callback())
        outcome.ok()
        assert listener.next_group_call() == ("removed", "pals", ["c2c_bob"], 0)
        conversations().deleteConversationGroup("pals", outcome.callback())
        outcome.ok()
        assert listener.next_group_call() == ("deleted", "pals")
        conversations().deleteConversationGroup("pals", outcome.callback())
        assert outcome.error() == 51009
        conversations().createConversationGroup("", [], outcome.value_callback())
        assert outcome.error() == 6017
        conversations().createConversationGroup("é" * 17, [], outcome.value_callback())
        assert outcome.error() == 51011
    finally:
        conversations().removeConversationListener(listener)


def test_an_old_two_argument_listener_still_hears_conversations_deleted_from_a_group() -> None:
    """Older SDKs called onConversationsDeletedFromGroup(groupName, conversationList): a
    listener written against them is called that way instead of failing with a TypeError."""
    from convd_client.v2 import _takes_reason

    class Old(V2TIMConversationListener):
        def onConversationsDeletedFromGroup(  # type: ignore[override]
            self, groupName: str, conversationList: list[V2TIMConversation]
        ) -> None:
            pass

    class New(V2TIMConversationListener):
        def onConversationsDeletedFromGroup(
            self, groupName: str, conversationList: list[V2TIMConversation], reason: int
        ) -> None:
            pass

    assert not _takes_reason(Old())
    assert _takes_reason(New())
    assert _takes_reason(V2TIMConversationListener())
    assert _takes_reason(object())  # no such method: nothing is called anyway
