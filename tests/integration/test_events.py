"""conv.subscribe / conv.event against the real daemon, over raw sockets."""

from __future__ import annotations

import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from support import DaemonProcess, LineClient, RpcFailure

ADD, DEL, UPDATE = 0, 1, 2


def _draft(text: str) -> dict[str, Any]:
    return {"draft_msg": {"message_elem_array": [{"elem_type": 0, "text_elem_content": text}]}}


def _events(client: LineClient, count: int) -> list[dict[str, Any]]:
    events = []
    for _ in range(count):
        message = client.next_notification()
        assert message["method"] == "conv.event"
        events.append(message["params"])
    return events


def test_every_change_reaches_every_subscriber_in_commit_order(daemon: DaemonProcess) -> None:
    with daemon.client() as sub1, daemon.client() as sub2, daemon.client() as writer:
        first = sub1.call("conv.subscribe", {})
        second = sub2.call("conv.subscribe", {})
        assert first["seq"] == second["seq"] == 0
        writer.call("conv.create", {"conv_id": "bob", "conv_type": 1})
        writer.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": _draft("hi")})
        writer.call("conv.pin", {"conv_id": "bob", "conv_type": 1, "is_pinned": True})
        writer.call("conv.cancel_draft", {"conv_id": "bob", "conv_type": 1})
        writer.call("conv.delete", {"conv_id": "bob", "conv_type": 1})
        expected_kinds = [ADD, UPDATE, UPDATE, UPDATE, DEL]
        for client, subscribed in ((sub1, first), (sub2, second)):
            events = _events(client, 5)
            assert [e["event"] for e in events] == expected_kinds
            assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
            assert {e["subscription"] for e in events} == {subscribed["subscription"]}
            assert (
                events[1]["conv_array"][0]["conv_draft"]["draft_msg"] == _draft("hi")["draft_msg"]
            )
            assert events[2]["conv_array"][0]["conv_is_pinned"] is True
            assert events[3]["conv_array"][0]["conv_is_has_draft"] is False
            assert events[4]["conv_array"] == [{"conv_id": "bob", "conv_type": 1}]
            assert len({e["origin"] for e in events}) == 1
            assert events[0]["origin"] != subscribed["origin"]


def test_own_changes_carry_own_origin_and_no_ops_send_nothing(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        origin = client.call("conv.subscribe", {})["origin"]
        client.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": _draft("x")})
        # Neither an identical draft nor re-creating an existing conversation is a change.
        client.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": _draft("x")})
        client.call("conv.create", {"conv_id": "bob", "conv_type": 1})
        client.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": _draft("y")})
        events = _events(client, 2)
        assert [(e["event"], e["seq"], e["origin"]) for e in events] == [
            (ADD, 1, origin),
            (UPDATE, 2, origin),
        ]
        status = client.call("daemon.status")  # a round trip: nothing else was queued
        assert status["connections"] == 1
        assert client.notifications == []


def test_accounts_see_only_their_own_events(daemon: DaemonProcess) -> None:
    with daemon.client("alice") as alice, daemon.client("carol") as carol:
        alice.call("conv.subscribe", {})
        carol.call("conv.subscribe", {})
        carol.call("conv.create", {"conv_id": "dave", "conv_type": 1})
        alice.call("conv.create", {"conv_id": "erin", "conv_type": 1})
        assert [e["conv_array"][0]["conv_id"] for e in _events(alice, 1)] == ["erin"]
        assert [e["conv_array"][0]["conv_id"] for e in _events(carol, 1)] == ["dave"]


def test_resume_replays_missed_changes_then_goes_live(daemon: DaemonProcess) -> None:
    with daemon.client() as writer:
        for n in range(5):
            writer.call(
                "conv.set_draft", {"conv_id": f"p{n}", "conv_type": 1, "draft": _draft("d")}
            )
        writer.call("conv.delete", {"conv_id": "p0", "conv_type": 1})
        with daemon.client() as late:
            result = late.call("conv.subscribe", {"since_seq": 2})
            assert result["seq"] == 6
            writer.call("conv.create", {"conv_id": "live", "conv_type": 2})
            events = _events(late, 5)
            assert [e["seq"] for e in events] == [3, 4, 5, 6, 7]
            assert [e["event"] for e in events] == [ADD, ADD, ADD, DEL, ADD]
            assert events[3]["conv_array"] == [{"conv_id": "p0", "conv_type": 1}]
            assert events[4]["conv_array"][0]["conv_id"] == "live"


def test_resume_survives_a_daemon_restart(daemon: DaemonProcess) -> None:
    with daemon.client() as writer:
        writer.call("conv.create", {"conv_id": "a", "conv_type": 1})
        writer.call("conv.create", {"conv_id": "b", "conv_type": 1})
    assert daemon.stop() == 0
    daemon.start()
    with daemon.client() as late:
        late.call("conv.subscribe", {"since_seq": 1})
        (event,) = _events(late, 1)
        assert (event["seq"], event["conv_array"][0]["conv_id"]) == (2, "b")


def test_since_seq_ahead_of_the_account_is_refused(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", {"conv_id": "a", "conv_type": 1})
        with pytest.raises(RpcFailure) as failure:
            client.call("conv.subscribe", {"since_seq": 99})
        assert failure.value.code == 90003
        assert failure.value.data["oldest_seq"] == 0 and failure.value.data["current_seq"] == 1
        assert "reload" in failure.value.error["data"]["detail"]


def test_unsubscribe_and_logout_end_delivery(daemon: DaemonProcess) -> None:
    with daemon.client() as client, daemon.client() as writer:
        subscription = client.call("conv.subscribe", {})["subscription"]
        assert client.call("conv.unsubscribe", {"subscription": subscription}) == {}
        with pytest.raises(RpcFailure) as failure:
            client.call("conv.unsubscribe", {"subscription": subscription})
        assert failure.value.code == 90004
        client.call("conv.subscribe", {})
        client.call("session.logout")
        writer.call("conv.create", {"conv_id": "a", "conv_type": 1})
        client.call("session.login", {"user_id": "alice"})
        assert client.call("daemon.status")["connections"] == 2
        assert client.notifications == []


def test_a_stalled_subscriber_is_cut_off_and_loses_nothing(daemon: DaemonProcess) -> None:
    total = 3000
    with daemon.client() as stalled, daemon.client() as healthy, daemon.client() as writer:
        stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.call("conv.subscribe", {})
        healthy.call("conv.subscribe", {})
        with ThreadPoolExecutor(1) as pool:
            healthy_events = pool.submit(_events, healthy, total)
            # The stalled client reads nothing while thousands of changes are committed; the
            # writer must never wait for it (a blocked writer would hit the per-test timeout).
            for n in range(total):
                writer.call(
                    "conv.set_draft",
                    {"conv_id": f"peer{n % 7}", "conv_type": 1, "draft": _draft(f"text {n}")},
                )
            healthy_seqs = [e["seq"] for e in healthy_events.result(timeout=30)]
        assert healthy_seqs == list(range(1, total + 1))
        # The stalled one now reads what reached it before the cut, then finds the end.
        last_seq = 0
        with pytest.raises((EOFError, ConnectionResetError)):
            while True:
                last_seq = stalled.next_notification()["params"]["seq"]
        assert 0 < last_seq < total
        assert "disconnecting" in daemon.logs()
    # Reconnect and resume: every change after the last one it saw arrives, none twice.
    with daemon.client() as resumed:
        resumed.call("conv.subscribe", {"since_seq": last_seq})
        seqs = [e["seq"] for e in _events(resumed, total - last_seq)]
        assert seqs == list(range(last_seq + 1, total + 1))


# everysec: no fsync in the round trips compared, only what the daemon does for them.
@pytest.mark.parametrize("durability", ["everysec"])
def test_a_subscriber_that_reads_nothing_does_not_slow_the_writer(
    daemon: DaemonProcess, durability: str
) -> None:
    """A subscriber that has stopped reading, its events queued in convd (below the bound),
    costs its account's writer nothing it would notice. Writes of that account and of
    another one (nobody subscribed) alternate, and their median round trips are compared: a
    daemon that waited for the subscriber would stall the writer; one that stalled on each
    of its events would show here."""
    rounds = 300
    padding = "x" * 800  # ~1 KB events: the first rounds fill the socket's buffers

    def write(client: LineClient, n: int) -> float:
        start = time.perf_counter()
        client.call(
            "conv.set_draft",
            {"conv_id": f"c{n % 7}", "conv_type": 1, "draft": _draft(f"{n} {padding}")},
        )
        return time.perf_counter() - start

    with (
        daemon.client() as watched,
        daemon.client("nobody-watches") as other,
        daemon.client() as stalled,
    ):
        stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        subscribed = stalled.call("conv.subscribe", {})  # watched's account
        for n in range(rounds):  # ~300 KB: past what the kernel holds for it
            write(watched, n)
            write(other, n)
        watched_times, other_times = [], []
        for n in range(rounds):  # now queued in convd, under its bound
            watched_times.append(write(watched, rounds + n))
            other_times.append(write(other, rounds + n))
        with_stalled, alone = statistics.median(watched_times), statistics.median(other_times)
        assert with_stalled <= 2 * alone + 0.002, (alone, with_stalled)
        # Nothing was lost meanwhile: it reads every event, in order.
        events = _events(stalled, 2 * rounds)
        first = subscribed["seq"] + 1
        assert [e["seq"] for e in events] == list(range(first, first + 2 * rounds))
    assert "disconnecting" not in daemon.logs()


def test_resuming_across_a_replaced_database_is_refused(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        old = client.call("conv.subscribe", {})
        client.call("conv.create", {"conv_id": "a", "conv_type": 1})
    assert daemon.stop() == 0
    for suffix in ("", "-wal", "-shm"):
        daemon.db.with_name(daemon.db.name + suffix).unlink(missing_ok=True)
    daemon.start()
    with daemon.client() as writer:
        writer.call("conv.create", {"conv_id": "b", "conv_type": 1})
        writer.call("conv.create", {"conv_id": "c", "conv_type": 1})
        # seq 1 exists again, but names another change: resuming after it must not skip "b".
        with pytest.raises(RpcFailure) as failure:
            writer.call("conv.subscribe", {"since_seq": 1, "history": old["history"]})
        assert failure.value.code == 90003
        assert "replaced" in failure.value.error["data"]["detail"]
        fresh = writer.call("conv.subscribe", {})
        assert fresh["history"] != old["history"]
        assert writer.call("conv.subscribe", {"since_seq": 1, "history": fresh["history"]})
