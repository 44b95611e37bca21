"""conv.group_* against the real daemon: membership, limits and codes, the conv.group_event
notifications and the Update events of the conversations they change, in commit order."""

from __future__ import annotations

from typing import Any

from support import DaemonProcess, LineClient

C2C, GROUP = 1, 2


def _key(conv_id: str, conv_type: int = C2C) -> dict[str, Any]:
    return {"conv_id": conv_id, "conv_type": conv_type}


def _groups_of(client: LineClient, conv_id: str) -> list[str]:
    (info,) = client.call("conv.get", {"convs": [_key(conv_id)]})
    groups: list[str] = info["conv_conversation_group_array"]
    return groups


_V2_PREFIX = {1: "c2c_", 2: "group_"}


def _codes(results: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(_V2_PREFIX[r["conv_type"]] + r["conv_id"], r["result_code"]) for r in results]


def test_create_add_remove_rename_delete(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        for name in ("bob", "carol", "dave"):
            client.call("conv.create", _key(name))
        results = client.call(
            "conv.group_create", {"group_name": "friends", "convs": [_key("bob"), _key("zed")]}
        )
        assert _codes(results) == [("c2c_bob", 0), ("c2c_zed", 6004)]
        client.call("conv.group_create", {"group_name": "work"})
        assert client.call("conv.group_list", {}) == ["friends", "work"]
        results = client.call(
            "conv.group_add", {"group_name": "friends", "convs": [_key("carol"), _key("bob")]}
        )
        assert _codes(results) == [("c2c_carol", 0), ("c2c_bob", 0)]
        client.call("conv.group_add", {"group_name": "work", "convs": [_key("bob")]})
        assert _groups_of(client, "bob") == ["friends", "work"]
        client.call("conv.group_rename", {"old_name": "friends", "new_name": "pals"})
        assert client.call("conv.group_list", {}) == ["pals", "work"]
        assert _groups_of(client, "bob") == ["pals", "work"]
        assert _groups_of(client, "carol") == ["pals"]
        results = client.call(
            "conv.group_remove", {"group_name": "pals", "convs": [_key("bob"), _key("dave")]}
        )
        assert _codes(results) == [("c2c_bob", 0), ("c2c_dave", 0)]
        assert _groups_of(client, "bob") == ["work"]
        client.call("conv.group_delete", {"group_name": "pals"})
        assert client.call("conv.group_list", {}) == ["work"]
        assert _groups_of(client, "carol") == []
        # The conversations stay.
        assert len(client.call("conv.list", {})["conversation_list_result_conv_list"]) == 3
    daemon.stop()
    daemon.start()
    with daemon.client() as client:
        assert client.call("conv.group_list", {}) == ["work"]
        assert _groups_of(client, "bob") == ["work"]


def test_limits_and_codes(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob"))
        for n in range(20):
            client.call("conv.group_create", {"group_name": f"g{n}"})
        error = client.error("conv.group_create", {"group_name": "g20"})
        assert (error["code"], error["message"]) == (51010, "Too many conversation groups")
        client.call("conv.group_delete", {"group_name": "g19"})
        error = client.error("conv.group_create", {"group_name": "g0"})
        assert error["code"] == 6017 and "exists" in error["data"]["detail"]
        # 32 bytes of UTF-8 is the limit (not 32 characters).
        client.call("conv.group_create", {"group_name": "x" * 32})
        error = client.error("conv.group_create", {"group_name": "é" * 17})
        assert error["code"] == 51011
        error = client.error("conv.group_rename", {"old_name": "g0", "new_name": "y" * 33})
        assert error["code"] == 51011
        assert client.error("conv.group_create", {"group_name": ""})["code"] == 6017
        for method, params in (
            ("conv.group_delete", {"group_name": "nope"}),
            ("conv.group_rename", {"old_name": "nope", "new_name": "n2"}),
            ("conv.group_add", {"group_name": "nope", "convs": [_key("bob")]}),
            ("conv.group_remove", {"group_name": "nope", "convs": [_key("bob")]}),
        ):
            assert client.error(method, params)["code"] == 51009, method
        error = client.error("conv.group_rename", {"old_name": "g0", "new_name": "g1"})
        assert error["code"] == 6017
        many = [_key(f"u{i}") for i in range(101)]
        assert client.error("conv.group_add", {"group_name": "g0", "convs": many})["code"] == 51006
        assert client.error("conv.group_add", {"group_name": "g0", "convs": []})["code"] == 6017
        # A refused call changed nothing.
        assert len(client.call("conv.group_list", {})) == 20
        assert _groups_of(client, "bob") == []


def test_group_events_follow_the_updates_they_caused(daemon: DaemonProcess) -> None:
    with daemon.client() as watcher, daemon.client() as writer:
        writer.call("conv.create", _key("bob"))
        writer.call("conv.create", _key("carol"))
        subscribed = watcher.call("conv.subscribe", {})
        writer.call("conv.group_create", {"group_name": "friends", "convs": [_key("bob")]})
        writer.call("conv.group_add", {"group_name": "friends", "convs": [_key("carol")]})
        writer.call("conv.group_rename", {"old_name": "friends", "new_name": "pals"})
        writer.call("conv.group_remove", {"group_name": "pals", "convs": [_key("bob")]})
        writer.call("conv.group_delete", {"group_name": "pals"})
        writer.call("conv.group_create", {"group_name": "empty"})
        seen = []
        for _ in range(12):
            message = watcher.next_notification()
            params = message["params"]
            if message["method"] == "conv.event":
                seen.append(
                    (
                        "update",
                        params["conv_array"][0]["conv_id"],
                        params["conv_array"][0]["conv_conversation_group_array"],
                    )
                )
            else:
                assert message["method"] == "conv.group_event"
                assert params["subscription"] == subscribed["subscription"]
                names = [c["conv_id"] for c in params.get("conv_array", [])]
                seen.append((params["event"], params["group_name"], names))
        assert seen == [
            ("update", "bob", ["friends"]),
            ("created", "friends", ["bob"]),
            ("update", "carol", ["friends"]),
            ("conversations_added", "friends", ["carol"]),
            # A rename updates its conversations in list order: carol is the newer one.
            ("update", "carol", ["pals"]),
            ("update", "bob", ["pals"]),
            ("name_changed", "pals", []),
            ("update", "bob", []),
            ("conversations_deleted", "pals", ["bob"]),
            ("update", "carol", []),
            ("deleted", "pals", []),
            ("created", "empty", []),
        ]


def test_a_group_event_carries_the_seq_of_its_last_update_and_old_name(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as watcher, daemon.client() as writer:
        writer.call("conv.create", _key("bob"))
        watcher.call("conv.subscribe", {})
        writer.call("conv.group_create", {"group_name": "a", "convs": [_key("bob")]})
        update = watcher.next_notification()["params"]
        created = watcher.next_notification()["params"]
        assert created["seq"] == update["seq"]
        assert created["origin"] == update["origin"]
        writer.call("conv.group_rename", {"old_name": "a", "new_name": "b"})
        watcher.next_notification()
        renamed = watcher.next_notification()["params"]
        assert (renamed["event"], renamed["old_name"], renamed["group_name"]) == (
            "name_changed",
            "a",
            "b",
        )
        writer.call("conv.group_remove", {"group_name": "b", "convs": [_key("bob")]})
        watcher.next_notification()
        removed = watcher.next_notification()["params"]
        assert (removed["event"], removed["reason"]) == ("conversations_deleted", 0)


def test_a_resumed_subscription_replays_the_updates_not_the_group_events(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as watcher, daemon.client() as writer:
        writer.call("conv.create", _key("bob"))
        seq = watcher.call("conv.subscribe", {})["seq"]
        watcher.close()
        writer.call("conv.group_create", {"group_name": "a", "convs": [_key("bob")]})
    with daemon.client() as watcher, daemon.client() as writer:
        watcher.call("conv.subscribe", {"since_seq": seq})
        replayed = watcher.next_notification()
        assert replayed["method"] == "conv.event"
        assert replayed["params"]["conv_array"][0]["conv_conversation_group_array"] == ["a"]
        # Then live: the next group event, not the missed one.
        writer.call("conv.group_create", {"group_name": "b"})
        live = watcher.next_notification()
        assert (live["method"], live["params"]["group_name"]) == ("conv.group_event", "b")
        assert watcher.call("conv.group_list", {}) == ["a", "b"]


def test_deleting_a_conversation_takes_it_out_of_its_groups(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob"))
        client.call("conv.group_create", {"group_name": "a", "convs": [_key("bob")]})
        client.call("conv.delete", _key("bob"))
        client.call("conv.create", _key("bob"))
        assert _groups_of(client, "bob") == []
        page = client.call(
            "conv.list_by_filter", {"filter": {"conversation_list_filter_conversation_group": "a"}}
        )
        assert page["conversation_list_result_conv_list"] == []
        # The group can be deleted (nothing refers to it any more).
        client.call("conv.group_delete", {"group_name": "a"})


def test_accounts_do_not_share_groups(daemon: DaemonProcess) -> None:
    with daemon.client("alice") as alice, daemon.client("bob") as bob:
        alice.call("conv.group_create", {"group_name": "a"})
        bob.call("conv.group_create", {"group_name": "a"})
        assert bob.call("conv.group_list", {}) == ["a"]
        bob.call("conv.group_delete", {"group_name": "a"})
        assert alice.call("conv.group_list", {}) == ["a"]
