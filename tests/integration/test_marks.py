"""conv.mark against the real daemon: results per conversation, stored marks, events, limits."""

from __future__ import annotations

from typing import Any

import pytest

from support import DaemonProcess, LineClient

C2C, GROUP = 1, 2
STAR, UNREAD, FOLD, HIDE = 0x1, 0x2, 0x4, 0x8


def _key(conv_id: str, conv_type: int = C2C) -> dict[str, Any]:
    return {"conv_id": conv_id, "conv_type": conv_type}


def _mark(client: LineClient, ids: list[str], mark: int, enable: bool = True) -> Any:
    return client.call(
        "conv.mark", {"convs": [_key(i) for i in ids], "mark_type": mark, "enable_mark": enable}
    )


def _marks(client: LineClient, conv_id: str, conv_type: int = C2C) -> list[int]:
    (info,) = client.call("conv.get", {"convs": [_key(conv_id, conv_type)]})
    marks: list[int] = info["conv_mark_array"]
    return marks


def test_marks_are_set_and_cleared_with_a_result_per_conversation(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob"))
        client.call("conv.create", _key("carol"))
        results = _mark(client, ["bob", "nobody", "carol", "bob"], STAR)
        assert [(r["conv_id"], r["conv_type"], r["result_code"]) for r in results] == [
            ("bob", 1, 0),
            ("nobody", 1, 6004),
            ("carol", 1, 0),
        ]
        assert results[0]["result_info"] == ""
        assert "nobody" in results[1]["result_info"]
        _mark(client, ["bob"], FOLD)
        _mark(client, ["bob"], 1 << 63)
        _mark(client, ["bob"], 1 << 32)
        assert _marks(client, "bob") == [STAR, FOLD, 1 << 32, 1 << 63]
        _mark(client, ["bob"], STAR, enable=False)
        assert _marks(client, "bob") == [FOLD, 1 << 32, 1 << 63]
        assert _marks(client, "carol") == [STAR]
        # The list shows them too, and marking did not reorder it.
        page = client.call("conv.list", {})
        assert [c["conv_id"] for c in page["conversation_list_result_conv_list"]] == [
            "carol",
            "bob",
        ]
        assert page["conversation_list_result_conv_list"][1]["conv_mark_array"] == [
            FOLD,
            1 << 32,
            1 << 63,
        ]


def test_marks_survive_a_restart_and_other_writes(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob"))
        _mark(client, ["bob"], UNREAD)
        client.call(
            "conv.set_draft",
            {"conv_id": "bob", "conv_type": C2C, "draft": {"draft_user_define": "x"}},
        )
        client.call("conv.pin", {"conv_id": "bob", "conv_type": C2C, "is_pinned": True})
    daemon.stop()
    daemon.start()
    with daemon.client() as client:
        assert _marks(client, "bob") == [UNREAD]


def test_each_change_is_an_update_event_and_no_change_is_none(daemon: DaemonProcess) -> None:
    with daemon.client() as watcher, daemon.client() as writer:
        writer.call("conv.create", _key("bob"))
        writer.call("conv.create", _key("carol"))
        watcher.call("conv.subscribe", {})
        _mark(writer, ["bob", "carol"], HIDE)
        _mark(writer, ["bob"], HIDE)  # already marked: no event
        _mark(writer, ["carol"], HIDE, enable=False)
        events = [watcher.next_notification()["params"] for _ in range(3)]
        assert [(e["event"], e["conv_array"][0]["conv_id"]) for e in events] == [
            (2, "bob"),
            (2, "carol"),
            (2, "carol"),
        ]
        assert [e["conv_array"][0]["conv_mark_array"] for e in events] == [[HIDE], [HIDE], []]
        assert events[0]["seq"] < events[1]["seq"] < events[2]["seq"]


@pytest.mark.parametrize("mark", [0, 3, 0x10, 1 << 31, (1 << 32) | 1, 1 << 33 | 1 << 40])
def test_a_value_that_is_not_one_mark_is_refused_with_6017(
    daemon: DaemonProcess, mark: int
) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob"))
        error = client.error(
            "conv.mark", {"convs": [_key("bob")], "mark_type": mark, "enable_mark": True}
        )
        assert error["code"] == 6017
        assert _marks(client, "bob") == []


def test_batch_limits_and_bad_ids(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        too_many = [_key(f"u{i}") for i in range(101)]
        error = client.error("conv.mark", {"convs": too_many, "mark_type": 1, "enable_mark": True})
        assert error["code"] == 51006
        assert error["message"] == "Too many conversations in one request"
        error = client.error("conv.mark", {"convs": [], "mark_type": 1, "enable_mark": True})
        assert error["code"] == 6017
        error = client.error(
            "conv.mark", {"convs": [_key("x" * 33)], "mark_type": 1, "enable_mark": True}
        )
        assert error["code"] == 7003
        error = client.error(
            "conv.mark", {"convs": [_key("bob")], "mark_type": 1 << 64, "enable_mark": True}
        )
        assert error["code"] == 6017
        # 100 is the limit, not beyond it.
        results = client.call(
            "conv.mark",
            {"convs": [_key(f"u{i}") for i in range(100)], "mark_type": 1, "enable_mark": True},
        )
        assert len(results) == 100


def test_deleting_a_conversation_drops_its_marks(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob", GROUP))
        client.call(
            "conv.mark",
            {"convs": [_key("bob", GROUP)], "mark_type": STAR, "enable_mark": True},
        )
        client.call("conv.delete", _key("bob", GROUP))
        client.call("conv.create", _key("bob", GROUP))
        assert _marks(client, "bob", GROUP) == []
        page = client.call(
            "conv.list_by_filter", {"filter": {"conversation_list_filter_mark_type": STAR}}
        )
        assert page["conversation_list_result_conv_list"] == []
