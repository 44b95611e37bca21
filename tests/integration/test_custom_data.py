"""``conv.set_custom_data`` (TIMConvSetConversationCustomData) over the real daemon's socket:
stored in the conversation, shown in ConvInfo, an Update event per change that keeps the
list's order and the draft revision, kept across restarts, the limits and codes, and a
database from before custom data (schema 5) migrated."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from convd.store.migrations import MIGRATIONS
from support import DaemonProcess, LineClient, text_draft

C2C, GROUP = 1, 2
ERR_INVALID_CONVERSATION = 6004
ERR_INVALID_PARAMETERS = 6017
ERR_SDK_GROUP_INVALID_ID = 8501
ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT = 51006


def key(conv_id: str, conv_type: int = C2C) -> dict[str, Any]:
    return {"conv_id": conv_id, "conv_type": conv_type}


def get(client: LineClient, conv_id: str, conv_type: int = C2C) -> dict[str, Any]:
    found = client.call("conv.get", {"convs": [key(conv_id, conv_type)]})
    assert len(found) == 1, found
    return dict(found[0])


def listed(client: LineClient) -> list[str]:
    page = client.call("conv.list", {"count": 1000})
    return [c["conv_id"] for c in page["conversation_list_result_conv_list"]]


def test_custom_data_is_stored_shown_and_announced(daemon: DaemonProcess) -> None:
    with daemon.client() as alice, daemon.client() as watcher:
        draft = alice.call("conv.set_draft", {**key("bob"), "draft": text_draft("hi")})
        alice.call("conv.create", key("team", GROUP))
        alice.call("conv.pin", {**key("team", GROUP), "is_pinned": True})
        assert get(alice, "bob")["conv_custom_data"] == ""
        order = listed(alice)
        subscribed = watcher.call("conv.subscribe")
        data = '{"mute_until": 1700000000, "label": "work"}'
        results = alice.call(
            "conv.set_custom_data",
            {"convs": [key("bob"), key("team", GROUP), key("nobody")], "custom_data": data},
        )
        assert results == [
            {"conv_id": "bob", "conv_type": C2C, "result_code": 0, "result_info": ""},
            {"conv_id": "team", "conv_type": GROUP, "result_code": 0, "result_info": ""},
            {
                "conv_id": "nobody",
                "conv_type": C2C,
                "result_code": ERR_INVALID_CONVERSATION,
                "result_info": "no conversation 'nobody' of that type",
            },
        ]
        bob = get(alice, "bob")
        assert bob["conv_custom_data"] == data
        # Like a pin: the conversation keeps its place and its draft revision.
        assert bob["conv_active_time"] == draft["conv_active_time"]
        assert bob["conv_draft_revision"] == draft["conv_draft_revision"]
        assert listed(alice) == order
        assert get(alice, "team", GROUP)["conv_is_pinned"] is True
        # The missing one was not created.
        assert "nobody" not in listed(alice)
        events = [watcher.next_notification()["params"] for _ in range(2)]
        assert [(e["event"], e["seq"]) for e in events] == [
            (2, subscribed["seq"] + 1),
            (2, subscribed["seq"] + 2),
        ]
        assert [e["conv_array"][0]["conv_id"] for e in events] == ["bob", "team"]
        assert {e["conv_array"][0]["conv_custom_data"] for e in events} == {data}
        assert events[0]["conv_array"][0] == bob


def test_the_same_data_again_changes_nothing_and_empty_removes_it(daemon: DaemonProcess) -> None:
    with daemon.client() as alice:
        alice.call("conv.create", key("bob"))
        alice.call("conv.set_custom_data", {"convs": [key("bob")], "custom_data": "x"})
        seq = alice.call("conv.subscribe")["seq"]
        again = alice.call("conv.set_custom_data", {"convs": [key("bob")], "custom_data": "x"})
        assert again[0]["result_code"] == 0
        removed = alice.call("conv.set_custom_data", {"convs": [key("bob")], "custom_data": ""})
        assert removed[0]["result_code"] == 0
        event = alice.next_notification()["params"]
        # No event (and no seq) for the unchanged write: the next one is the removal.
        assert (event["seq"], event["event"]) == (seq + 1, 2)
        assert event["conv_array"][0]["conv_custom_data"] == ""
        assert get(alice, "bob")["conv_custom_data"] == ""


def test_limits_and_codes(daemon: DaemonProcess) -> None:
    with daemon.client() as alice:
        alice.call("conv.create", key("bob"))
        at_limit = "é" * 128  # 256 bytes of UTF-8
        ok = alice.call("conv.set_custom_data", {"convs": [key("bob")], "custom_data": at_limit})
        assert ok[0]["result_code"] == 0
        assert get(alice, "bob")["conv_custom_data"] == at_limit
        error = alice.error(
            "conv.set_custom_data", {"convs": [key("bob")], "custom_data": at_limit + "x"}
        )
        assert error["code"] == ERR_INVALID_PARAMETERS
        assert "257 bytes" in error["data"]["detail"]
        many = [key(f"user{n}") for n in range(101)]
        error = alice.error("conv.set_custom_data", {"convs": many, "custom_data": "y"})
        assert error["code"] == ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT
        assert error["message"] == "Too many conversations in one request"
        error = alice.error("conv.set_custom_data", {"convs": [], "custom_data": "y"})
        assert error["code"] == ERR_INVALID_PARAMETERS
        error = alice.error(
            "conv.set_custom_data",
            {"convs": [key("bob"), key("@" * 49, GROUP)], "custom_data": "y"},
        )
        assert error["code"] == ERR_SDK_GROUP_INVALID_ID
        # None of the refused calls changed anything.
        assert get(alice, "bob")["conv_custom_data"] == at_limit


def test_custom_data_survives_a_restart_and_shows_in_the_sync_frame(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as alice:
        alice.call("conv.create", key("bob"))
        alice.call("conv.set_custom_data", {"convs": [key("bob")], "custom_data": "kept"})
    assert daemon.stop() == 0
    daemon.start()
    with daemon.client() as alice:
        assert get(alice, "bob")["conv_custom_data"] == "kept"
        alice.call("conv.subscribe", {"sync": True})
        start, page, finish = (alice.next_notification()["params"] for _ in range(3))
        assert (start["event"], page["event"], finish["event"]) == (3, 2, 4)
        assert page["conv_array"][0]["conv_custom_data"] == "kept"


def test_a_database_from_before_custom_data_is_migrated(short_dir: Path) -> None:
    process = DaemonProcess(short_dir)
    process.db.parent.mkdir(mode=0o700)
    with closing(sqlite3.connect(process.db, isolation_level=None)) as old:
        for target, script in enumerate(MIGRATIONS[:5], start=1):
            old.executescript(f"BEGIN; {script}; PRAGMA user_version = {target}; COMMIT;")
        old.execute("INSERT INTO account (sdk_app_id, user_id, last_seq) VALUES (0, 'alice', 1)")
        old.execute(
            "INSERT INTO conversation (account_id, conv_type, conv_id, order_key, active_time) "
            "VALUES (1, 1, 'bob', 1, 1)"
        )
        # A change recorded before custom data existed: its snapshot has no such member.
        old.execute(
            "INSERT INTO change (account_id, seq, kind, conv_type, conv_id, snapshot, origin) "
            "VALUES (1, 1, 0, 1, 'bob', ?, 'old')",
            (
                b'{"conv_type":1,"conv_id":"bob","order_key":1,"is_pinned":false,'
                b'"draft":null,"draft_revision":0,"unread_num":0}',
            ),
        )
    process.start()
    try:
        with process.client("alice") as alice:
            assert get(alice, "bob")["conv_custom_data"] == ""
            alice.call("conv.subscribe", {"since_seq": 0})
            replayed = alice.next_notification()["params"]
            assert replayed["conv_array"][0]["conv_custom_data"] == ""
            alice.call("conv.set_custom_data", {"convs": [key("bob")], "custom_data": "new"})
            assert get(alice, "bob")["conv_custom_data"] == "new"
    finally:
        assert process.stop() == 0
