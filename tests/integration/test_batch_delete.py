"""``conv.delete_many`` (TIMConvDeleteConversationList) over the real daemon's socket: a
result per conversation, one group commit, a Del event each, and the limits and codes."""

from __future__ import annotations

from typing import Any

from support import DaemonProcess, LineClient, text_draft

C2C, GROUP = 1, 2
ERR_INVALID_CONVERSATION = 6004
ERR_SDK_NOT_LOGGED_IN = 6014
ERR_INVALID_PARAMETERS = 6017
ERR_SDK_COMM_INVALID_IDENTIFIER = 7003


def key(conv_id: str, conv_type: int = C2C) -> dict[str, Any]:
    return {"conv_id": conv_id, "conv_type": conv_type}


def ids(client: LineClient) -> list[str]:
    page = client.call("conv.list", {"count": 1000})
    return [c["conv_id"] for c in page["conversation_list_result_conv_list"]]


def writes(client: LineClient) -> int:
    return int(client.call("daemon.status")["store"]["writes"])


def test_each_conversation_gets_a_result_in_the_order_named(daemon: DaemonProcess) -> None:
    with daemon.client() as alice:
        alice.call("conv.set_draft", {**key("bob"), "draft": text_draft("hi")})
        alice.call("conv.create", key("team", GROUP))
        alice.call("conv.create", key("carol"))
        results = alice.call(
            "conv.delete_many",
            {"convs": [key("team", GROUP), key("nobody"), key("bob"), key("team", GROUP)]},
        )
        assert results == [
            {"conv_id": "team", "conv_type": GROUP, "result_code": 0, "result_info": ""},
            {
                "conv_id": "nobody",
                "conv_type": C2C,
                "result_code": ERR_INVALID_CONVERSATION,
                "result_info": "no conversation 'nobody' of that type",
            },
            {"conv_id": "bob", "conv_type": C2C, "result_code": 0, "result_info": ""},
        ]
        assert ids(alice) == ["carol"]
        assert alice.call("daemon.status")["conversations"] == 1


def test_the_whole_batch_is_one_write_with_a_del_event_per_conversation(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as alice, daemon.client() as watcher:
        for name in ("a", "b", "c"):
            alice.call("conv.create", key(name))
        subscribed = watcher.call("conv.subscribe")
        before = writes(alice)
        alice.call("conv.delete_many", {"convs": [key("a"), key("b"), key("c")]})
        # One submission to the group-commit writer, whatever the number of conversations.
        assert writes(alice) - before == 1
        events = [watcher.next_notification()["params"] for _ in range(3)]
        assert [e["event"] for e in events] == [1, 1, 1]
        assert [e["seq"] for e in events] == [subscribed["seq"] + n for n in (1, 2, 3)]
        assert [e["conv_array"] for e in events] == [[key("a")], [key("b")], [key("c")]]
        # The events were sent after the commit: a resume replays exactly them.
        with daemon.client() as late:
            late.call("conv.subscribe", {"since_seq": subscribed["seq"]})
            replayed = [late.next_notification()["params"] for _ in range(3)]
        assert [(e["seq"], e["event"], e["conv_array"]) for e in replayed] == [
            (e["seq"], e["event"], e["conv_array"]) for e in events
        ]


def test_a_conversation_deleted_in_a_batch_and_created_again_starts_above_its_revision(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as alice:
        alice.call("conv.set_draft", {**key("bob"), "draft": text_draft("one")})
        old = alice.call("conv.set_draft", {**key("bob"), "draft": text_draft("two")})
        assert old["conv_draft_revision"] == 2
        alice.call("conv.delete_many", {"convs": [key("bob")]})
        again = alice.call("conv.create", key("bob"))
        assert again["conv_draft_revision"] > old["conv_draft_revision"]


def test_more_than_100_or_none_is_invalid_parameters_and_deletes_nothing(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as alice:
        convs = [key(f"user{n}") for n in range(101)]
        for conv in convs:
            alice.call("conv.create", conv)
        error = alice.error("conv.delete_many", {"convs": convs})
        assert error["code"] == ERR_INVALID_PARAMETERS
        assert "at most 100" in error["data"]["detail"]
        assert len(ids(alice)) == 101
        assert alice.error("conv.delete_many", {"convs": []})["code"] == ERR_INVALID_PARAMETERS
        # Exactly 100 is allowed.
        results = alice.call("conv.delete_many", {"convs": convs[:100]})
        assert [r["result_code"] for r in results] == [0] * 100
        assert ids(alice) == ["user100"]


def test_an_invalid_id_fails_the_call_before_anything_is_deleted(daemon: DaemonProcess) -> None:
    with daemon.client() as alice:
        alice.call("conv.create", key("bob"))
        error = alice.error("conv.delete_many", {"convs": [key("bob"), key("x" * 33)]})
        assert error["code"] == ERR_SDK_COMM_INVALID_IDENTIFIER
        assert ids(alice) == ["bob"]
        error = alice.error("conv.delete_many", {"convs": [key("bob"), {"conv_id": "bob"}]})
        assert error["code"] == -32602
        assert ids(alice) == ["bob"]


def test_before_login_and_across_accounts(daemon: DaemonProcess) -> None:
    with daemon.client(None) as anonymous:
        error = anonymous.error("conv.delete_many", {"convs": [key("bob")]})
        assert error["code"] == ERR_SDK_NOT_LOGGED_IN
    with daemon.client("alice") as alice, daemon.client("mallory") as mallory:
        alice.call("conv.create", key("bob"))
        results = mallory.call("conv.delete_many", {"convs": [key("bob")]})
        assert results[0]["result_code"] == ERR_INVALID_CONVERSATION
        assert ids(alice) == ["bob"]
