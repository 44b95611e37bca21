"""Draft history and compare-and-set on both faces, and the draft info V2 exposes."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from convd_client import tim
from convd_client.drafts import DraftInfo, draft_info_draft, parse_draft_info
from convd_client.v2 import (
    V2TIMCallback,
    V2TIMConversation,
    V2TIMConversationManager,
    V2TIMDraftInfo,
    V2TIMDraftVersion,
    V2TIMManager,
    V2TIMSDKConfig,
    V2TIMValueCallback,
)
from support import CommCallback, DaemonProcess, text_draft

BOB = {"conv_id": "bob", "conv_type": 1}


class Outcome:
    """What one V2 callback reported."""

    def __init__(self) -> None:
        self.results: queue.Queue[tuple[str, Any]] = queue.Queue()

    def callback(self) -> V2TIMCallback:
        return V2TIMCallback(
            onSuccess=lambda: self.results.put(("ok", None)),
            onError=lambda code, desc: self.results.put(("error", (code, desc))),
        )

    def value_callback(self) -> V2TIMValueCallback[Any]:
        return V2TIMValueCallback(
            onSuccess=lambda value: self.results.put(("ok", value)),
            onError=lambda code, desc: self.results.put(("error", (code, desc))),
        )

    def ok(self) -> Any:
        kind, value = self.results.get(timeout=5)
        assert kind == "ok", value
        return value

    def error(self) -> tuple[int, str]:
        kind, value = self.results.get(timeout=5)
        assert kind == "error", value
        code, desc = value
        return code, desc


def manager() -> V2TIMManager:
    return V2TIMManager.getInstance()


def conversations() -> V2TIMConversationManager:
    return V2TIMManager.getConversationManager()


def set_draft(conversation: str, text: str | None, **kwargs: Any) -> None:
    outcome = Outcome()
    conversations().setConversationDraft(conversation, text, outcome.callback(), **kwargs)
    outcome.ok()


def get(conversation: str) -> V2TIMConversation:
    outcome = Outcome()
    conversations().getConversation(conversation, outcome.value_callback())
    value: V2TIMConversation = outcome.ok()
    return value


def login(user: str) -> None:
    """TIMLogin, and wait until its sync frame is through (kTIMConvEvent_Finish)."""
    finished = threading.Event()
    tim.TIMSetConvEventCallback(
        lambda event, array, ud: finished.set() if event == tim.kTIMConvEvent_Finish else None,
        None,
    )
    callback = CommCallback()
    assert tim.TIMLogin(user, "sig", callback, None) == tim.TIM_SUCC
    assert callback.wait()[0] == 0
    assert finished.wait(5)
    tim.TIMSetConvEventCallback(None, None)


@pytest.fixture
def v2(shared_daemon: DaemonProcess, user: str) -> Iterator[str]:
    assert manager().initSDK(0, V2TIMSDKConfig(socketPath=str(shared_daemon.socket)))
    try:
        outcome = Outcome()
        manager().login(user, "sig", outcome.callback())
        outcome.ok()
        yield user
    finally:
        conversations().draftCompareAndSet = True
        manager().unInitSDK()


def history(conversation: str, count: int = 20) -> list[V2TIMDraftVersion]:
    outcome = Outcome()
    conversations().getConversationDraftHistory(conversation, count, outcome.value_callback())
    value: list[V2TIMDraftVersion] = outcome.ok()
    return value


def other_writes(daemon: DaemonProcess, user: str, text: str) -> dict[str, Any]:
    """Another process's write (a raw connection), behind the face's back."""
    with daemon.client(user) as line:
        result: dict[str, Any] = line.call("conv.set_draft", {**BOB, "draft": text_draft(text)})
        return result


# -- draft info ----------------------------------------------------------------------------------


def test_draft_info_is_parsed_only_from_its_own_shape() -> None:
    info = DraftInfo(
        text="see below", messageID="msg-1", type="reply", atUserList=["carol", "dave"]
    )
    assert parse_draft_info(info.toJSON()) == info
    mention_only = '{"text": "hi @carol", "atUserList": ["carol"]}'
    assert parse_draft_info(mention_only) == DraftInfo(text="hi @carol", atUserList=["carol"])
    kept = parse_draft_info('{"messageID": "m", "type": "quote", "html": "<b>x</b>"}')
    assert kept is not None and kept.extra == {"html": "<b>x</b>"}
    assert '"html":"<b>x</b>"' in kept.toJSON()
    for not_info in (
        None,
        "",
        "plain text",
        "{not json",
        "[1, 2]",
        '{"text": "no reference, no mention"}',
        '{"messageID": "m"}',  # what does it refer to?
        '{"messageID": "m", "type": "forward"}',
        '{"type": "reply"}',
        '{"atUserList": "carol"}',
        '{"atUserList": [1]}',
        '{"messageID": 5, "type": "reply"}',
    ):
        assert parse_draft_info(not_info) is None, not_info
    draft = draft_info_draft(info)
    assert draft.draft_user_define == info.toJSON()
    assert draft.draft_msg.message_elem_array[0].text_elem_content == "see below"


def test_v2_exposes_draft_info_and_keeps_plain_text_apps_working(
    v2: str, shared_daemon: DaemonProcess
) -> None:
    set_draft("c2c_bob", "just text")
    plain = get("c2c_bob")
    assert (plain.draftText, plain.draftInfo) == ("just text", None)

    info = V2TIMDraftInfo(text="agreed", messageID="144-1", type="quote", abstract="the plan")
    set_draft("c2c_bob", info.toJSON())
    conv = get("c2c_bob")
    # draftText stays the user define (the SDK's V2 rule); draftInfo is its parsed view.
    assert conv.draftText == info.toJSON()
    assert conv.draftInfo == info
    # C-face readers see the text, not the JSON.
    with shared_daemon.client(v2) as line:
        [stored] = line.call("conv.get", {"convs": [BOB]})
    draft = stored["conv_draft"]
    assert [e["text_elem_content"] for e in draft["draft_msg"]["message_elem_array"]] == ["agreed"]
    assert draft["draft_user_define"] == info.toJSON()


# -- V2 history and restore ----------------------------------------------------------------


def test_v2_history_and_restore(v2: str) -> None:
    set_draft("c2c_bob", "the long one")
    set_draft("c2c_bob", "oops")
    versions = history("c2c_bob")
    assert [(v.revision, v.draftText, v.replacedHow) for v in versions] == [
        (1, "the long one", "set")
    ]
    assert versions[0].draftTimestamp > 0 and versions[0].replacedBy
    outcome = Outcome()
    conversations().restoreConversationDraft("c2c_bob", 1, outcome.callback())
    outcome.ok()
    restored = get("c2c_bob")
    assert (restored.draftText, restored.draftRevision) == ("the long one", 3)
    assert [v.draftText for v in history("c2c_bob")] == ["oops", "the long one"]
    assert [v.draftText for v in history("c2c_bob", 1)] == ["oops"]

    conversations().restoreConversationDraft("c2c_bob", 99, outcome.callback())
    assert outcome.error()[0] == 90006
    conversations().restoreConversationDraft("c2c_nobody", 1, outcome.callback())
    assert outcome.error()[0] == 6004
    conversations().getConversationDraftHistory("c2c_bob", 0, outcome.value_callback())
    assert outcome.error()[0] == 6017
    conversations().restoreConversationDraft("bob", 1, outcome.callback())
    assert outcome.error()[0] == 6017


def test_v2_writes_compare_and_set_by_default_and_can_opt_out(
    v2: str, shared_daemon: DaemonProcess
) -> None:
    set_draft("c2c_bob", "mine")
    assert get("c2c_bob").draftRevision == 1
    # Another process writes; whether or not the manager's listener has seen it yet, a
    # write made with what the manager saw (revision 1) is refused.
    other_writes(shared_daemon, v2, "theirs")
    conflicts: queue.Queue[tuple[int, V2TIMConversation | None]] = queue.Queue()

    class ConflictAware(V2TIMCallback):
        def onDraftConflict(self, code: int, desc: str, current: V2TIMConversation | None) -> None:
            conflicts.put((code, current))

        def onSuccess(self) -> None:
            conflicts.put((0, None))

    conversations().setConversationDraft("c2c_bob", "stale?", ConflictAware(), ifRevision=1)
    code, current = conflicts.get(timeout=5)
    assert code == 90001 and current is not None
    assert (current.draftText, current.draftRevision) == ("theirs", 2)
    # Having seen revision 2 (the conflict showed it), the default write goes through.
    set_draft("c2c_bob", "merged")
    assert get("c2c_bob").draftRevision == 3

    # Opt-outs: overwrite=True per call, draftCompareAndSet for the manager. A write with
    # a revision the manager saw long ago would be refused; these overwrite.
    conversations().setConversationDraft("c2c_bob", "x", ConflictAware(), ifRevision=1)
    assert conflicts.get(timeout=5)[0] == 90001
    set_draft("c2c_bob", "forced", overwrite=True)
    conversations().draftCompareAndSet = False
    set_draft("c2c_bob", "forced again")
    assert get("c2c_bob").draftText == "forced again"


# -- C face --------------------------------------------------------------------------------------


@pytest.fixture
def c_face(shared_daemon: DaemonProcess, user: str) -> Iterator[str]:
    config = {"convd_socket_path": str(shared_daemon.socket)}
    assert tim.TIMInit(0, json.dumps(config)) == tim.TIM_SUCC
    try:
        login(user)
        yield user
    finally:
        tim.TIMSetConvEventCallback(None, None)
        tim.TIMSetConvDraftConflictCallback(None, None)
        assert tim.TIMUninit() == tim.TIM_SUCC


def c_draft(text: str) -> str:
    return json.dumps(text_draft(text))


def test_c_history_and_restore(c_face: str) -> None:
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("first")) == tim.TIM_SUCC
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("second")) == tim.TIM_SUCC
    callback = CommCallback()
    assert tim.TIMConvGetDraftHistory("bob", tim.kTIMConv_C2C, 10, callback, "ud") == 0
    code, _, json_params, user_data = callback.wait()
    found = json.loads(json_params)
    assert (code, user_data, found["conv_draft_revision"]) == (0, "ud", 2)
    assert [v["revision"] for v in found["versions"]] == [1]
    assert tim.TIMConvRestoreDraft("bob", tim.kTIMConv_C2C, 1, callback, None) == 0
    code, _, json_params, _ = callback.wait()
    restored = json.loads(json_params)
    assert (code, restored["conv_draft_revision"]) == (0, 3)
    assert restored["conv_draft"]["draft_msg"]["message_elem_array"][0]["text_elem_content"] == (
        "first"
    )
    assert tim.TIMConvRestoreDraft("bob", tim.kTIMConv_C2C, 77, callback, None) == 0
    assert callback.wait()[0] == 90006
    assert tim.TIMConvGetDraftHistory("bob", tim.kTIMConv_C2C, 0, callback, None) == (
        tim.TIM_ERR_PARAM
    )
    assert tim.TIMConvRestoreDraft("", tim.kTIMConv_C2C, 1, callback, None) == tim.TIM_ERR_PARAM


def test_a_stale_c_face_write_is_refused_and_the_conflict_callback_gets_the_current_draft(
    c_face: str, shared_daemon: DaemonProcess
) -> None:
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("mine")) == tim.TIM_SUCC
    # The app's event callback is busy (its view is behind) while another process writes.
    busy, release = threading.Event(), threading.Event()

    def slow(conv_event: int, json_conv_array: str, user_data: Any) -> None:
        if not busy.is_set():
            busy.set()
            release.wait(10)

    tim.TIMSetConvEventCallback(slow, None)
    conflicts: queue.Queue[str] = queue.Queue()
    tim.TIMSetConvDraftConflictCallback(lambda current, ud: conflicts.put(current), None)
    with shared_daemon.client(c_face) as line:
        line.call("conv.create", {"conv_id": "carol", "conv_type": 1})
        assert busy.wait(5)
        line.call("conv.set_draft", {**BOB, "draft": text_draft("theirs")})
    try:
        assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("stale")) == (
            tim.TIM_ERR_CONFLICT
        )
    finally:
        release.set()
    current = json.loads(conflicts.get(timeout=5))
    assert current["conv_draft_revision"] == 2
    assert current["conv_draft"]["draft_user_define"] == ""
    # Having seen it, the next write goes through.
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("merged")) == tim.TIM_SUCC


def test_the_c_face_can_opt_out_of_compare_and_set(shared_daemon: DaemonProcess, user: str) -> None:
    config = {"convd_socket_path": str(shared_daemon.socket), "convd_draft_compare_and_set": False}
    assert tim.TIMInit(0, json.dumps(config)) == tim.TIM_SUCC
    try:
        login(user)
        assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("mine")) == tim.TIM_SUCC
        busy, release = threading.Event(), threading.Event()

        def slow(conv_event: int, json_conv_array: str, user_data: Any) -> None:
            if not busy.is_set():
                busy.set()
                release.wait(10)

        tim.TIMSetConvEventCallback(slow, None)
        with shared_daemon.client(user) as line:
            line.call("conv.create", {"conv_id": "carol", "conv_type": 1})
            assert busy.wait(5)
            line.call("conv.set_draft", {**BOB, "draft": text_draft("theirs")})
        try:
            assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("over")) == tim.TIM_SUCC
        finally:
            release.set()
    finally:
        tim.TIMSetConvEventCallback(None, None)
        assert tim.TIMUninit() == tim.TIM_SUCC
    assert tim.TIMInit(1, '{"convd_draft_compare_and_set": "no"}') == tim.TIM_ERR_JSON
