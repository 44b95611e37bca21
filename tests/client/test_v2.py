"""The V2 face, convd_client.v2: every call, listeners, drafts across faces, conflicts."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from convd_client import tim
from convd_client.v2 import (
    V2TIMCallback,
    V2TIMConversation,
    V2TIMConversationListener,
    V2TIMConversationManager,
    V2TIMConversationResult,
    V2TIMConversationType,
    V2TIMLoginStatus,
    V2TIMManager,
    V2TIMSDKConfig,
    V2TIMSDKListener,
    V2TIMValueCallback,
    conversation_id,
    parse_conversation_id,
)
from support import DaemonProcess, LineClient


class Outcome:
    """Collects what one callback reports, and on which thread."""

    def __init__(self) -> None:
        self.results: queue.Queue[tuple[str, Any, int]] = queue.Queue()

    def callback(self) -> V2TIMCallback:
        return V2TIMCallback(
            onSuccess=lambda: self.results.put(("ok", None, threading.get_ident())),
            onError=lambda code, desc: self.results.put(
                ("error", (code, desc), threading.get_ident())
            ),
        )

    def value_callback(self) -> V2TIMValueCallback[Any]:
        return V2TIMValueCallback(
            onSuccess=lambda value: self.results.put(("ok", value, threading.get_ident())),
            onError=lambda code, desc: self.results.put(
                ("error", (code, desc), threading.get_ident())
            ),
        )

    def ok(self, timeout: float = 5) -> Any:
        kind, value, _ = self.results.get(timeout=timeout)
        assert kind == "ok", value
        return value

    def error(self, timeout: float = 5) -> tuple[int, str]:
        kind, value, _ = self.results.get(timeout=timeout)
        assert kind == "error", value
        code, desc = value
        return code, desc

    def assert_no_more(self, within: float = 0.1) -> None:
        time.sleep(within)
        assert self.results.empty(), self.results.get()


class Listener(V2TIMConversationListener):
    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[str, Any]] = queue.Queue()

    def onNewConversation(self, conversationList: list[V2TIMConversation]) -> None:
        self.calls.put(("new", conversationList))

    def onConversationChanged(self, conversationList: list[V2TIMConversation]) -> None:
        self.calls.put(("changed", conversationList))

    def onConversationDeleted(self, conversationIDList: list[str]) -> None:
        self.calls.put(("deleted", conversationIDList))

    def next(self, timeout: float = 5) -> tuple[str, Any]:
        return self.calls.get(timeout=timeout)


def manager() -> V2TIMManager:
    return V2TIMManager.getInstance()


def conversations() -> V2TIMConversationManager:
    return V2TIMManager.getConversationManager()


@pytest.fixture
def sdk(shared_daemon: DaemonProcess) -> Iterator[None]:
    assert manager().initSDK(0, V2TIMSDKConfig(socketPath=str(shared_daemon.socket)))
    try:
        yield
    finally:
        manager().unInitSDK()


@pytest.fixture
def logged_in(sdk: None, user: str) -> str:
    outcome = Outcome()
    manager().login(user, "sig", outcome.callback())
    outcome.ok()
    return user


def set_draft(conversation: str, text: str | None, **kwargs: Any) -> None:
    outcome = Outcome()
    conversations().setConversationDraft(conversation, text, outcome.callback(), **kwargs)
    outcome.ok()


def get(conversation: str) -> V2TIMConversation:
    outcome = Outcome()
    conversations().getConversation(conversation, outcome.value_callback())
    value: V2TIMConversation = outcome.ok()
    return value


def raw_client(daemon: DaemonProcess, user: str) -> LineClient:
    return daemon.client(user)


# -- ids ---------------------------------------------------------------------------------------


def test_conversation_ids() -> None:
    assert conversation_id("bob", 1) == "c2c_bob"
    assert conversation_id("team", 2) == "group_team"
    key = parse_conversation_id("group_team")
    assert key is not None
    assert (key.conv_id, int(key.conv_type)) == ("team", 2)
    assert parse_conversation_id("c2c_") is None
    assert parse_conversation_id("bob") is None


# -- lifecycle and login -----------------------------------------------------------------------


def test_calls_before_init_fail_with_6013_on_another_thread() -> None:
    outcome = Outcome()
    manager().login("alice", "", outcome.callback())
    kind, (code, _), thread = outcome.results.get(timeout=5)
    assert (kind, code) == ("error", 6013)
    assert thread != threading.get_ident()
    conversations().setConversationDraft("c2c_bob", "x", outcome.callback())
    assert outcome.error()[0] == 6013
    assert manager().getLoginStatus() is V2TIMLoginStatus.V2TIM_STATUS_LOGOUT
    assert manager().getLoginUser() is None


def test_login_logout_and_status(sdk: None, user: str) -> None:
    assert V2TIMManager.getInstance() is manager()
    assert manager().initSDK(0)  # again: no change
    assert not manager().initSDK(-5)
    assert manager().getVersion().startswith("convd-client ")
    outcome = Outcome()
    conversations().getConversation("c2c_bob", outcome.value_callback())
    assert outcome.error()[0] == 6014
    manager().login(user, "", outcome.callback())
    kind, _, thread = outcome.results.get(timeout=5)
    assert kind == "ok"
    assert thread != threading.get_ident()
    assert manager().getLoginUser() == user
    assert manager().getLoginStatus() is V2TIMLoginStatus.V2TIM_STATUS_LOGINED
    manager().logout(outcome.callback())
    outcome.ok()
    assert manager().getLoginUser() is None
    conversations().getConversation("c2c_bob", outcome.value_callback())
    assert outcome.error()[0] == 6014
    manager().login("", "", outcome.callback())
    assert outcome.error()[0] == 6017
    outcome.assert_no_more()


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0, -1.5, True, "5", None])
def test_init_sdk_refuses_a_timeout_that_is_not_a_finite_number_above_0(timeout: Any) -> None:
    try:
        assert not manager().initSDK(0, V2TIMSDKConfig(timeout=timeout))
        outcome = Outcome()
        manager().login("alice", "", outcome.callback())
        assert outcome.error()[0] == 6013  # not initialized
        assert manager().initSDK(0, V2TIMSDKConfig(timeout=2))  # an int is fine
    finally:
        manager().unInitSDK()


def test_sdk_listener_hears_the_connection(shared_daemon: DaemonProcess) -> None:
    connected = threading.Event()

    class SdkListener(V2TIMSDKListener):
        def onConnectSuccess(self) -> None:
            connected.set()

    listener = SdkListener()
    try:
        manager().initSDK(0, V2TIMSDKConfig(socketPath=str(shared_daemon.socket)), listener)
        assert connected.wait(5)
    finally:
        manager().removeSDKListener(listener)
        manager().unInitSDK()


def test_unreachable_daemon_reports_6022(short_dir: Path) -> None:
    failed: queue.Queue[tuple[int, str]] = queue.Queue()

    class SdkListener(V2TIMSDKListener):
        def onConnectFailed(self, code: int, error: str) -> None:
            failed.put((code, error))

    listener = SdkListener()
    manager().addSDKListener(listener)
    try:
        manager().initSDK(0, V2TIMSDKConfig(socketPath=str(short_dir / "none.sock")))
        code, error = failed.get(timeout=5)
        assert code == 6022
        assert "none.sock" in error
        outcome = Outcome()
        manager().login("alice", "", outcome.callback())
        code, desc = outcome.error()
        assert code == 6022
        assert "none.sock" in desc
    finally:
        manager().removeSDKListener(listener)
        manager().unInitSDK()


# -- conversations -----------------------------------------------------------------------------


def test_draft_set_get_and_clear(logged_in: str) -> None:
    before = time.time()
    set_draft("c2c_bob", "hello")
    conversation = get("c2c_bob")
    assert conversation.conversationID == "c2c_bob"
    assert conversation.type is V2TIMConversationType.V2TIM_C2C
    assert (conversation.userID, conversation.groupID) == ("bob", None)
    assert conversation.showName == "bob"
    assert conversation.draftText == "hello"
    assert conversation.draftTimestamp >= int(before)
    assert conversation.draftRevision == 1
    assert not conversation.isPinned
    assert conversation.orderKey > 0
    assert conversation.unreadCount == 0
    assert conversation.lastMessage is None

    set_draft("c2c_bob", "")
    cleared = get("c2c_bob")
    assert cleared.draftText is None
    assert cleared.draftTimestamp == 0
    set_draft("c2c_bob", "again")
    set_draft("c2c_bob", None)
    assert get("c2c_bob").draftText is None
    set_draft("c2c_nobody", None)  # nothing to clear is fine


def test_group_conversation(logged_in: str) -> None:
    set_draft("group_team", "hi all")
    conversation = get("group_team")
    assert conversation.type is V2TIMConversationType.V2TIM_GROUP
    assert (conversation.userID, conversation.groupID) == (None, "team")


def test_errors_of_conversation_calls(logged_in: str) -> None:
    outcome = Outcome()
    conversations().getConversation("c2c_ghost", outcome.value_callback())
    assert outcome.error()[0] == 6004
    conversations().getConversation("bob", outcome.value_callback())
    assert outcome.error()[0] == 6017
    conversations().setConversationDraft("nope", "x", outcome.callback())
    assert outcome.error()[0] == 6017
    conversations().deleteConversation("c2c_ghost", outcome.callback())
    assert outcome.error()[0] == 6004
    conversations().pinConversation("c2c_ghost", True, outcome.callback())
    assert outcome.error()[0] == 6004
    conversations().setConversationDraft("c2c_" + "x" * 40, "x", outcome.callback())
    assert outcome.error()[0] == 7003
    conversations().getConversationList(0, 0, outcome.value_callback())
    assert outcome.error()[0] == 6017
    conversations().getConversationListByIDs([], outcome.value_callback())
    assert outcome.error()[0] == 6017
    conversations().getConversationListByIDs(["c2c_a", "bad"], outcome.value_callback())
    assert outcome.error()[0] == 6017
    outcome.assert_no_more()


def test_conversation_list_pages(logged_in: str) -> None:
    for index in range(5):
        set_draft(f"c2c_p{index}", f"draft {index}")
    outcome = Outcome()
    conversations().pinConversation("c2c_p1", True, outcome.callback())
    outcome.ok()
    seen: list[str] = []
    next_seq = 0
    pages = 0
    while True:
        conversations().getConversationList(next_seq, 2, outcome.value_callback())
        page: V2TIMConversationResult = outcome.ok()
        pages += 1
        seen.extend(c.conversationID for c in page.conversationList)
        if page.isFinished:
            break
        next_seq = page.nextSeq
    assert seen == ["c2c_p1", "c2c_p4", "c2c_p3", "c2c_p2", "c2c_p0"]
    assert pages == 3
    conversations().getConversationList(0, 5000, outcome.value_callback())  # capped at 1000
    assert len(outcome.ok().conversationList) == 5


def test_conversation_list_by_ids(logged_in: str) -> None:
    set_draft("c2c_a", "x")
    set_draft("group_g", "y")
    outcome = Outcome()
    conversations().getConversationList(
        ["group_g", "c2c_missing", "c2c_a"], outcome.value_callback()
    )
    assert [c.conversationID for c in outcome.ok()] == ["group_g", "c2c_a"]
    conversations().getConversationListByIDs(["c2c_a"], outcome.value_callback())
    assert [c.draftText for c in outcome.ok()] == ["x"]


def test_pin_and_delete(logged_in: str) -> None:
    set_draft("c2c_bob", "x")
    outcome = Outcome()
    conversations().pinConversation("c2c_bob", True, outcome.callback())
    outcome.ok()
    pinned = get("c2c_bob")
    assert pinned.isPinned
    assert pinned.orderKey < 1 << 62  # the pin bit is not part of the order key
    conversations().pinConversation("c2c_bob", False, outcome.callback())
    outcome.ok()
    assert not get("c2c_bob").isPinned
    conversations().deleteConversation("c2c_bob", outcome.callback())
    outcome.ok()
    conversations().getConversation("c2c_bob", outcome.value_callback())
    assert outcome.error()[0] == 6004


# -- listeners ---------------------------------------------------------------------------------


def test_listeners(logged_in: str, shared_daemon: DaemonProcess) -> None:
    listener = Listener()
    conversations().addConversationListener(listener)
    conversations().addConversationListener(listener)  # once only
    try:
        set_draft("c2c_bob", "one")
        kind, convs = listener.next()
        assert kind == "new"
        assert [(c.conversationID, c.draftText) for c in convs] == [("c2c_bob", "one")]
        with raw_client(shared_daemon, logged_in) as line:
            line.call("conv.pin", {"conv_id": "bob", "conv_type": 1, "is_pinned": True})
        kind, convs = listener.next()
        assert kind == "changed"
        assert convs[0].isPinned
        outcome = Outcome()
        conversations().deleteConversation("c2c_bob", outcome.callback())
        outcome.ok()
        assert listener.next() == ("deleted", ["c2c_bob"])
        time.sleep(0.1)
        assert listener.calls.empty()  # each event reached the listener once
    finally:
        conversations().removeConversationListener(listener)
    set_draft("c2c_after", "x")
    time.sleep(0.1)
    assert listener.calls.empty()


class SyncListener(Listener):
    def onSyncServerStart(self) -> None:
        self.calls.put(("start", None))

    def onSyncServerFinish(self) -> None:
        self.calls.put(("finish", None))

    def sync(self) -> list[tuple[str, Any]]:
        """The next calls up to onSyncServerFinish (ids for lists of conversations)."""
        calls: list[tuple[str, Any]] = []
        while not calls or calls[-1][0] != "finish":
            kind, value = self.next()
            if kind in ("new", "changed"):
                value = [c.conversationID for c in value]
            calls.append((kind, value))
        return calls


def test_every_login_starts_with_a_sync_and_reports_what_was_deleted_meanwhile(
    sdk: None, user: str, shared_daemon: DaemonProcess
) -> None:
    with raw_client(shared_daemon, user) as line:
        for n in range(105):
            line.call("conv.create", {"conv_id": f"p{n:03}", "conv_type": 1})
    listener = SyncListener()
    conversations().addConversationListener(listener)
    try:
        outcome = Outcome()
        manager().login(user, "", outcome.callback())
        outcome.ok()
        calls = listener.sync()
        expected = [f"c2c_p{n:03}" for n in range(104, -1, -1)]
        assert calls == [
            ("start", None),
            ("changed", expected[:100]),
            ("changed", expected[100:]),
            ("finish", None),
        ]
        manager().logout(outcome.callback())
        outcome.ok()
        with raw_client(shared_daemon, user) as line:
            line.call("conv.delete", {"conv_id": "p050", "conv_type": 1})
            line.call("conv.delete", {"conv_id": "p003", "conv_type": 1})
            line.call("conv.create", {"conv_id": "team", "conv_type": 2})
        manager().login(user, "", outcome.callback())
        outcome.ok()
        calls = listener.sync()
        now = ["group_team"] + [c for c in expected if c not in ("c2c_p050", "c2c_p003")]
        assert calls == [
            ("start", None),
            ("changed", now[:100]),
            ("changed", now[100:]),
            ("deleted", ["c2c_p003", "c2c_p050"]),
            ("finish", None),
        ]
        set_draft("c2c_p001", "live")
        kind, convs = listener.next()
        assert (kind, [c.draftText for c in convs]) == ("changed", ["live"])
    finally:
        conversations().removeConversationListener(listener)


def test_a_listener_with_only_some_methods(logged_in: str) -> None:
    got: queue.Queue[list[V2TIMConversation]] = queue.Queue()

    class Partial:
        def onNewConversation(self, conversationList: list[V2TIMConversation]) -> None:
            got.put(conversationList)

    listener = Partial()
    conversations().addConversationListener(listener)  # type: ignore[arg-type]
    try:
        set_draft("c2c_x", "y")
        set_draft("c2c_x", "z")  # an Update: no method for it, nothing breaks
        assert got.get(timeout=5)[0].conversationID == "c2c_x"
    finally:
        conversations().removeConversationListener(listener)  # type: ignore[arg-type]


# -- drafts across faces -----------------------------------------------------------------------


def test_a_v2_draft_reads_back_through_the_c_face(
    logged_in: str, shared_daemon: DaemonProcess
) -> None:
    set_draft("c2c_bob", "written by V2")
    with raw_client(shared_daemon, logged_in) as line:
        info = line.call("conv.get", {"convs": [{"conv_id": "bob", "conv_type": 1}]})[0]
    draft = info["conv_draft"]
    assert draft["draft_msg"]["message_elem_array"] == [
        {"elem_type": 0, "text_elem_content": "written by V2"}
    ]
    assert draft["draft_user_define"] == "written by V2"


def test_a_c_draft_reads_back_through_v2(logged_in: str, shared_daemon: DaemonProcess) -> None:
    assert tim.TIMInit(0, json.dumps({"convd_socket_path": str(shared_daemon.socket)})) == 0
    try:
        done: queue.Queue[int] = queue.Queue()
        assert tim.TIMLogin(logged_in, "", lambda code, *_: done.put(code), None) == 0
        assert done.get(timeout=5) == 0
        two_elements = {
            "draft_msg": {
                "message_elem_array": [
                    {"elem_type": 0, "text_elem_content": "first "},
                    {"elem_type": 0, "text_elem_content": "second"},
                ]
            },
            "draft_user_define": '{"app": "meta"}',
        }
        # As the SDK's V2 layer: draftText is the user define when there is one ...
        assert tim.TIMConvSetDraft("bob", 1, json.dumps(two_elements)) == 0
        assert get("c2c_bob").draftText == '{"app": "meta"}'
        # ... else the text elements, joined.
        text_only = {**two_elements, "draft_user_define": ""}
        assert tim.TIMConvSetDraft("dave", 1, json.dumps(text_only)) == 0
        assert get("c2c_dave").draftText == "first second"
        user_define_only = {"draft_user_define": "only user data"}
        assert tim.TIMConvSetDraft("carol", 1, json.dumps(user_define_only)) == 0
        assert get("c2c_carol").draftText == "only user data"
    finally:
        tim.TIMUninit()


def test_the_sdk_header_example_reads_back_through_v2_as_its_user_define(
    logged_in: str, shared_daemon: DaemonProcess
) -> None:
    """TIMConvSetDraft's own example (text element "this draft", user define "this is
    userdefine"): V2's draftText is "this is userdefine", the C face keeps both."""
    example = {
        "draft_edit_time": 1551271429,
        "draft_msg": {"message_elem_array": [{"elem_type": 0, "text_elem_content": "this draft"}]},
        "draft_user_define": "this is userdefine",
    }
    assert tim.TIMInit(0, json.dumps({"convd_socket_path": str(shared_daemon.socket)})) == 0
    try:
        done: queue.Queue[int] = queue.Queue()
        assert tim.TIMLogin(logged_in, "", lambda code, *_: done.put(code), None) == 0
        assert done.get(timeout=5) == 0
        assert tim.TIMConvSetDraft("Windows-02", 1, json.dumps(example)) == 0
    finally:
        tim.TIMUninit()
    conversation = get("c2c_Windows-02")
    assert conversation.draftText == "this is userdefine"
    assert conversation.draftTimestamp == 1551271429
    with raw_client(shared_daemon, logged_in) as line:
        info = line.call("conv.get", {"convs": [{"conv_id": "Windows-02", "conv_type": 1}]})[0]
    assert info["conv_draft"] == example


def test_a_v2_draft_over_the_message_body_limit_is_8001(logged_in: str) -> None:
    set_draft("c2c_bob", "y" * 12 * 1024)  # at the limit (12 KiB of UTF-8)
    outcome = Outcome()
    conversations().setConversationDraft("c2c_bob", "y" * (12 * 1024 + 1), outcome.callback())
    code, desc = outcome.error()
    assert code == 8001
    assert "12288" in desc
    conversations().setConversationDraft("c2c_new", "\u00e9" * 6145, outcome.callback())
    assert outcome.error()[0] == 8001  # 12290 bytes: it is bytes that count, not characters
    assert get("c2c_bob").draftText == "y" * 12 * 1024
    conversations().getConversation("c2c_new", outcome.value_callback())
    assert outcome.error()[0] == 6004


def test_a_conversation_carries_the_sdks_local_fields(logged_in: str) -> None:
    set_draft("c2c_bob", "x")
    set_draft("group_team", "y")
    for v2_id, show_name in (("c2c_bob", "bob"), ("group_team", "team")):
        conversation = get(v2_id)
        assert conversation.showName == show_name
        assert conversation.recvOpt == 0
        assert conversation.markList == []
        assert conversation.customData == ""
        assert conversation.conversationGroupList == []


# -- conflicts ---------------------------------------------------------------------------------


def test_conflict_reaches_on_error_with_the_current_draft(
    logged_in: str, shared_daemon: DaemonProcess
) -> None:
    set_draft("c2c_bob", "mine")
    seen = get("c2c_bob")
    with raw_client(shared_daemon, logged_in) as line:
        line.call(
            "conv.set_draft",
            {
                "conv_id": "bob",
                "conv_type": 1,
                "draft": {
                    "draft_msg": {
                        "message_elem_array": [{"elem_type": 0, "text_elem_content": "theirs"}]
                    }
                },
            },
        )
    outcome = Outcome()
    conversations().setConversationDraft(
        "c2c_bob", "overwrite?", outcome.callback(), ifRevision=seen.draftRevision
    )
    code, desc = outcome.error()
    assert code == 90001
    assert "theirs" in desc
    assert "revision 2" in desc
    assert get("c2c_bob").draftText == "theirs"  # nothing was written

    # A callback that wants the current conversation gets it.
    conflicts: queue.Queue[tuple[int, V2TIMConversation | None]] = queue.Queue()

    class ConflictAware(V2TIMCallback):
        def onDraftConflict(self, code: int, desc: str, current: V2TIMConversation | None) -> None:
            conflicts.put((code, current))

    conversations().setConversationDraft("c2c_bob", "again?", ConflictAware(), ifRevision=1)
    code, current = conflicts.get(timeout=5)
    assert code == 90001
    assert current is not None
    assert (current.draftText, current.draftRevision) == ("theirs", 2)

    # At the current revision the write goes through; clearing checks too.
    set_draft("c2c_bob", "merged", ifRevision=2)
    conversations().setConversationDraft("c2c_bob", "", outcome.callback(), ifRevision=2)
    assert outcome.error()[0] == 90001
    set_draft("c2c_bob", "", ifRevision=3)
    assert get("c2c_bob").draftText is None

    conversations().setConversationDraft("c2c_bob", "x", outcome.callback(), ifRevision=-1)
    assert outcome.error()[0] == 6017
