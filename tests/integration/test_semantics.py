"""Cross-method rules against the real daemon: login, accounts, order, revisions, change seq."""

from __future__ import annotations

import sqlite3
from typing import Any

from convd_schemas import METHODS
from support import DaemonProcess, LineClient, text_draft

C2C, GROUP = 1, 2
PINNED_BIT = 1 << 62


def _key(conv_id: str, conv_type: int = C2C) -> dict[str, Any]:
    return {"conv_id": conv_id, "conv_type": conv_type}


def _list(client: LineClient) -> list[dict[str, Any]]:
    page = client.call("conv.list", {"count": 1000})
    assert page["conversation_list_result_is_finished"] is True
    conversations: list[dict[str, Any]] = page["conversation_list_result_conv_list"]
    return conversations


def _order(client: LineClient) -> list[str]:
    return [c["conv_id"] for c in _list(client)]


def _seq(client: LineClient) -> int:
    """The account's change sequence, as a new subscription reports it."""
    result = client.call("conv.subscribe")
    client.call("conv.unsubscribe", {"subscription": result["subscription"]})
    seq: int = result["seq"]
    return seq


#: Valid params for every method that needs a login, so that only the login is missing.
LOGIN_REQUIRED: dict[str, dict[str, Any]] = {
    "conv.create": _key("bob"),
    "conv.delete": _key("bob"),
    "conv.list": {"count": 10},
    "conv.get": {"convs": [_key("bob")]},
    "conv.set_draft": {**_key("bob"), "draft": text_draft("hi")},
    "conv.cancel_draft": _key("bob"),
    "conv.pin": {**_key("bob"), "is_pinned": True},
    "conv.delete_many": {"convs": [_key("bob")]},
    "conv.set_custom_data": {"convs": [_key("bob")], "custom_data": "x"},
    "conv.draft_history": _key("bob"),
    "conv.restore_draft": {**_key("bob"), "revision": 1},
    "conv.mark": {"convs": [_key("bob")], "mark_type": 1, "enable_mark": True},
    "conv.list_by_filter": {"filter": {"conversation_list_filter_mark_type": 1}},
    "conv.group_create": {"group_name": "g"},
    "conv.group_list": {},
    "conv.group_delete": {"group_name": "g"},
    "conv.group_rename": {"old_name": "g", "new_name": "h"},
    "conv.group_add": {"group_name": "g", "convs": [_key("bob")]},
    "conv.group_remove": {"group_name": "g", "convs": [_key("bob")]},
    "conv.subscribe": {},
    "conv.unsubscribe": {"subscription": 1},
}


def test_login_required_table_covers_the_contract() -> None:
    assert set(LOGIN_REQUIRED) == {s.name for s in METHODS if s.requires_login}
    assert set(LOGIN_REQUIRED) == {s.name for s in METHODS if s.name.startswith("conv.")}


def test_every_conv_method_before_login_is_6014(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        for method, params in LOGIN_REQUIRED.items():
            error = client.error(method, params)
            assert error["code"] == 6014, (method, error)
            assert error["message"] == "Not logged in"
            assert "session.login" in error["data"]["detail"]
            # Even with params that are wrong: the login is checked first.
            assert client.error(method, {"bogus": 1})["code"] == 6014
        # Nothing was written: the same account, once logged in, has nothing.
        client.call("session.login", {"user_id": "alice"})
        assert _list(client) == []
        assert _seq(client) == 0
        client.call("session.logout")
        for method, params in LOGIN_REQUIRED.items():
            assert client.error(method, params)["code"] == 6014, method
        assert "result" in client.request("daemon.status")
        assert "result" in client.request("rpc.discover")


def test_login_is_per_connection(daemon: DaemonProcess) -> None:
    with daemon.client() as alice, daemon.client(user=None) as anonymous:
        alice.call("conv.create", _key("bob"))
        assert anonymous.error("conv.list")["code"] == 6014


def test_accounts_never_see_each_other(daemon: DaemonProcess) -> None:
    with (
        daemon.client("alice") as alice,
        daemon.client("bob") as bob,
        daemon.client(user=None) as alice_other_app,
    ):
        alice_other_app.call("session.login", {"user_id": "alice", "sdk_app_id": 1400000001})
        watching = {c: c.call("conv.subscribe")["subscription"] for c in (bob, alice_other_app)}
        alice.call("conv.set_draft", {**_key("carol"), "draft": text_draft("alice's secret")})
        alice.call("conv.pin", {**_key("carol"), "is_pinned": True})
        alice.call("conv.create", _key("team", GROUP))
        for other in (bob, alice_other_app):
            assert _list(other) == []
            assert other.call("conv.get", {"convs": [_key("carol"), _key("team", GROUP)]}) == []
            assert other.error("conv.delete", _key("carol"))["code"] == 6004
            assert other.error("conv.cancel_draft", _key("carol"))["code"] == 6004
            assert other.error("conv.pin", {**_key("carol"), "is_pinned": False})["code"] == 6004
            assert _seq(other) == 0
            # The same ids are independent conversations in each account.
            mine = other.call("conv.create", _key("carol"))
            assert mine["conv_is_has_draft"] is False and mine["conv_is_pinned"] is False
            other.call("conv.set_draft", {**_key("carol"), "draft": text_draft("other")})
        (carol,) = alice.call("conv.get", {"convs": [_key("carol")]})
        text = carol["conv_draft"]["draft_msg"]["message_elem_array"][0]["text_elem_content"]
        assert text == "alice's secret" and carol["conv_is_pinned"] is True
        assert carol["conv_draft_revision"] == 1
        assert _order(alice) == ["carol", "team"]
        assert _seq(alice) == 3 and _seq(bob) == 2 and _seq(alice_other_app) == 2
        bob.call("conv.delete", _key("carol"))
        assert len(alice.call("conv.get", {"convs": [_key("carol")]})) == 1
        # Events too: each subscriber saw its own account's changes only (Add, Update, Del
        # for bob; Add, Update for alice of the other app), all sent before those replies.
        for other, kinds in ((bob, [0, 2, 1]), (alice_other_app, [0, 2])):
            events = [n["params"] for n in other.notifications]
            assert [e["subscription"] for e in events] == [watching[other]] * len(kinds)
            assert [e["event"] for e in events] == kinds
            assert [e["seq"] for e in events] == list(range(1, len(kinds) + 1))


def test_switching_account_on_one_connection(daemon: DaemonProcess) -> None:
    with daemon.client("alice") as client:
        client.call("conv.create", _key("for-alice"))
        client.call("session.login", {"user_id": "bob"})
        assert _order(client) == []
        client.call("session.login", {"user_id": "alice"})
        assert _order(client) == ["for-alice"]


# -- order -----------------------------------------------------------------------------------


def test_list_is_pinned_first_then_most_recently_activated(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        for name in ("a", "b", "c", "d"):
            client.call("conv.create", _key(name))
        assert _order(client) == ["d", "c", "b", "a"]  # create activates
        client.call("conv.set_draft", {**_key("b"), "draft": text_draft("x")})
        assert _order(client) == ["b", "d", "c", "a"]  # setting a draft activates
        client.call("conv.set_draft", {**_key("a"), "draft": text_draft("y")})
        assert _order(client) == ["a", "b", "d", "c"]
        client.call("conv.cancel_draft", _key("b"))
        assert _order(client) == ["a", "b", "d", "c"]  # clearing does not
        client.call("conv.set_draft", {**_key("a"), "draft": text_draft("")})
        assert _order(client) == ["a", "b", "d", "c"]  # nor does clearing by empty text
        client.call("conv.set_draft", {**_key("c"), "draft": text_draft("z")})
        client.call("conv.set_draft", {**_key("b"), "draft": text_draft("w")})
        assert _order(client) == ["b", "c", "a", "d"]
        client.call("conv.set_draft", {**_key("c"), "draft": text_draft("z")})
        assert _order(client) == ["b", "c", "a", "d"]  # an identical draft does not
        client.call("conv.create", _key("d"))
        assert _order(client) == ["b", "c", "a", "d"]  # nor does creating an existing one
        client.call("conv.pin", {**_key("d"), "is_pinned": True})
        assert _order(client) == ["d", "b", "c", "a"]  # pinned first
        client.call("conv.set_draft", {**_key("a"), "draft": text_draft("top")})
        assert _order(client) == ["d", "a", "b", "c"]  # activation stays below the pins
        client.call("conv.create", _key("e"))
        assert _order(client) == ["d", "e", "a", "b", "c"]


def test_sdk_pin_example(daemon: DaemonProcess) -> None:
    """The SDK's documented example: list 1,2,3,4,5; pin 2 and 3 -> 2,3,1,4,5."""
    with daemon.client() as client:
        for name in ("5", "4", "3", "2", "1"):
            client.call("conv.create", _key(name))
        assert _order(client) == ["1", "2", "3", "4", "5"]
        client.call("conv.pin", {**_key("2"), "is_pinned": True})
        client.call("conv.pin", {**_key("3"), "is_pinned": True})
        assert _order(client) == ["2", "3", "1", "4", "5"]
        # Unpinning puts a conversation back where its activation places it.
        client.call("conv.pin", {**_key("2"), "is_pinned": False})
        assert _order(client) == ["3", "1", "2", "4", "5"]
        client.call("conv.pin", {**_key("3"), "is_pinned": False})
        assert _order(client) == ["1", "2", "3", "4", "5"]
        # Pinned in the other order: the pinned section keeps the earlier relative order.
        client.call("conv.pin", {**_key("3"), "is_pinned": True})
        client.call("conv.pin", {**_key("2"), "is_pinned": True})
        assert _order(client) == ["2", "3", "1", "4", "5"]


def test_conv_active_time_carries_the_order(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        for n in range(6):
            client.call("conv.create", _key(f"u{n}"))
        client.call("conv.create", _key("g", GROUP))
        client.call("conv.pin", {**_key("u1"), "is_pinned": True})
        client.call("conv.pin", {**_key("u4"), "is_pinned": True})
        client.call("conv.set_draft", {**_key("u0"), "draft": text_draft("x")})
        before = {c["conv_id"]: c["conv_active_time"] for c in _list(client)}
        listed = _list(client)
        times = [c["conv_active_time"] for c in listed]
        assert times == sorted(times, reverse=True) and len(set(times)) == len(times)
        for c in listed:
            assert bool(c["conv_active_time"] & PINNED_BIT) is c["conv_is_pinned"]
            assert c["conv_active_time"] < 2 * PINNED_BIT
        assert [c["conv_is_pinned"] for c in listed] == [True, True] + [False] * 5
        # Unpinning clears the bit and keeps the rest of the key.
        client.call("conv.pin", {**_key("u4"), "is_pinned": False})
        (u4,) = client.call("conv.get", {"convs": [_key("u4")]})
        assert u4["conv_active_time"] == before["u4"] & ~PINNED_BIT
        # The ConvInfo returned by a write carries the same key the list sorts by.
        info = client.call("conv.set_draft", {**_key("u2"), "draft": text_draft("y")})
        assert info["conv_active_time"] > max(before[k] for k in before if k not in ("u1", "u4"))
        assert {c["conv_id"]: c["conv_active_time"] for c in _list(client)}["u2"] == info[
            "conv_active_time"
        ]


# -- the change sequence ---------------------------------------------------------------------


def test_every_committed_change_advances_the_sequence(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        steps: list[tuple[str, dict[str, Any], int]] = [
            ("conv.create", _key("a"), 1),
            ("conv.create", _key("a"), 0),
            ("conv.set_draft", {**_key("a"), "draft": text_draft("x")}, 1),
            ("conv.set_draft", {**_key("a"), "draft": text_draft("x")}, 0),
            ("conv.set_draft", {**_key("a"), "draft": text_draft("y")}, 1),
            ("conv.pin", {**_key("a"), "is_pinned": True}, 1),
            ("conv.pin", {**_key("a"), "is_pinned": True}, 0),
            ("conv.cancel_draft", _key("a"), 1),
            ("conv.cancel_draft", _key("a"), 0),
            ("conv.set_draft", {**_key("b", GROUP), "draft": text_draft("new")}, 1),
            ("conv.set_draft", {**_key("c"), "draft": {}}, 1),
            ("conv.delete", _key("a"), 1),
            ("conv.delete", _key("a"), 0),  # 6004
            ("conv.list", {}, 0),
            ("conv.get", {"convs": [_key("b", GROUP)]}, 0),
        ]
        expected = _seq(client)
        assert expected == 0
        for method, params, advance in steps:
            client.request(method, params)
            expected += advance
            assert _seq(client) == expected, (method, params)
    with daemon.client("alice") as again:  # the same account on a new connection
        assert _seq(again) == expected
    with daemon.client("bob") as bob:
        assert _seq(bob) == 0


def test_change_sequence_is_kept_in_the_database(daemon: DaemonProcess) -> None:
    with daemon.client("alice") as alice, daemon.client("bob") as bob:
        for n in range(5):
            alice.call("conv.set_draft", {**_key("x"), "draft": text_draft(f"v{n}")})
        bob.call("conv.create", _key("y"))
        alice_seq, bob_seq = _seq(alice), _seq(bob)
    assert (alice_seq, bob_seq) == (5, 1)
    assert daemon.stop() == 0
    with sqlite3.connect(f"file:{daemon.db}?mode=ro", uri=True) as db:
        rows = dict(db.execute("SELECT user_id, last_seq FROM account").fetchall())
        changes = db.execute(
            "SELECT a.user_id, c.seq FROM change AS c JOIN account AS a ON a.id = c.account_id "
            "ORDER BY a.user_id, c.seq"
        ).fetchall()
    db.close()
    assert rows == {"alice": 5, "bob": 1}
    assert changes == [("alice", n) for n in range(1, 6)] + [("bob", 1)]
    daemon.start()
    with daemon.client("alice") as alice:
        assert _seq(alice) == 5
        alice.call("conv.delete", _key("x"))
        assert _seq(alice) == 6


def test_a_stale_window_cannot_overwrite_a_recreated_conversation(daemon: DaemonProcess) -> None:
    """Window 1 saw revision 2; window 2 deletes the conversation and writes a new draft twice.
    Before revisions survived a delete, the new draft was at revision 2 again and window 1's
    conflict-safe write matched it by accident, silently overwriting it."""
    with daemon.client("alice") as window1, daemon.client("alice") as window2:
        window1.call("conv.set_draft", {**_key("bob"), "draft": text_draft("a")})
        held = window1.call("conv.set_draft", {**_key("bob"), "draft": text_draft("b")})
        assert held["conv_draft_revision"] == 2
        window2.call("conv.delete", _key("bob"))
        window2.call("conv.set_draft", {**_key("bob"), "draft": text_draft("x")})
        newest = window2.call("conv.set_draft", {**_key("bob"), "draft": text_draft("y")})
        stale = {**_key("bob"), "draft": text_draft("stale"), "if_revision": 2}
        error = window1.error("conv.set_draft", stale)
        assert error["code"] == 90001
        assert error["data"] == newest  # the current draft, to merge against
        assert window1.call("conv.get", {"convs": [_key("bob")]}) == [newest]
