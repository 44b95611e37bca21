"""Each method of the contract against the real daemon: results, errors and bounds."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest

from convd_schemas import ConvInfo, DaemonStatus, __version__
from convd_schemas.limits import MAX_GET_CONVS, MAX_PAGE_SIZE, MAX_PINNED
from support import DaemonProcess, LineClient, text_draft

C2C, GROUP = 1, 2
INVALID_PARAMS = -32602

#: TIMConvSetDraft's json_draft_param, exactly as the SDK page prints it.
SPEC_DRAFT_JSON = """{
   "draft_edit_time" : 1551271429,
   "draft_msg" : {
      "message_elem_array" : [
         {
            "elem_type" : 0,
            "text_elem_content" : "this draft"
         }
      ]
   },
   "draft_user_define" : "this is userdefine"
}"""


def _key(conv_id: str, conv_type: int = C2C) -> dict[str, Any]:
    return {"conv_id": conv_id, "conv_type": conv_type}


def _ids(page: dict[str, Any]) -> list[str]:
    return [c["conv_id"] for c in page["conversation_list_result_conv_list"]]


def _batch(client: LineClient, requests: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Send requests as one batch; return their results (raising on any error)."""
    batch = [
        {"jsonrpc": "2.0", "method": method, "params": params, "id": n}
        for n, (method, params) in enumerate(requests)
    ]
    client.send_json(batch)
    replies = client.read_json()
    assert [r["id"] for r in replies] == list(range(len(requests)))
    errors = [r["error"] for r in replies if "error" in r]
    assert not errors, errors
    return [r["result"] for r in replies]


# -- session ---------------------------------------------------------------------------------


def test_login_logout(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        assert client.call("session.login", {"user_id": "alice"}) == {
            "user_id": "alice",
            "sdk_app_id": 0,
        }
        assert client.call("session.login", {"user_id": "bob", "sdk_app_id": 1400000123}) == {
            "user_id": "bob",
            "sdk_app_id": 1400000123,
        }
        assert client.call("conv.list")["conversation_list_result_conv_list"] == []
        assert client.call("session.logout") == {}
        assert client.error("conv.list")["code"] == 6014
        for bad in ("", "x" * 33, "caf\u00e9", "a\nb"):
            assert client.error("session.login", {"user_id": bad})["code"] == 7003
        assert client.error("conv.list")["code"] == 6014


# -- conv.create -----------------------------------------------------------------------------


def test_create_returns_a_conv_info(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        info = client.call("conv.create", _key("Windows-02"))
        # Every ConvInfo member; conv_draft only when there is a draft.
        assert set(info) == {f.encode_name for f in msgspec.structs.fields(ConvInfo)} - {
            "conv_draft"
        }
        assert info["conv_id"] == "Windows-02" and info["conv_type"] == C2C
        assert info["conv_owner"] == "" and info["conv_unread_num"] == 0
        assert info["conv_active_time"] > 0
        assert info["conv_is_has_draft"] is False and info["conv_is_pinned"] is False
        assert info["conv_draft_revision"] == 0
        group = client.call("conv.create", _key("Windows-Group-01", GROUP))
        assert (group["conv_id"], group["conv_type"]) == ("Windows-Group-01", GROUP)
        assert group["conv_active_time"] > info["conv_active_time"]


def test_create_existing_returns_it_unchanged(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.set_draft", {**_key("bob"), "draft": text_draft("keep me")})
        client.call("conv.create", _key("carol"))
        before = client.call("conv.get", {"convs": [_key("bob")]})[0]
        seq = client.call("conv.subscribe")["seq"]
        again = client.call("conv.create", _key("bob"))
        assert again == before
        assert again["conv_draft"]["draft_msg"]["message_elem_array"][0] == {
            "elem_type": 0,
            "text_elem_content": "keep me",
        }
        assert _ids(client.call("conv.list")) == ["carol", "bob"]  # not activated
        assert client.call("conv.subscribe")["seq"] == seq  # nothing committed
        assert client.notifications == []


# -- conv.delete -----------------------------------------------------------------------------


def test_delete_removes_the_conversation_and_its_draft(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.set_draft", {**_key("bob"), "draft": text_draft("secret")})
        client.call("conv.create", _key("bob", GROUP))
        assert client.call("conv.delete", _key("bob")) == {}
        assert client.call("conv.get", {"convs": [_key("bob")]}) == []
        assert _ids(client.call("conv.list")) == ["bob"]  # the group of the same id stays
        recreated = client.call("conv.create", _key("bob"))
        assert recreated["conv_is_has_draft"] is False and "conv_draft" not in recreated
        assert recreated["conv_draft_revision"] == 2  # above the deleted one's 1


def test_revisions_survive_delete_and_recreate(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        for text in ("v1", "v2", "v3"):
            held = client.call("conv.set_draft", {**_key("bob"), "draft": text_draft(text)})
        assert held["conv_draft_revision"] == 3  # what a stale window still holds
        client.call("conv.delete", _key("bob"))
        # 0 still means "create only if absent".
        created = client.call(
            "conv.set_draft", {**_key("bob"), "draft": text_draft("new"), "if_revision": 0}
        )
        assert created["conv_draft_revision"] == 5
        stale = {**_key("bob"), "draft": text_draft("stale"), "if_revision": 3}
        assert client.error("conv.set_draft", stale)["code"] == 90001
        client.call("conv.delete", _key("bob"))
    daemon.stop()
    daemon.start()  # what is kept of deleted conversations is in the database
    with daemon.client() as client:
        again = client.call("conv.create", _key("bob"))
        assert again["conv_draft_revision"] == 6
        for revision in range(6):
            stale = {**_key("bob"), "draft": text_draft("stale"), "if_revision": revision}
            assert client.error("conv.set_draft", stale)["code"] == 90001
        # Other conversations, and the same id in another account, start at 0 as ever.
        assert client.call("conv.create", _key("carol"))["conv_draft_revision"] == 0
    with daemon.client("zoe") as other:
        assert other.call("conv.create", _key("bob"))["conv_draft_revision"] == 0


def test_delete_unknown_is_6004(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        assert client.error("conv.delete", _key("nobody"))["code"] == 6004
        client.call("conv.create", _key("bob"))
        client.call("conv.delete", _key("bob"))
        assert client.error("conv.delete", _key("bob"))["code"] == 6004
        assert client.error("conv.delete", _key("bob", GROUP))["code"] == 6004


# -- conv.list -------------------------------------------------------------------------------


def test_list_pages_with_next_seq_until_finished(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        _batch(client, [("conv.create", _key(f"user{n:02}")) for n in range(23)])
        _batch(client, [("conv.pin", {**_key(f"user{n:02}"), "is_pinned": True}) for n in (4, 9)])
        full = client.call("conv.list", {"count": MAX_PAGE_SIZE})
        assert full["conversation_list_result_is_finished"] is True
        assert len(_ids(full)) == 23
        seen: list[str] = []
        cursor, finished, sizes = 0, False, []
        while not finished:
            page = client.call("conv.list", {"next_seq": cursor, "count": 5})
            sizes.append(len(_ids(page)))
            seen += _ids(page)
            cursor = page["conversation_list_result_next_seq"]
            finished = page["conversation_list_result_is_finished"]
        assert sizes == [5, 5, 5, 5, 3]
        assert seen == _ids(full)
        # The default page size is 100: everything here in one page.
        assert _ids(client.call("conv.list")) == _ids(full)
        assert _ids(client.call("conv.list", {"next_seq": 0})) == _ids(full)


def test_list_page_that_ends_exactly_is_finished(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        _batch(client, [("conv.create", _key(f"u{n}")) for n in range(4)])
        first = client.call("conv.list", {"count": 2})
        assert first["conversation_list_result_is_finished"] is False
        second = client.call(
            "conv.list", {"count": 2, "next_seq": first["conversation_list_result_next_seq"]}
        )
        assert second["conversation_list_result_is_finished"] is True
        assert len(_ids(second)) == 2
        empty = client.call("conv.list", {"count": 1, "next_seq": 1})
        assert empty["conversation_list_result_conv_list"] == []
        assert empty["conversation_list_result_is_finished"] is True


def test_list_count_is_bounded(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        for count in (0, -1, MAX_PAGE_SIZE + 1, 10**9):
            assert client.error("conv.list", {"count": count})["code"] == INVALID_PARAMS
        for count in (1, MAX_PAGE_SIZE):
            assert (
                client.call("conv.list", {"count": count})["conversation_list_result_conv_list"]
                == []
            )
        assert client.error("conv.list", {"count": "10"})["code"] == INVALID_PARAMS
        assert client.error("conv.list", {"next_seq": -1})["code"] == INVALID_PARAMS


# -- conv.get --------------------------------------------------------------------------------


def test_get_leaves_unknown_out(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob"))
        client.call("conv.create", _key("team", GROUP))
        found = client.call(
            "conv.get",
            {"convs": [_key("team", GROUP), _key("nobody"), _key("bob"), _key("bob", GROUP)]},
        )
        assert [(c["conv_id"], c["conv_type"]) for c in found] == [("team", GROUP), ("bob", C2C)]
        listed = client.call("conv.list")["conversation_list_result_conv_list"]
        assert sorted(found, key=json.dumps) == sorted(listed, key=json.dumps)
        assert client.call("conv.get", {"convs": [_key("nobody")]}) == []


def test_get_is_bounded(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        keys = [_key(f"u{n}") for n in range(MAX_GET_CONVS + 1)]
        assert client.call("conv.get", {"convs": keys[:MAX_GET_CONVS]}) == []
        assert client.error("conv.get", {"convs": keys})["code"] == INVALID_PARAMS
        assert client.error("conv.get", {"convs": []})["code"] == INVALID_PARAMS
        assert client.error("conv.get", {})["code"] == INVALID_PARAMS
        bad_key = {"conv_id": "u", "conv_type": 1, "extra": True}
        assert client.error("conv.get", {"convs": [bad_key]})["code"] == INVALID_PARAMS
        assert client.error("conv.get", {"convs": [_key("x" * 33)]})["code"] == 7003


# -- conv.set_draft --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conv_id", "conv_type"), [("Windows-02", C2C), ("Windows-Group-01", GROUP)]
)
def test_set_draft_with_the_sdk_example(
    daemon: DaemonProcess, conv_id: str, conv_type: int
) -> None:
    draft = json.loads(SPEC_DRAFT_JSON)
    with daemon.client() as client:
        request = {"conv_id": conv_id, "conv_type": conv_type, "draft": draft}
        info = client.call("conv.set_draft", request)
        assert info["conv_id"] == conv_id and info["conv_type"] == conv_type
        assert info["conv_is_has_draft"] is True
        assert info["conv_draft"] == draft
        assert info["conv_draft_revision"] == 1
        (stored,) = client.call("conv.get", {"convs": [_key(conv_id, conv_type)]})
        assert stored == info
        assert _ids(client.call("conv.list")) == [conv_id]
    with daemon.client() as other:  # a new connection of the same account sees it
        (seen,) = other.call("conv.get", {"convs": [_key(conv_id, conv_type)]})
        assert seen["conv_draft"] == draft


def test_set_draft_refuses_non_text_elements(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob"))
        for elem_type in (1, 2, 3, 4, 12, -1):
            draft = {
                "draft_msg": {
                    "message_elem_array": [
                        {"elem_type": 0, "text_elem_content": "fine"},
                        {"elem_type": elem_type},
                    ]
                }
            }
            error = client.error("conv.set_draft", {**_key("bob"), "draft": draft})
            assert error["code"] == 6016  # ERR_INVALID_MSG_ELEM
            assert "drafts hold text only" in error["data"]["detail"]
            assert f"elem_type {elem_type}" in error["data"]["detail"]
        # An image element as an app builds it: its keys are not refused, its type is.
        image = {"elem_type": 1, "image_elem_orig_path": "/tmp/a.png", "image_elem_level": 0}
        draft = {"draft_msg": {"message_elem_array": [image]}}
        assert client.error("conv.set_draft", {**_key("bob"), "draft": draft})["code"] == 6016
        missing = {"draft_msg": {"message_elem_array": [{"elem_type": 0}]}}
        assert client.error("conv.set_draft", {**_key("bob"), "draft": missing})["code"] == 6016
        (bob,) = client.call("conv.get", {"convs": [_key("bob")]})
        assert bob["conv_is_has_draft"] is False and bob["conv_draft_revision"] == 0
        assert client.call("conv.get", {"convs": [_key("never")]}) == []
        refused = client.error("conv.set_draft", {**_key("never"), "draft": missing})
        assert refused["code"] == 6016
        assert client.call("conv.get", {"convs": [_key("never")]}) == []


def test_draft_msg_is_a_whole_sdk_message(daemon: DaemonProcess) -> None:
    """An app passes a Message it built: its other keys are accepted and ignored."""
    message = {
        "message_conv_id": "bob",
        "message_conv_type": 1,
        "message_sender": "alice",
        "message_priority": 1,
        "message_client_time": 1551271429,
        "message_is_from_self": True,
        "message_status": 1,
        "message_custom_str": "local",
        "message_elem_array": [
            {"elem_type": 0, "text_elem_content": "this draft", "text_elem_extra": "x"}
        ],
    }
    with daemon.client() as client:
        draft = {"draft_msg": message, "draft_user_define": "ud", "draft_edit_time": 5}
        info = client.call("conv.set_draft", {**_key("bob"), "draft": draft})
        # Only the element array (text and type) is kept.
        assert info["conv_draft"] == text_draft("this draft", user_define="ud", edit_time=5)
        assert client.call("conv.get", {"convs": [_key("bob")]}) == [info]
        # The Draft object itself has exactly the SDK's three keys: a typo is still refused.
        for typo in (
            {**draft, "draft_usre_define": "typo"},
            {"draft_msg": message, "draft_edit_tim": 5},
        ):
            error = client.error("conv.set_draft", {**_key("bob"), "draft": typo})
            assert error["code"] == INVALID_PARAMS
            assert "draft_usre_define" in json.dumps(error) or "draft_edit_tim" in json.dumps(error)
        # Wrong types inside the Message's kept keys are still refused.
        bad = {"draft_msg": {**message, "message_elem_array": [{"elem_type": "text"}]}}
        assert client.error("conv.set_draft", {**_key("bob"), "draft": bad})["code"] == (
            INVALID_PARAMS
        )
        assert client.call("conv.get", {"convs": [_key("bob")]}) == [info]


def test_draft_text_over_the_message_body_limit_is_8001(daemon: DaemonProcess) -> None:
    limit = 12 * 1024  # the SDK's message body limit, in UTF-8 bytes of all text elements
    with daemon.client() as client:
        # "你" is 3 bytes of UTF-8: 4096 of them over two elements are exactly the limit.
        at_limit = text_draft("你" * 2048, "你" * 2048)
        info = client.call("conv.set_draft", {**_key("bob"), "draft": at_limit})
        assert info["conv_draft"]["draft_msg"] == at_limit["draft_msg"]
        seq = client.call("conv.subscribe")["seq"]
        for too_big in (
            text_draft("你" * 2048, "你" * 2048, "!"),  # one byte over, across elements
            text_draft("x" * (limit + 1)),
            text_draft("x" * (200 * 1024)),  # far over: still 8001, not a schema error
        ):
            error = client.error("conv.set_draft", {**_key("bob"), "draft": too_big})
            assert error["code"] == 8001, error
            assert str(limit) in error["data"]["detail"]
            assert client.error("conv.set_draft", {**_key("new"), "draft": too_big})["code"] == (
                8001
            )
        assert client.call("conv.get", {"convs": [_key("bob")]}) == [info]  # nothing written
        assert client.call("conv.get", {"convs": [_key("new")]}) == []
        assert client.call("conv.subscribe")["seq"] == seq
        # The user define is not part of the message body: as V2 stores it (text in both), a
        # text at the limit is accepted.
        v2_style = text_draft("y" * limit, user_define="y" * limit)
        assert client.call("conv.set_draft", {**_key("bob"), "draft": v2_style})[
            "conv_is_has_draft"
        ]


def test_conv_info_carries_the_sdks_local_keys(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        created = client.call("conv.create", _key("bob"))
        drafted = client.call("conv.set_draft", {**_key("team", GROUP), "draft": text_draft("x")})
        listed = client.call("conv.list")["conversation_list_result_conv_list"]
        got = client.call("conv.get", {"convs": [_key("bob"), _key("team", GROUP)]})
        for info in (created, drafted, *listed, *got):
            assert info["conv_show_name"] == info["conv_id"]  # nothing else is known
            assert info["conv_recv_opt"] == 0
            assert info["conv_mark_array"] == []
            assert info["conv_custom_data"] == ""
            assert info["conv_conversation_group_array"] == []
            msgspec.convert(info, ConvInfo)  # and it is the contract's ConvInfo
        client.call("conv.subscribe")
        client.call("conv.set_draft", {**_key("bob"), "draft": text_draft("y")})
        event = client.next_notification()["params"]
        assert event["conv_array"][0]["conv_show_name"] == "bob"


def test_set_draft_fills_edit_time_with_now(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        before = int(time.time())
        info = client.call("conv.set_draft", {**_key("bob"), "draft": text_draft("hi")})
        after = int(time.time())
        assert before <= info["conv_draft"]["draft_edit_time"] <= after
        info = client.call("conv.set_draft", {**_key("bob"), "draft": text_draft("x", edit_time=7)})
        assert info["conv_draft"]["draft_edit_time"] == 7


def test_set_draft_creates_unknown_conversation(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("old"))
        info = client.call("conv.set_draft", {**_key("new", GROUP), "draft": text_draft("hello")})
        assert info["conv_draft_revision"] == 1 and info["conv_is_has_draft"] is True
        assert _ids(client.call("conv.list")) == ["new", "old"]


def test_empty_draft_clears(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        empties: list[dict[str, Any]] = [
            text_draft(""),  # V2: empty text clears
            text_draft("", ""),
            text_draft(),
            {},
            {"draft_msg": {}},
            {"draft_user_define": "", "draft_edit_time": 5},
        ]
        revision = 0
        for empty in empties:
            set_info = client.call("conv.set_draft", {**_key("bob"), "draft": text_draft("x")})
            assert set_info["conv_draft_revision"] == revision + 1
            cleared = client.call("conv.set_draft", {**_key("bob"), "draft": empty})
            assert cleared["conv_is_has_draft"] is False and "conv_draft" not in cleared
            assert cleared["conv_draft_revision"] == revision + 2
            revision += 2
        (bob,) = client.call("conv.get", {"convs": [_key("bob")]})
        assert bob["conv_is_has_draft"] is False
        # Text or user data alone is a draft.
        only_data = client.call(
            "conv.set_draft", {**_key("bob"), "draft": text_draft(user_define="d")}
        )
        assert only_data["conv_is_has_draft"] is True
        assert only_data["conv_draft"]["draft_msg"]["message_elem_array"] == []


def test_identical_draft_changes_nothing(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        draft = json.loads(SPEC_DRAFT_JSON)
        first = client.call("conv.set_draft", {**_key("bob"), "draft": draft})
        client.call("conv.create", _key("carol"))
        seq = client.call("conv.subscribe")["seq"]
        draft["draft_edit_time"] = 1700000000  # only the edit time differs: not a change
        again = client.call("conv.set_draft", {**_key("bob"), "draft": draft})
        assert again == first
        assert client.call("conv.get", {"convs": [_key("bob")]}) == [first]
        assert _ids(client.call("conv.list")) == ["carol", "bob"]
        assert client.call("conv.subscribe")["seq"] == seq
        assert client.notifications == []


def test_draft_revision_and_if_revision(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        assert client.call("conv.create", _key("bob"))["conv_draft_revision"] == 0
        revisions = [
            client.call("conv.set_draft", {**_key("bob"), "draft": text_draft(t)})[
                "conv_draft_revision"
            ]
            for t in ("a", "b", "b", "c")
        ]
        assert revisions == [1, 2, 2, 3]
        before = client.call("conv.get", {"convs": [_key("bob")]})[0]
        seq = client.call("conv.subscribe")["seq"]
        stale = {**_key("bob"), "draft": text_draft("lost"), "if_revision": 2}
        error = client.error("conv.set_draft", stale)
        assert error["code"] == 90001
        assert error["data"] == before  # the current ConvInfo, to merge against
        assert client.error("conv.cancel_draft", {**_key("bob"), "if_revision": 0})["code"] == 90001
        assert client.call("conv.get", {"convs": [_key("bob")]}) == [before]
        assert client.call("conv.subscribe")["seq"] == seq
        fresh = {**_key("bob"), "draft": text_draft("won"), "if_revision": 3}
        assert client.call("conv.set_draft", fresh)["conv_draft_revision"] == 4
        cancelled = client.call("conv.cancel_draft", {**_key("bob"), "if_revision": 4})
        assert cancelled["conv_draft_revision"] == 5
        # A conversation that does not exist has revision 0.
        error = client.error(
            "conv.set_draft", {**_key("new"), "draft": text_draft("x"), "if_revision": 1}
        )
        assert error["code"] == 90001 and error["data"] is None
        assert client.call("conv.get", {"convs": [_key("new")]}) == []
        created = client.call(
            "conv.set_draft", {**_key("new"), "draft": text_draft("x"), "if_revision": 0}
        )
        assert created["conv_draft_revision"] == 1
        assert (
            client.error("conv.set_draft", {**_key("new"), "draft": {}, "if_revision": -1})["code"]
            == INVALID_PARAMS
        )


def test_draft_texts_and_user_define_round_trip(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        texts = ["line one", "", "\u4f60\u597d \U0001f600", '{"json": "as text"}']
        draft = text_draft(*texts, user_define='{"reply_to": 42}', edit_time=1551271429)
        info = client.call("conv.set_draft", {**_key("bob"), "draft": draft})
        assert info["conv_draft"] == draft


# -- conv.cancel_draft -----------------------------------------------------------------------


def test_cancel_draft(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.set_draft", {**_key("bob"), "draft": text_draft("hi")})
        client.call("conv.create", _key("carol"))
        cancelled = client.call("conv.cancel_draft", _key("bob"))
        assert cancelled["conv_is_has_draft"] is False and "conv_draft" not in cancelled
        assert cancelled["conv_draft_revision"] == 2
        assert client.call("conv.get", {"convs": [_key("bob")]}) == [cancelled]
        assert _ids(client.call("conv.list")) == ["carol", "bob"]  # not activated
        # Cancelling when there is no draft changes nothing.
        assert client.call("conv.cancel_draft", _key("bob")) == cancelled
        assert client.error("conv.cancel_draft", _key("nobody"))["code"] == 6004


# -- conv.pin --------------------------------------------------------------------------------


def test_pin_up_to_50(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        _batch(client, [("conv.create", _key(f"u{n:02}")) for n in range(MAX_PINNED + 1)])
        results = _batch(
            client,
            [("conv.pin", {**_key(f"u{n:02}"), "is_pinned": True}) for n in range(MAX_PINNED)],
        )
        assert results == [{}] * MAX_PINNED
        error = client.error("conv.pin", {**_key(f"u{MAX_PINNED:02}"), "is_pinned": True})
        assert error["code"] == 90002
        # Pinning a pinned one again is fine (nothing changes).
        assert client.call("conv.pin", {**_key("u00"), "is_pinned": True}) == {}
        client.call("conv.pin", {**_key("u00"), "is_pinned": False})
        client.call("conv.pin", {**_key(f"u{MAX_PINNED:02}"), "is_pinned": True})
        listed = client.call("conv.list")["conversation_list_result_conv_list"]
        pinned = {c["conv_id"] for c in listed if c["conv_is_pinned"]}
        assert len(pinned) == MAX_PINNED and "u00" not in pinned
        assert client.error("conv.pin", {**_key("nobody"), "is_pinned": True})["code"] == 6004
        assert client.error("conv.pin", _key("u01"))["code"] == INVALID_PARAMS


# -- identifiers -----------------------------------------------------------------------------


BAD_IDS = [
    ("", C2C, 6017),
    ("", GROUP, 6017),
    ("x" * 33, C2C, 7003),
    ("caf\u00e9", C2C, 7003),
    ("tab\there", C2C, 7003),
    ("g" * 49, GROUP, 8501),
    ("gr\u00fcppe", GROUP, 8501),
    ("bell\x07", GROUP, 8501),
]


def test_ids_are_validated_by_every_method(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        for conv_id, conv_type, code in BAD_IDS:
            key = _key(conv_id, conv_type)
            calls: list[tuple[str, dict[str, Any]]] = [
                ("conv.create", key),
                ("conv.delete", key),
                ("conv.set_draft", {**key, "draft": text_draft("x")}),
                ("conv.cancel_draft", key),
                ("conv.pin", {**key, "is_pinned": True}),
                ("conv.get", {"convs": [key]}),
            ]
            for method, params in calls:
                error = client.error(method, params)
                assert error["code"] == code, (method, conv_id, error)
        assert client.call("conv.list")["conversation_list_result_conv_list"] == []
        for conv_id, conv_type in (("x" * 32, C2C), ("g" * 48, GROUP), (" ~", C2C)):
            assert client.call("conv.create", _key(conv_id, conv_type))["conv_id"] == conv_id
        assert client.error("conv.create", _key("bob", 3))["code"] == INVALID_PARAMS
        assert client.error("conv.create", {"conv_id": 5, "conv_type": 1})["code"] == INVALID_PARAMS


# -- daemon.status ---------------------------------------------------------------------------


def test_daemon_status(daemon: DaemonProcess) -> None:
    assert daemon.process is not None
    with daemon.client(user=None) as anonymous, daemon.client() as alice:
        alice.call("conv.create", _key("a"))
        alice.call("conv.create", _key("b", GROUP))
        with daemon.client("bob") as bob:
            bob.call("conv.create", _key("a"))
            status = anonymous.call("daemon.status")
            assert set(status) == {f.encode_name for f in msgspec.structs.fields(DaemonStatus)}
            assert set(status) >= {
                "version",
                "pid",
                "uptime_seconds",
                "connections",
                "socket_path",
                "database_path",
                "conversations",
            }
            assert status["version"] == __version__
            assert status["pid"] == daemon.process.pid
            assert 0 <= status["uptime_seconds"] < 60
            assert status["connections"] == 3
            assert status["socket_path"] == str(daemon.socket)
            assert status["database_path"] == str(daemon.db)
            assert status["conversations"] == 3
        # bob's connection closes asynchronously: wait for the daemon to notice.
        deadline = time.monotonic() + 5
        while (later := anonymous.call("daemon.status", {}))["connections"] != 2:
            assert time.monotonic() < deadline, later
            time.sleep(0.01)
        assert later["uptime_seconds"] >= status["uptime_seconds"]
        assert later["conversations"] == 3
