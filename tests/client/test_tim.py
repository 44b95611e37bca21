"""The C-style face, convd_client.tim: return codes, callbacks, JSON, events, conflicts."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from convd_client import tim
from convd_client.tim import (
    TIM_ERR_CONV,
    TIM_ERR_JSON,
    TIM_ERR_NOTLOGIN,
    TIM_ERR_PARAM,
    TIM_ERR_SDKUNINIT,
    TIM_SUCC,
    kTIMConv_C2C,
    kTIMConv_Group,
    kTIMConvEvent_Add,
    kTIMConvEvent_Del,
    kTIMConvEvent_Finish,
    kTIMConvEvent_Start,
    kTIMConvEvent_Update,
)
from support import DaemonProcess, LineClient


class Callback:
    """A TIMCommCallback that records every invocation and the thread it ran on."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[int, str, str, Any, int]] = queue.Queue()

    def __call__(self, code: int, desc: str, json_params: str, user_data: Any) -> None:
        self.calls.put((code, desc, json_params, user_data, threading.get_ident()))

    def wait(self, timeout: float = 5) -> tuple[int, str, str, Any, int]:
        return self.calls.get(timeout=timeout)

    def assert_no_more(self, within: float = 0.1) -> None:
        time.sleep(within)
        assert self.calls.empty(), self.calls.get()


class EventCallback:
    """A TIMConvEventCallback that records events (the ``""`` of Start / Finish as None)."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[int, Any, Any]] = queue.Queue()

    def __call__(self, conv_event: int, json_conv_array: str, user_data: Any) -> None:
        conv_array = json.loads(json_conv_array) if json_conv_array else None
        self.events.put((conv_event, conv_array, user_data))

    def wait(self, timeout: float = 5) -> tuple[int, Any, Any]:
        return self.events.get(timeout=timeout)

    def frame(self, timeout: float = 5) -> list[tuple[int, Any]]:
        """The next events up to a Finish: a sync frame, Start first."""
        events = [self.wait(timeout)[:2]]
        assert events[0] == (kTIMConvEvent_Start, None), events
        while events[-1][0] != kTIMConvEvent_Finish:
            events.append(self.wait(timeout)[:2])
        assert events[-1] == (kTIMConvEvent_Finish, None)
        return events


APP_ID = 1400000001


def init(socket: Path) -> None:
    assert tim.TIMInit(APP_ID, json.dumps({"convd_socket_path": str(socket)})) == TIM_SUCC


def login(user: str) -> list[tuple[int, Any]]:
    """TIMLogin; wait for the sync frame that follows every login (Start, the list,
    Finish) and return it. The event callback is left unset."""
    events = EventCallback()
    tim.TIMSetConvEventCallback(events, None)
    try:
        callback = Callback()
        assert tim.TIMLogin(user, "sig", callback, None) == TIM_SUCC
        code, desc, json_params, _, _ = callback.wait()
        assert (code, json_params) == (0, ""), desc
        return events.frame()
    finally:
        tim.TIMSetConvEventCallback(None, None)


@pytest.fixture
def sdk(shared_daemon: DaemonProcess) -> Iterator[None]:
    init(shared_daemon.socket)
    try:
        yield
    finally:
        tim.TIMSetConvEventCallback(None, None)
        assert tim.TIMUninit() == TIM_SUCC


@pytest.fixture
def logged_in(sdk: None, user: str) -> str:
    login(user)
    return user


def line_client(daemon: DaemonProcess, user: str) -> LineClient:
    """A raw connection logged in to the same account as the SDK (same app id)."""
    line = daemon.client(None)
    line.call("session.login", {"user_id": user, "sdk_app_id": APP_ID})
    return line


def get_param(conv_id: str, conv_type: int) -> dict[str, Any]:
    return {
        "get_conversation_list_param_conv_id": conv_id,
        "get_conversation_list_param_conv_type": conv_type,
    }


def text_json(text: str) -> str:
    return json.dumps(
        {"draft_msg": {"message_elem_array": [{"elem_type": 0, "text_elem_content": text}]}}
    )


def conv_info(daemon: DaemonProcess, user: str, conv_id: str, conv_type: int = 1) -> Any:
    with line_client(daemon, user) as line:
        found = line.call("conv.get", {"convs": [{"conv_id": conv_id, "conv_type": conv_type}]})
    return found[0] if found else None


# -- lifecycle and login -----------------------------------------------------------------------


def test_everything_needs_init_first() -> None:
    callback = Callback()
    assert tim.TIMLogin("u", "", callback, None) == TIM_ERR_SDKUNINIT
    assert tim.TIMLogout(callback, None) == TIM_ERR_SDKUNINIT
    assert tim.TIMConvCreate("a", 1, callback, None) == TIM_ERR_SDKUNINIT
    assert tim.TIMConvDelete("a", 1, callback, None) == TIM_ERR_SDKUNINIT
    assert tim.TIMConvGetConvList(callback, None) == TIM_ERR_SDKUNINIT
    assert tim.TIMConvGetConvInfo("[]", callback, None) == TIM_ERR_SDKUNINIT
    assert tim.TIMConvSetDraft("a", 1, "{}") == TIM_ERR_SDKUNINIT
    assert tim.TIMConvCancelDraft("a", 1) == TIM_ERR_SDKUNINIT
    assert tim.TIMConvPinConversation("a", 1, True, callback, None) == TIM_ERR_SDKUNINIT
    assert tim.TIMConvSetDraftIfRevision("a", 1, "{}", 0, callback, None) == TIM_ERR_SDKUNINIT
    assert tim.TIMConvCancelDraftIfRevision("a", 1, 0, callback, None) == TIM_ERR_SDKUNINIT
    assert tim.TIMGetLoginStatus() == tim.TIMLoginStatus.kTIMLoginStatus_UnLogined
    assert tim.TIMUninit() == TIM_SUCC
    callback.assert_no_more()


def test_init_checks_its_arguments() -> None:
    assert tim.TIMInit(-1, None) == TIM_ERR_PARAM
    assert tim.TIMInit(1, "{not json") == TIM_ERR_JSON
    assert tim.TIMInit(1, "[]") == TIM_ERR_JSON
    assert tim.TIMInit(1, '{"convd_timeout": "soon"}') == TIM_ERR_JSON
    assert tim.TIMGetSDKVersion().startswith("convd-client ")


@pytest.mark.parametrize("timeout", ["NaN", "Infinity", "-Infinity", "1e999", "0", "-1", "null"])
def test_init_refuses_a_timeout_that_is_not_a_finite_number_above_0(timeout: str) -> None:
    # Python's json accepts NaN and Infinity: a NaN timeout made every later call fail (7012).
    try:
        assert tim.TIMInit(1, f'{{"convd_timeout": {timeout}}}') == TIM_ERR_JSON
        assert tim.TIMLogin("alice", "", Callback(), None) == TIM_ERR_SDKUNINIT
    finally:
        tim.TIMUninit()


def test_conversation_calls_need_a_completed_login(sdk: None, user: str) -> None:
    callback = Callback()
    assert tim.TIMConvCreate("a", 1, callback, None) == TIM_ERR_NOTLOGIN
    assert tim.TIMConvGetConvList(callback, None) == TIM_ERR_NOTLOGIN
    assert tim.TIMConvSetDraft("a", 1, "{}") == TIM_ERR_NOTLOGIN
    assert tim.TIMConvCancelDraft("a", 1) == TIM_ERR_NOTLOGIN
    callback.assert_no_more()
    assert tim.TIMLogin(user, "", callback, None) == TIM_SUCC
    assert callback.wait()[0] == 0
    assert tim.TIMGetLoginStatus() == tim.TIMLoginStatus.kTIMLoginStatus_Logined
    assert tim.TIMGetLoginUserID() == user
    assert tim.TIMLogout(callback, "bye") == TIM_SUCC
    # Logged out at once, before the callback.
    assert tim.TIMConvCreate("a", 1, callback, None) == TIM_ERR_NOTLOGIN
    code, _, json_params, user_data, _ = callback.wait()
    assert (code, json_params, user_data) == (0, "", "bye")
    assert tim.TIMGetLoginUserID() is None


def test_login_callback_once_on_another_thread_with_user_data(sdk: None, user: str) -> None:
    callback = Callback()
    token = object()
    assert tim.TIMLogin("", "", callback, token) == TIM_ERR_PARAM
    assert tim.TIMLogin(user, "", callback, token) == TIM_SUCC
    code, desc, json_params, user_data, thread = callback.wait()
    assert (code, desc, json_params) == (0, "", "")
    assert user_data is token
    assert thread != threading.get_ident()
    callback.assert_no_more()


def test_login_with_an_invalid_user_id_fails_in_the_callback(sdk: None) -> None:
    callback = Callback()
    assert tim.TIMLogin("bad\x01id", "", callback, None) == TIM_SUCC
    code, desc, _, _, _ = callback.wait()
    assert code == 7003
    assert desc
    assert tim.TIMConvGetConvList(callback, None) == TIM_ERR_NOTLOGIN


def test_unreachable_daemon_reports_6022(short_dir: Path) -> None:
    init(short_dir / "nobody.sock")
    try:
        callback = Callback()
        assert tim.TIMLogin("alice", "", callback, 7) == TIM_SUCC
        code, desc, _, user_data, _ = callback.wait()
        assert code == 6022
        assert str(short_dir / "nobody.sock") in desc
        assert user_data == 7
    finally:
        tim.TIMUninit()


def test_uninit_completes_pending_callbacks_exactly_once(shared_daemon: DaemonProcess) -> None:
    init(shared_daemon.socket)
    callback = Callback()
    assert tim.TIMLogin("racer", "", callback, None) == TIM_SUCC
    tim.TIMUninit()
    code = callback.wait()[0]
    assert code in (0, 6013)
    callback.assert_no_more()


# -- conversations -----------------------------------------------------------------------------


def test_create_returns_conv_info_json_and_fires_add(
    logged_in: str, shared_daemon: DaemonProcess
) -> None:
    events = EventCallback()
    marker = {"mine": True}
    tim.TIMSetConvEventCallback(events, marker)
    callback = Callback()
    user_data = object()
    assert tim.TIMConvCreate("Windows-02", kTIMConv_C2C, callback, user_data) == TIM_SUCC
    code, desc, json_params, got_user_data, thread = callback.wait()
    assert (code, desc) == (0, "")
    assert got_user_data is user_data
    assert thread != threading.get_ident()
    info = json.loads(json_params)
    assert info["conv_id"] == "Windows-02"
    assert info["conv_type"] == 1
    assert info["conv_is_has_draft"] is False
    assert info["conv_draft_revision"] == 0
    conv_event, conv_array, event_user_data = events.wait()
    assert conv_event == kTIMConvEvent_Add
    assert conv_array[0]["conv_id"] == "Windows-02"
    assert event_user_data is marker
    callback.assert_no_more()


def test_get_conv_list_returns_the_whole_list(logged_in: str) -> None:
    for index in range(105):
        assert tim.TIMConvSetDraft(f"peer{index}", 1, '{"draft_user_define": "x"}') == TIM_SUCC
    callback = Callback()
    assert tim.TIMConvGetConvList(callback, None) == TIM_SUCC
    code, _, json_params, _, _ = callback.wait()
    assert code == 0
    convs = json.loads(json_params)
    assert len(convs) == 105
    assert convs[0]["conv_id"] == "peer104"  # most recently activated first


def test_get_conv_info(logged_in: str) -> None:
    callback = Callback()
    assert tim.TIMConvCreate("team", kTIMConv_Group, callback, None) == TIM_SUCC
    callback.wait()
    wanted = json.dumps(
        [
            {
                "get_conversation_list_param_conv_id": "team",
                "get_conversation_list_param_conv_type": 2,
            },
            {
                "get_conversation_list_param_conv_id": "ghost",
                "get_conversation_list_param_conv_type": 1,
            },
        ]
    )
    assert tim.TIMConvGetConvInfo(wanted, callback, "ud") == TIM_SUCC
    code, _, json_params, user_data, _ = callback.wait()
    assert (code, user_data) == (0, "ud")
    assert [c["conv_id"] for c in json.loads(json_params)] == ["team"]
    assert tim.TIMConvGetConvInfo("[{", callback, None) == TIM_ERR_JSON
    assert tim.TIMConvGetConvInfo('[{"conv_id": "x"}]', callback, None) == TIM_ERR_JSON
    assert tim.TIMConvGetConvInfo("[]", callback, None) == TIM_ERR_PARAM
    bad_type = (
        '[{"get_conversation_list_param_conv_id": "a", "get_conversation_list_param_conv_type": 9}]'
    )
    assert tim.TIMConvGetConvInfo(bad_type, callback, None) == TIM_ERR_PARAM
    callback.assert_no_more()


def test_delete_fires_del_with_id_and_type_only(logged_in: str) -> None:
    events = EventCallback()
    tim.TIMSetConvEventCallback(events, None)
    callback = Callback()
    assert tim.TIMConvCreate("bob", 1, callback, None) == TIM_SUCC
    callback.wait()
    assert tim.TIMConvDelete("bob", 1, callback, None) == TIM_SUCC
    code, _, json_params, _, _ = callback.wait()
    assert (code, json_params) == (0, "")
    assert events.wait()[0] == kTIMConvEvent_Add
    conv_event, conv_array, _ = events.wait()
    assert conv_event == kTIMConvEvent_Del
    assert conv_array == [{"conv_id": "bob", "conv_type": 1}]
    assert tim.TIMConvDelete("bob", 1, callback, None) == TIM_SUCC
    code, desc, json_params, _, _ = callback.wait()
    assert code == 6004
    assert desc
    assert json_params == ""


def test_pin(logged_in: str) -> None:
    events = EventCallback()
    tim.TIMSetConvEventCallback(events, None)
    callback = Callback()
    assert tim.TIMConvCreate("bob", 1, callback, None) == TIM_SUCC
    callback.wait()
    events.wait()
    assert tim.TIMConvPinConversation("bob", 1, True, callback, None) == TIM_SUCC
    assert callback.wait()[:3] == (0, "", "")
    conv_event, conv_array, _ = events.wait()
    assert conv_event == kTIMConvEvent_Update
    assert conv_array[0]["conv_is_pinned"] is True
    assert tim.TIMConvPinConversation("ghost", 1, True, callback, None) == TIM_SUCC
    assert callback.wait()[0] == 6004


def test_parameter_checks(logged_in: str) -> None:
    callback = Callback()
    assert tim.TIMConvCreate("", 1, callback, None) == TIM_ERR_PARAM
    assert tim.TIMConvCreate("a", 3, callback, None) == TIM_ERR_PARAM
    assert tim.TIMConvCreate(None, 1, callback, None) == TIM_ERR_PARAM  # type: ignore[arg-type]
    assert tim.TIMConvDelete("a", 0, callback, None) == TIM_ERR_PARAM
    assert tim.TIMConvPinConversation("", 1, True, callback, None) == TIM_ERR_PARAM
    callback.assert_no_more()
    # Invalid identifiers are reported in the callback by the daemon.
    assert tim.TIMConvCreate("x" * 33, 1, callback, None) == TIM_SUCC
    assert callback.wait()[0] == 7003
    assert tim.TIMConvCreate("g" * 49, 2, callback, None) == TIM_SUCC
    assert callback.wait()[0] == 8501


# -- drafts ------------------------------------------------------------------------------------


SDK_DRAFT = json.dumps(
    {
        "draft_edit_time": 1551271429,
        "draft_msg": {"message_elem_array": [{"elem_type": 0, "text_elem_content": "this draft"}]},
        "draft_user_define": "this is userdefine",
    }
)


def test_set_draft_is_synchronous(logged_in: str, shared_daemon: DaemonProcess) -> None:
    assert tim.TIMConvSetDraft("Windows-02", kTIMConv_C2C, SDK_DRAFT) == TIM_SUCC
    # Stored by the time the call returns: another connection sees it at once.
    info = conv_info(shared_daemon, logged_in, "Windows-02")
    assert info["conv_is_has_draft"] is True
    assert info["conv_draft"] == json.loads(SDK_DRAFT)
    assert tim.TIMConvCancelDraft("Windows-02", kTIMConv_C2C) == TIM_SUCC
    info = conv_info(shared_daemon, logged_in, "Windows-02")
    assert info["conv_is_has_draft"] is False
    assert "conv_draft" not in info


def test_set_draft_return_codes(logged_in: str) -> None:
    assert tim.TIMConvSetDraft("a", 1, "{not json") == TIM_ERR_JSON
    assert tim.TIMConvSetDraft("a", 1, '{"draft_msg": 5}') == TIM_ERR_JSON
    assert tim.TIMConvSetDraft("a", 1, '{"unknown_key": 1}') == TIM_ERR_JSON
    image = '{"draft_msg": {"message_elem_array": [{"elem_type": 1}]}}'
    assert tim.TIMConvSetDraft("a", 1, image) == TIM_ERR_PARAM
    assert tim.TIMConvSetDraft("", 1, SDK_DRAFT) == TIM_ERR_PARAM
    assert tim.TIMConvSetDraft("a", 7, SDK_DRAFT) == TIM_ERR_PARAM
    assert tim.TIMConvSetDraft("x" * 40, 1, SDK_DRAFT) == TIM_ERR_CONV
    assert tim.TIMConvSetDraft("a", 1, SDK_DRAFT.encode()) == TIM_SUCC  # bytes, as char*
    assert tim.TIMConvCancelDraft("ghost", 1) == TIM_ERR_CONV
    assert tim.TIMConvCancelDraft("", 1) == TIM_ERR_PARAM


def test_set_draft_accepts_a_whole_message_as_draft_msg(
    logged_in: str, shared_daemon: DaemonProcess
) -> None:
    """A real app passes a Message it built; its other keys are ignored, not TIM_ERR_JSON."""
    message = {
        "message_conv_id": "bob",
        "message_conv_type": 1,
        "message_sender": logged_in,
        "message_client_time": 1551271429,
        "message_is_from_self": True,
        "message_elem_array": [{"elem_type": 0, "text_elem_content": "hello"}],
    }
    draft = {"draft_msg": message, "draft_user_define": "", "draft_edit_time": 7}
    assert tim.TIMConvSetDraft("bob", 1, json.dumps(draft)) == TIM_SUCC
    info = conv_info(shared_daemon, logged_in, "bob")
    assert info["conv_draft"] == {
        "draft_msg": {"message_elem_array": [{"elem_type": 0, "text_elem_content": "hello"}]},
        "draft_user_define": "",
        "draft_edit_time": 7,
    }
    # The Draft's own keys are still checked.
    assert tim.TIMConvSetDraft("bob", 1, json.dumps({**draft, "draft_usre_define": ""})) == (
        TIM_ERR_JSON
    )


def test_draft_element_and_size_errors(logged_in: str) -> None:
    limit = 12 * 1024
    assert tim.TIMConvSetDraft("bob", 1, text_json("z" * limit)) == TIM_SUCC
    assert tim.TIMConvSetDraft("bob", 1, text_json("z" * (limit + 1))) == TIM_ERR_PARAM
    callback = Callback()
    too_big = text_json("z" * (limit + 1))
    assert tim.TIMConvSetDraftIfRevision("bob", 1, too_big, 1, callback, None) == TIM_SUCC
    code, desc, json_params, _, _ = callback.wait()
    assert (code, json_params) == (8001, "")
    assert str(limit) in desc
    image = '{"draft_msg": {"message_elem_array": [{"elem_type": 1, "image_elem_level": 0}]}}'
    assert tim.TIMConvSetDraft("bob", 1, image) == TIM_ERR_PARAM
    assert tim.TIMConvSetDraftIfRevision("bob", 1, image, 1, callback, None) == TIM_SUCC
    code, desc, _, _, _ = callback.wait()
    assert code == 6016
    assert "elem_type 1" in desc
    callback.assert_no_more()


def test_conv_info_carries_the_sdks_local_keys(logged_in: str) -> None:
    assert tim.TIMConvSetDraft("bob", 1, SDK_DRAFT) == TIM_SUCC
    callback = Callback()
    assert tim.TIMConvGetConvList(callback, None) == TIM_SUCC
    code, _, json_params, _, _ = callback.wait()
    assert code == 0
    (info,) = json.loads(json_params)
    assert info["conv_show_name"] == "bob"
    assert info["conv_recv_opt"] == 0
    assert info["conv_mark_array"] == []
    assert info["conv_custom_data"] == ""
    assert info["conv_conversation_group_array"] == []


def test_set_draft_fires_update_events(logged_in: str) -> None:
    events = EventCallback()
    tim.TIMSetConvEventCallback(events, None)
    assert tim.TIMConvSetDraft("bob", 1, SDK_DRAFT) == TIM_SUCC
    conv_event, conv_array, _ = events.wait()
    assert conv_event == kTIMConvEvent_Add
    assert conv_array[0]["conv_draft"]["draft_user_define"] == "this is userdefine"
    assert tim.TIMConvCancelDraft("bob", 1) == TIM_SUCC
    conv_event, conv_array, _ = events.wait()
    assert conv_event == kTIMConvEvent_Update
    assert conv_array[0]["conv_is_has_draft"] is False


def test_callbacks_run_on_one_dedicated_thread(logged_in: str) -> None:
    callback = Callback()
    events = EventCallback()
    threads: set[int] = set()

    def event_callback(conv_event: int, json_conv_array: str, user_data: Any) -> None:
        threads.add(threading.get_ident())
        events(conv_event, json_conv_array, user_data)

    tim.TIMSetConvEventCallback(event_callback, None)
    for name in ("a", "b", "c"):
        assert tim.TIMConvCreate(name, 1, callback, None) == TIM_SUCC
    for _ in range(3):
        threads.add(callback.wait()[4])
        events.wait()
    assert len(threads) == 1
    assert threading.get_ident() not in threads


def test_a_callback_may_call_the_sdk(logged_in: str) -> None:
    results: queue.Queue[int] = queue.Queue()

    def on_created(code: int, desc: str, json_params: str, user_data: Any) -> None:
        conv_id = json.loads(json_params)["conv_id"]
        results.put(tim.TIMConvSetDraft(conv_id, 1, SDK_DRAFT))

    assert tim.TIMConvCreate("nested", 1, on_created, None) == TIM_SUCC
    assert results.get(timeout=5) == TIM_SUCC


# -- conflicts ---------------------------------------------------------------------------------


def test_conflict_safe_draft_writes(logged_in: str) -> None:
    callback = Callback()
    assert tim.TIMConvSetDraftIfRevision("bob", 1, SDK_DRAFT, 0, callback, "ud") == TIM_SUCC
    code, _, json_params, user_data, _ = callback.wait()
    assert (code, user_data) == (0, "ud")
    revision = json.loads(json_params)["conv_draft_revision"]
    assert revision == 1

    # Someone else writes meanwhile.
    other = (
        '{"draft_msg": {"message_elem_array": [{"elem_type": 0, "text_elem_content": "theirs"}]}}'
    )
    assert tim.TIMConvSetDraft("bob", 1, other) == TIM_SUCC

    mine = text_json("mine")
    assert tim.TIMConvSetDraftIfRevision("bob", 1, mine, revision, callback, None) == TIM_SUCC
    code, desc, json_params, _, _ = callback.wait()
    assert code == 90001
    assert desc
    current = json.loads(json_params)
    assert current["conv_draft_revision"] == 2
    assert current["conv_draft"]["draft_msg"]["message_elem_array"][0]["text_elem_content"] == (
        "theirs"
    )
    # Retry at the current revision.
    assert tim.TIMConvSetDraftIfRevision("bob", 1, mine, 2, callback, None) == TIM_SUCC
    assert json.loads(callback.wait()[2])["conv_draft_revision"] == 3

    assert tim.TIMConvCancelDraftIfRevision("bob", 1, 2, callback, None) == TIM_SUCC
    assert callback.wait()[0] == 90001
    assert tim.TIMConvCancelDraftIfRevision("bob", 1, 3, callback, None) == TIM_SUCC
    code, _, json_params, _, _ = callback.wait()
    assert code == 0
    assert json.loads(json_params)["conv_is_has_draft"] is False

    assert tim.TIMConvSetDraftIfRevision("gone", 1, mine, 4, callback, None) == TIM_SUCC
    code, _, json_params, _, _ = callback.wait()
    assert (code, json_params) == (90001, "")

    assert tim.TIMConvSetDraftIfRevision("bob", 1, mine, -1, callback, None) == TIM_ERR_PARAM
    assert tim.TIMConvSetDraftIfRevision("bob", 1, "{", 0, callback, None) == TIM_ERR_JSON
    callback.assert_no_more()


# -- the sync after every login ---------------------------------------------------------------


def test_every_login_starts_with_a_sync_of_the_whole_list(
    sdk: None, user: str, shared_daemon: DaemonProcess
) -> None:
    with line_client(shared_daemon, user) as line:
        for n in range(120):
            line.call("conv.create", {"conv_id": f"peer{n:03}", "conv_type": 1})
        line.call("conv.pin", {"conv_id": "peer010", "conv_type": 1, "is_pinned": True})
        listed = line.call("conv.list", {"count": 1000})["conversation_list_result_conv_list"]
    frame = login(user)
    # Start, the list as Update events (pages of 100), Finish.
    assert [(e, len(a or ())) for e, a in frame] == [
        (kTIMConvEvent_Start, 0),
        (kTIMConvEvent_Update, 100),
        (kTIMConvEvent_Update, 20),
        (kTIMConvEvent_Finish, 0),
    ]
    assert frame[1][1] + frame[2][1] == listed
    assert frame[1][1][0]["conv_id"] == "peer010"


def test_a_conversation_deleted_while_logged_out_is_reported_at_the_next_login(
    logged_in: str, shared_daemon: DaemonProcess
) -> None:
    events = EventCallback()
    tim.TIMSetConvEventCallback(events, None)
    callback = Callback()
    for name in ("a", "b", "c"):
        assert tim.TIMConvCreate(name, kTIMConv_C2C, callback, None) == TIM_SUCC
        callback.wait()
        assert events.wait()[:2][0] == kTIMConvEvent_Add
    assert tim.TIMLogout(callback, None) == TIM_SUCC
    callback.wait()
    with line_client(shared_daemon, logged_in) as line:
        line.call("conv.delete", {"conv_id": "b", "conv_type": 1})
        line.call("conv.create", {"conv_id": "d", "conv_type": 1})
        line.call("conv.pin", {"conv_id": "a", "conv_type": 1, "is_pinned": True})
    assert tim.TIMLogin(logged_in, "", callback, None) == TIM_SUCC
    assert callback.wait()[0] == 0
    frame = events.frame()
    # The list as it is now, then what the callback had been told of and is gone.
    assert [(e, [c["conv_id"] for c in a or ()]) for e, a in frame] == [
        (kTIMConvEvent_Start, []),
        (kTIMConvEvent_Update, ["a", "d", "c"]),
        (kTIMConvEvent_Del, ["b"]),
        (kTIMConvEvent_Finish, []),
    ]
    assert frame[2][1] == [{"conv_id": "b", "conv_type": 1}]
    assert frame[1][1][0]["conv_is_pinned"] is True
    # Then the live events.
    assert tim.TIMConvDelete("d", kTIMConv_C2C, callback, None) == TIM_SUCC
    assert events.wait()[:2] == (kTIMConvEvent_Del, [{"conv_id": "d", "conv_type": 1}])


# -- events after logout -------------------------------------------------------------------------


def test_no_events_after_logout(logged_in: str, shared_daemon: DaemonProcess) -> None:
    events = EventCallback()
    tim.TIMSetConvEventCallback(events, None)
    callback = Callback()
    assert tim.TIMLogout(callback, None) == TIM_SUCC
    callback.wait()
    with line_client(shared_daemon, logged_in) as line:
        line.call("conv.create", {"conv_id": "unseen", "conv_type": 1})
    time.sleep(0.1)
    assert events.events.empty()


# -- outage ------------------------------------------------------------------------------------


def test_outage_fails_fast_then_the_sdk_reconnects(daemon: DaemonProcess) -> None:
    init(daemon.socket)
    try:
        assert login("alice") == [(kTIMConvEvent_Start, None), (kTIMConvEvent_Finish, None)]
        events = EventCallback()
        tim.TIMSetConvEventCallback(events, None)
        assert tim.TIMConvSetDraft("bob", 1, SDK_DRAFT) == TIM_SUCC
        assert tim.TIMConvSetDraft("carol", 1, SDK_DRAFT) == TIM_SUCC
        assert events.wait()[0] == kTIMConvEvent_Add
        assert events.wait()[0] == kTIMConvEvent_Add

        daemon.kill()
        started = time.monotonic()
        assert tim.TIMConvSetDraft("bob", 1, SDK_DRAFT) == tim.TIM_ERR_IO
        assert tim.TIMConvCancelDraft("bob", 1) == tim.TIM_ERR_IO
        callback = Callback()
        assert tim.TIMConvGetConvList(callback, "ud") == TIM_SUCC
        code, desc, _, user_data, _ = callback.wait()
        assert (code, user_data) == (6022, "ud")
        assert str(daemon.socket) in desc
        assert time.monotonic() - started < 1

        daemon.start()
        with line_client(daemon, "alice") as line:
            line.call("conv.delete", {"conv_id": "carol", "conv_type": 1})
            line.call("conv.create", {"conv_id": "while-away", "conv_type": 1})
        # Reconnected and logged in again by itself, the SDK resumes inside a sync frame:
        # Start, the changes missed while away (the delete included), Finish. (It may have
        # reconnected before the changes were made: they then follow the frame, live.)
        received = events.frame(timeout=10)
        while len(received) < 4:
            received.append(events.wait()[:2])
        changes = [(e, a[0]["conv_id"]) for e, a in received if a is not None]
        assert changes == [(kTIMConvEvent_Del, "carol"), (kTIMConvEvent_Add, "while-away")]
        deleted = next(a for e, a in received if e == kTIMConvEvent_Del)
        assert deleted == [{"conv_id": "carol", "conv_type": 1}]
        deadline = time.monotonic() + 10
        while tim.TIMConvCancelDraft("bob", 1) != TIM_SUCC:  # logged in again by itself
            assert time.monotonic() < deadline
            time.sleep(0.02)
        conv_event, conv_array, _ = events.wait()
        assert (conv_event, conv_array[0]["conv_is_has_draft"]) == (kTIMConvEvent_Update, False)
    finally:
        tim.TIMSetConvEventCallback(None, None)
        tim.TIMUninit()


def test_uninit_from_a_callback(shared_daemon: DaemonProcess, user: str) -> None:
    init(shared_daemon.socket)
    outcome: queue.Queue[int] = queue.Queue()

    def on_login(code: int, desc: str, json_params: str, user_data: Any) -> None:
        outcome.put(tim.TIMUninit())
        outcome.put(tim.TIMConvGetConvList(Callback(), None))

    try:
        assert tim.TIMLogin(user, "", on_login, None) == TIM_SUCC
        assert outcome.get(timeout=5) == TIM_SUCC
        assert outcome.get(timeout=5) == TIM_ERR_SDKUNINIT
    finally:
        tim.TIMUninit()
    # Initializing again works.
    init(shared_daemon.socket)
    try:
        login(user)
    finally:
        tim.TIMUninit()


def test_done_runs_once_when_the_logic_thread_stopped_first(
    shared_daemon: DaemonProcess,
) -> None:
    # close() racing a submitted call: the logic thread stops before the call ends.
    from convd_client._sdk import SdkCore

    core = SdkCore(
        0,
        socket_path=shared_daemon.socket,
        timeout=5,
        on_event=lambda event: None,
    )
    core.start()
    calls: list[tuple[object, BaseException | None]] = []
    try:
        release = threading.Event()

        async def slow(client: object) -> str:
            await anyio.to_thread.run_sync(release.wait, 10)
            return "ok"

        assert core.run(slow, lambda result, error: calls.append((result, error)))
        core.client._callbacks.stop()
        release.set()
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        core.stop()
    assert calls == [("ok", None)]
