"""The C face's marks, filtered list and conversation groups over the real daemon: return
codes, json_params, and the group callbacks (fired by another process's changes too)."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from typing import Any

import pytest

from convd_client import tim
from convd_client.tim import TIM_ERR_JSON, TIM_ERR_NOTLOGIN, TIM_ERR_PARAM, TIM_SUCC
from convd_schemas import ConvKey, TIMConvType
from support import DaemonProcess

APP_ID = 1400000001
STAR, FOLD = 0x1, 0x4


class Callback:
    """A TIMCommCallback that records (code, desc, json_params)."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[int, str, str]] = queue.Queue()

    def __call__(self, code: int, desc: str, json_params: str, user_data: Any) -> None:
        self.calls.put((code, desc, json_params))

    def wait(self, timeout: float = 5) -> tuple[int, str, str]:
        return self.calls.get(timeout=timeout)

    def ok(self) -> Any:
        code, desc, json_params = self.wait()
        assert code == 0, (code, desc)
        return json.loads(json_params) if json_params else None


def call(fn: Any, *args: Any) -> Any:
    """Call an asynchronous TIM function; its json_params, parsed (code 0 asserted)."""
    callback = Callback()
    assert fn(*args, callback, None) == TIM_SUCC
    return callback.ok()


def fail(fn: Any, *args: Any) -> int:
    """Call an asynchronous TIM function that fails in its callback; the code."""
    callback = Callback()
    assert fn(*args, callback, None) == TIM_SUCC
    code, _, _ = callback.wait()
    return code


@pytest.fixture
def logged_in(shared_daemon: DaemonProcess, user: str) -> Iterator[str]:
    config = json.dumps({"convd_socket_path": str(shared_daemon.socket)})
    assert tim.TIMInit(APP_ID, config) == TIM_SUCC
    try:
        call(tim.TIMLogin, user, "sig")
        yield user
    finally:
        for setter in (
            tim.TIMSetConvConversationGroupCreatedCallback,
            tim.TIMSetConvConversationGroupDeletedCallback,
            tim.TIMSetConvConversationGroupNameChangedCallback,
            tim.TIMSetConvConversationsAddedToGroupCallback,
            tim.TIMSetConvConversationsDeletedFromGroupCallback,
        ):
            setter(None, None)
        assert tim.TIMUninit() == TIM_SUCC


def create(*ids: str) -> None:
    for conv_id in ids:
        kind = tim.kTIMConv_Group if conv_id.startswith("g") else tim.kTIMConv_C2C
        call(tim.TIMConvCreate, conv_id, kind)


def ids_of(page: dict[str, Any]) -> list[str]:
    return [c["conv_id"] for c in page["conversation_list_result_conv_list"]]


def test_mark_conversation(logged_in: str) -> None:
    create("bob", "gx")
    results = call(tim.TIMConvMarkConversation, '["c2c_bob", "group_gx", "c2c_nobody"]', STAR, True)
    assert [
        (
            r["conversation_operation_result_conversation_id"],
            r["conversation_operation_result_result_code"],
        )
        for r in results
    ] == [("c2c_bob", 0), ("group_gx", 0), ("c2c_nobody", 6004)]
    call(tim.TIMConvMarkConversation, '["c2c_bob"]', 1 << 32, True)
    call(tim.TIMConvMarkConversation, '["group_gx"]', STAR, False)
    found = call(
        tim.TIMConvGetConvInfo,
        json.dumps(
            [
                {
                    "get_conversation_list_param_conv_id": "bob",
                    "get_conversation_list_param_conv_type": 1,
                },
                {
                    "get_conversation_list_param_conv_id": "gx",
                    "get_conversation_list_param_conv_type": 2,
                },
            ]
        ),
    )
    assert [c["conv_mark_array"] for c in found] == [[STAR, 1 << 32], []]
    # The SDK's rule on mark values, and its batch limit, from the daemon.
    assert fail(tim.TIMConvMarkConversation, '["c2c_bob"]', 0x10, True) == 6017
    assert fail(tim.TIMConvMarkConversation, "[]", STAR, True) == 6017
    many = json.dumps([f"c2c_u{i}" for i in range(101)])
    assert fail(tim.TIMConvMarkConversation, many, STAR, True) == 51006


def test_synchronous_refusals(logged_in: str) -> None:
    cb = Callback()
    assert tim.TIMConvMarkConversation("not json", STAR, True, cb, None) == TIM_ERR_JSON
    assert tim.TIMConvMarkConversation("[1]", STAR, True, cb, None) == TIM_ERR_JSON
    assert tim.TIMConvMarkConversation('["bob"]', STAR, True, cb, None) == TIM_ERR_PARAM
    assert tim.TIMConvMarkConversation('["c2c_bob"]', -1, True, cb, None) == TIM_ERR_PARAM
    assert tim.TIMConvGetConversationListByFilter("{", 0, 10, cb, None) == TIM_ERR_JSON
    assert tim.TIMConvGetConversationListByFilter('{"x": 1}', 0, 10, cb, None) == TIM_ERR_JSON
    assert tim.TIMConvGetConversationListByFilter("{}", 0, 0, cb, None) == TIM_ERR_PARAM
    assert tim.TIMConvGetConversationListByFilter("{}", -1, 10, cb, None) == TIM_ERR_PARAM
    assert tim.TIMConvCreateConversationGroup(None, "[]", cb, None) == TIM_ERR_PARAM  # type: ignore[arg-type]
    assert tim.TIMConvAddConversationsToGroup("a", '["x"]', cb, None) == TIM_ERR_PARAM
    time.sleep(0.1)
    assert cb.calls.empty()


def test_calls_before_login_return_notlogin(shared_daemon: DaemonProcess) -> None:
    config = json.dumps({"convd_socket_path": str(shared_daemon.socket)})
    assert tim.TIMInit(APP_ID, config) == TIM_SUCC
    try:
        cb = Callback()
        assert tim.TIMConvGetConversationGroupList(cb, None) == TIM_ERR_NOTLOGIN
        assert tim.TIMConvMarkConversation('["c2c_a"]', 1, True, cb, None) == TIM_ERR_NOTLOGIN
    finally:
        tim.TIMUninit()


def test_filtered_list(logged_in: str) -> None:
    create("u1", "g1", "u2", "g2")
    call(tim.TIMConvMarkConversation, '["c2c_u1", "group_g2"]', FOLD, True)
    call(tim.TIMConvCreateConversationGroup, "work", '["c2c_u2", "group_g1"]')
    page = call(
        tim.TIMConvGetConversationListByFilter,
        json.dumps({"conversation_list_filter_conv_type": 2}),
        0,
        100,
    )
    assert ids_of(page) == ["g2", "g1"]
    assert page["conversation_list_result_is_finished"] is True
    page = call(
        tim.TIMConvGetConversationListByFilter,
        json.dumps({"conversation_list_filter_mark_type": FOLD}),
        0,
        1,
    )
    assert ids_of(page) == ["g2"] and page["conversation_list_result_is_finished"] is False
    page = call(
        tim.TIMConvGetConversationListByFilter,
        json.dumps({"conversation_list_filter_mark_type": FOLD}),
        page["conversation_list_result_next_seq"],
        1,
    )
    assert ids_of(page) == ["u1"]
    page = call(
        tim.TIMConvGetConversationListByFilter,
        json.dumps({"conversation_list_filter_conversation_group": "work"}),
        0,
        100,
    )
    assert ids_of(page) == ["u2", "g1"]
    page = call(
        tim.TIMConvGetConversationListByFilter,
        json.dumps(
            {
                "conversation_list_filter_conversation_group": "",
                "conversation_list_filter_mark_type": 0,
            }
        ),
        0,
        100,
    )
    assert ids_of(page) == []
    page = call(
        tim.TIMConvGetConversationListByFilter,
        json.dumps({"conversation_list_filter_has_draft": False}),
        0,
        100,
    )
    assert ids_of(page) == ["g2", "u2", "g1", "u1"]


def test_groups_and_their_callbacks(logged_in: str, shared_daemon: DaemonProcess) -> None:
    fired: queue.Queue[tuple[Any, ...]] = queue.Queue()
    tim.TIMSetConvConversationGroupCreatedCallback(
        lambda name, convs, ud: fired.put(
            ("created", name, [c["conv_id"] for c in json.loads(convs)], ud)
        ),
        "u1",
    )
    tim.TIMSetConvConversationGroupDeletedCallback(
        lambda name, ud: fired.put(("deleted", name, ud)), "u2"
    )
    tim.TIMSetConvConversationGroupNameChangedCallback(
        lambda old, new, ud: fired.put(("renamed", old, new, ud)), "u3"
    )
    tim.TIMSetConvConversationsAddedToGroupCallback(
        lambda name, convs, ud: fired.put(
            ("added", name, [c["conv_id"] for c in json.loads(convs)], ud)
        ),
        "u4",
    )
    tim.TIMSetConvConversationsDeletedFromGroupCallback(
        lambda name, convs, ud: fired.put(
            ("removed", name, [c["conv_id"] for c in json.loads(convs)], ud)
        ),
        "u5",
    )
    create("bob", "carol")
    results = call(tim.TIMConvCreateConversationGroup, "friends", '["c2c_bob"]')
    assert results[0]["conversation_operation_result_result_code"] == 0
    assert fired.get(timeout=5) == ("created", "friends", ["bob"], "u1")
    call(tim.TIMConvAddConversationsToGroup, "friends", '["c2c_carol"]')
    assert fired.get(timeout=5) == ("added", "friends", ["carol"], "u4")
    assert call(tim.TIMConvGetConversationGroupList) == ["friends"]
    assert call(tim.TIMConvRenameConversationGroup, "friends", "pals") is None
    assert fired.get(timeout=5) == ("renamed", "friends", "pals", "u3")
    call(tim.TIMConvDeleteConversationsFromGroup, "pals", '["c2c_bob"]')
    assert fired.get(timeout=5) == ("removed", "pals", ["bob"], "u5")
    # A change made by another process reaches the callbacks too.
    with shared_daemon.client(None) as other:
        other.call("session.login", {"user_id": logged_in, "sdk_app_id": APP_ID})
        other.call("conv.group_delete", {"group_name": "pals"})
    assert fired.get(timeout=5) == ("deleted", "pals", "u2")
    assert call(tim.TIMConvGetConversationGroupList) == []
    assert fail(tim.TIMConvDeleteConversationGroup, "pals") == 51009
    assert fail(tim.TIMConvRenameConversationGroup, "nope", "x") == 51009
    assert fail(tim.TIMConvCreateConversationGroup, "y" * 33, "[]") == 51011
    for n in range(20):
        call(tim.TIMConvCreateConversationGroup, f"g{n}", "[]")
    assert fail(tim.TIMConvCreateConversationGroup, "g20", "[]") == 51010


def test_a_filter_of_type_0_lists_every_type_and_notes_revisions(logged_in: str) -> None:
    """As V2's type 0: conversation_list_filter_conv_type 0 does not filter (the SDK's
    TIMConvType has no 0, so decoding it as a type would refuse the call). A filtered page's
    revisions count as seen for compare-and-set, as a plain page's do."""
    for conv_id, conv_type in (("bob", 1), ("gx", 2)):
        call(tim.TIMConvCreate, conv_id, conv_type)
    everything = call(
        tim.TIMConvGetConversationListByFilter,
        json.dumps({"conversation_list_filter_conv_type": 0}),
        0,
        10,
    )
    listed = {c["conv_id"] for c in everything["conversation_list_result_conv_list"]}
    assert {"bob", "gx"} <= listed
    core = tim._core  # the face's own state: what it has seen
    assert core is not None
    assert core.seen_revision(ConvKey(conv_id="gx", conv_type=TIMConvType.kTIMConv_Group)) == 0
