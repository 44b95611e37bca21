"""The C face's batch calls and unread count: ``TIMConvDeleteConversationList``,
``TIMConvSetConversationCustomData``, ``TIMConvGetTotalUnreadMessageCount`` and
``TIMSetConvTotalUnreadMessageCountChangedCallback``: return codes, the SDK's JSON, events."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from convd_client import tim
from convd_client.tim import (
    TIM_ERR_JSON,
    TIM_ERR_NOTLOGIN,
    TIM_ERR_PARAM,
    TIM_ERR_SDKUNINIT,
    TIM_SUCC,
    kTIMConv_C2C,
    kTIMConv_Group,
    kTIMConvEvent_Del,
    kTIMConvEvent_Finish,
    kTIMConvEvent_Update,
)
from support import DaemonProcess

APP_ID = 1400000001
ERR_INVALID_CONVERSATION = 6004
ERR_INVALID_PARAMETERS = 6017
ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT = 51006
UNREAD_KEY = "conv_get_total_unread_message_count_result_unread_count"


class Callback:
    """A TIMCommCallback: records (code, desc, parsed json_params, user_data, thread)."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[int, str, Any, Any, int]] = queue.Queue()

    def __call__(self, code: int, desc: str, json_params: str, user_data: Any) -> None:
        parsed = json.loads(json_params) if json_params else None
        self.calls.put((code, desc, parsed, user_data, threading.get_ident()))

    def wait(self, timeout: float = 5) -> tuple[int, str, Any, Any, int]:
        return self.calls.get(timeout=timeout)


class Events:
    """A TIMConvEventCallback: records (event, parsed array) after the login's sync."""

    def __init__(self) -> None:
        self.synced = threading.Event()
        self.events: queue.Queue[tuple[int, Any]] = queue.Queue()

    def __call__(self, conv_event: int, json_conv_array: str, user_data: Any) -> None:
        if not self.synced.is_set():
            if conv_event == kTIMConvEvent_Finish:
                self.synced.set()
            return
        self.events.put((conv_event, json.loads(json_conv_array) if json_conv_array else None))

    def next(self, timeout: float = 5) -> tuple[int, Any]:
        return self.events.get(timeout=timeout)


@pytest.fixture
def events(shared_daemon: DaemonProcess, user: str) -> Iterator[Events]:
    """The SDK initialized and logged in as ``user``, its login's sync done."""
    config = json.dumps({"convd_socket_path": str(shared_daemon.socket)})
    assert tim.TIMInit(APP_ID, config) == TIM_SUCC
    recorder = Events()
    tim.TIMSetConvEventCallback(recorder, None)
    try:
        done = Callback()
        assert tim.TIMLogin(user, "", done, None) == TIM_SUCC
        assert done.wait()[0] == 0
        assert recorder.synced.wait(5)
        yield recorder
    finally:
        tim.TIMSetConvEventCallback(None, None)
        assert tim.TIMUninit() == TIM_SUCC


def create(conv_id: str, conv_type: int = kTIMConv_C2C) -> None:
    done = Callback()
    assert tim.TIMConvCreate(conv_id, conv_type, done, None) == TIM_SUCC
    assert done.wait()[0] == 0


def conv_info(conv_id: str, conv_type: int = kTIMConv_C2C) -> dict[str, Any] | None:
    done = Callback()
    param = json.dumps(
        [
            {
                "get_conversation_list_param_conv_id": conv_id,
                "get_conversation_list_param_conv_type": conv_type,
            }
        ]
    )
    assert tim.TIMConvGetConvInfo(param, done, None) == TIM_SUCC
    code, _, found, _, _ = done.wait()
    assert code == 0
    return found[0] if found else None


def result(conversation_id: str, code: int = 0, info: str = "") -> dict[str, Any]:
    return {
        "conversation_operation_result_conversation_id": conversation_id,
        "conversation_operation_result_result_code": code,
        "conversation_operation_result_result_info": info,
    }


def test_delete_conversation_list_answers_the_sdks_results_and_fires_del(
    events: Events,
) -> None:
    create("bob")
    create("team", kTIMConv_Group)
    for _ in range(2):
        events.next()  # the two Adds
    done = Callback()
    ids = json.dumps(["c2c_bob", "c2c_nobody", "group_team"])
    assert tim.TIMConvDeleteConversationList(ids, True, done, "mine") == TIM_SUCC
    code, desc, json_params, user_data, thread = done.wait()
    assert (code, desc, user_data) == (0, "", "mine")
    assert thread != threading.get_ident()  # the logic thread, never inside the call
    assert json_params == [
        result("c2c_bob"),
        result("c2c_nobody", ERR_INVALID_CONVERSATION, "no conversation 'nobody' of that type"),
        result("group_team"),
    ]
    assert events.next() == (kTIMConvEvent_Del, [{"conv_id": "bob", "conv_type": 1}])
    assert events.next() == (kTIMConvEvent_Del, [{"conv_id": "team", "conv_type": 2}])
    assert conv_info("bob") is None


def test_delete_conversation_list_refusals(events: Events) -> None:
    done = Callback()
    assert tim.TIMConvDeleteConversationList("not json", False, done, None) == TIM_ERR_JSON
    assert tim.TIMConvDeleteConversationList('{"a": 1}', False, done, None) == TIM_ERR_JSON
    assert tim.TIMConvDeleteConversationList("[]", False, done, None) == TIM_ERR_PARAM
    assert tim.TIMConvDeleteConversationList('["bob"]', False, done, None) == TIM_ERR_PARAM
    assert tim.TIMConvDeleteConversationList('["c2c_bob"]', "no", done, None) == TIM_ERR_PARAM
    too_many = json.dumps([f"c2c_user{n}" for n in range(101)])
    assert tim.TIMConvDeleteConversationList(too_many, False, done, None) == TIM_SUCC
    code, desc, json_params, _, _ = done.wait()
    assert code == ERR_INVALID_PARAMETERS
    assert "at most 100" in desc
    assert json_params is None
    assert done.calls.empty()  # the refused calls never called back


def test_set_conversation_custom_data_is_shown_and_fires_update(events: Events) -> None:
    create("bob")
    events.next()
    before = conv_info("bob")
    assert before is not None and before["conv_custom_data"] == ""
    done = Callback()
    data = json.dumps({"muted": True})
    ids = json.dumps(["c2c_bob", "group_none"])
    assert tim.TIMConvSetConversationCustomData(ids, data, done, None) == TIM_SUCC
    code, _, json_params, _, _ = done.wait()
    assert code == 0
    assert json_params == [
        result("c2c_bob"),
        result("group_none", ERR_INVALID_CONVERSATION, "no conversation 'none' of that type"),
    ]
    event, conv_array = events.next()
    assert event == kTIMConvEvent_Update
    assert conv_array[0]["conv_custom_data"] == data
    after = conv_info("bob")
    assert after is not None and after["conv_custom_data"] == data
    assert after["conv_active_time"] == before["conv_active_time"]
    # bytes are accepted when they are UTF-8 text.
    assert tim.TIMConvSetConversationCustomData(ids, b"\xc3\xa9", done, None) == TIM_SUCC
    assert done.wait()[0] == 0
    after = conv_info("bob")
    assert after is not None and after["conv_custom_data"] == "é"


def test_set_conversation_custom_data_refusals(events: Events) -> None:
    done = Callback()
    ids = json.dumps(["c2c_bob"])
    assert tim.TIMConvSetConversationCustomData(ids, b"\xff", done, None) == TIM_ERR_PARAM
    assert tim.TIMConvSetConversationCustomData(ids, 7, done, None) == TIM_ERR_PARAM  # type: ignore[arg-type]
    assert tim.TIMConvSetConversationCustomData("[1]", "x", done, None) == TIM_ERR_JSON
    assert tim.TIMConvSetConversationCustomData(ids, "x" * 257, done, None) == TIM_SUCC
    code, desc, _, _, _ = done.wait()
    assert code == ERR_INVALID_PARAMETERS and "257 bytes" in desc
    too_many = json.dumps([f"c2c_user{n}" for n in range(101)])
    assert tim.TIMConvSetConversationCustomData(too_many, "x", done, None) == TIM_SUCC
    assert done.wait()[0] == ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT


def test_total_unread_message_count_is_zero_and_never_changes(events: Events) -> None:
    changed: list[int] = []
    tim.TIMSetConvTotalUnreadMessageCountChangedCallback(
        lambda count, user_data: changed.append(count), None
    )
    done = Callback()
    assert tim.TIMConvGetTotalUnreadMessageCount(done, 42) == TIM_SUCC
    code, desc, json_params, user_data, thread = done.wait()
    assert (code, desc, json_params, user_data) == (0, "", {UNREAD_KEY: 0}, 42)
    assert thread != threading.get_ident()
    create("bob")
    events.next()
    assert tim.TIMConvGetTotalUnreadMessageCount(None, None) == TIM_SUCC
    assert changed == []


def test_the_new_calls_before_init_and_before_login(shared_daemon: DaemonProcess) -> None:
    done = Callback()
    assert tim.TIMConvGetTotalUnreadMessageCount(done, None) == TIM_ERR_SDKUNINIT
    assert tim.TIMConvDeleteConversationList('["c2c_a"]', False, done, None) == TIM_ERR_SDKUNINIT
    config = json.dumps({"convd_socket_path": str(shared_daemon.socket)})
    assert tim.TIMInit(APP_ID, config) == TIM_SUCC
    try:
        assert tim.TIMConvGetTotalUnreadMessageCount(done, None) == TIM_ERR_NOTLOGIN
        assert (
            tim.TIMConvSetConversationCustomData('["c2c_a"]', "x", done, None) == TIM_ERR_NOTLOGIN
        )
        assert done.calls.empty()
    finally:
        assert tim.TIMUninit() == TIM_SUCC
