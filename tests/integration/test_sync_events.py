"""conv.subscribe with ``sync``: the SDK's Start / list / Finish framing, over the real daemon.

The frame of the whole list is checked against concurrent writers: whatever they do while the
list is read, a listener that applies the frame and then the events after Finish ends with
exactly the daemon's list, and never gets a change twice (an Update equal to what it holds, an
Add of what it has, a Del of what it lacks) nor loses one.
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any

from support import DaemonProcess, LineClient, text_draft

ADD, DEL, UPDATE, START, FINISH = 0, 1, 2, 3, 4

Key = tuple[str, int]


def _key(info: dict[str, Any]) -> Key:
    return info["conv_id"], info["conv_type"]


def _list_all(client: LineClient) -> list[dict[str, Any]]:
    convs: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = client.call("conv.list", {"next_seq": cursor, "count": 1000})
        convs += page["conversation_list_result_conv_list"]
        if page["conversation_list_result_is_finished"]:
            return convs
        cursor = page["conversation_list_result_next_seq"]


def _batch(client: LineClient, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One JSON-RPC batch; its responses (successes and errors alike)."""
    requests = [
        {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
        for n, (method, params) in enumerate(calls, 1)
    ]
    client.send_json(requests)
    while True:
        message = client.read_json()
        if isinstance(message, list):
            return message
        client.notifications.append(message)


def _preload(client: LineClient, names: list[str]) -> None:
    for start in range(0, len(names), 100):
        calls = [
            ("conv.set_draft", {"conv_id": n, "conv_type": 1, "draft": text_draft(f"hi {n}")})
            for n in names[start : start + 100]
        ]
        assert all("result" in r for r in _batch(client, calls))


def _event(client: LineClient) -> dict[str, Any]:
    message = client.next_notification()
    assert message["method"] == "conv.event", message
    return dict(message["params"])


def _frame(client: LineClient, seq: int) -> tuple[list[dict[str, Any]], int]:
    """Read a full frame (Start .. Finish); return the pages' conversations in order, and
    Finish's seq (the resume point)."""
    start = _event(client)
    assert (start["event"], start["seq"], start["origin"], start["full"]) == (START, seq, "", True)
    assert "conv_array" not in start
    listed: list[dict[str, Any]] = []
    while (event := _event(client))["event"] != FINISH:
        assert (event["event"], event["seq"], event["origin"]) == (UPDATE, seq, ""), event
        assert 1 <= len(event["conv_array"]) <= 100
        listed += event["conv_array"]
    assert event["seq"] >= seq and event["origin"] == ""
    return listed, event["seq"]


def test_a_sync_frames_the_whole_list_in_conv_list_order(daemon: DaemonProcess) -> None:
    with daemon.client() as writer, daemon.client() as subscriber:
        _preload(writer, [f"p{n:03}" for n in range(250)])
        writer.call("conv.pin", {"conv_id": "p007", "conv_type": 1, "is_pinned": True})
        expected = _list_all(writer)
        result = subscriber.call("conv.subscribe", {"sync": True})
        assert result["seq"] == 251
        listed, resume_seq = _frame(subscriber, result["seq"])
        assert resume_seq == result["seq"]  # nothing changed meanwhile
        assert listed == expected  # every conversation once, pinned first, as conv.list
        assert listed[0]["conv_id"] == "p007"
        # Then the live events, from the subscription's seq on.
        writer.call("conv.delete", {"conv_id": "p001", "conv_type": 1})
        event = _event(subscriber)
        assert (event["event"], event["seq"]) == (DEL, 252)


def test_an_empty_account_gets_start_then_finish(daemon: DaemonProcess) -> None:
    with daemon.client("nobody") as subscriber:
        result = subscriber.call("conv.subscribe", {"sync": True})
        assert _frame(subscriber, result["seq"]) == ([], 0)
        subscriber.call("conv.create", {"conv_id": "first", "conv_type": 2})
        added = _event(subscriber)
        assert (added["event"], added["seq"]) == (ADD, 1)
        assert _key(added["conv_array"][0]) == ("first", 2)


def test_a_synced_resume_frames_the_missed_changes_dels_included(daemon: DaemonProcess) -> None:
    with daemon.client() as writer:
        for name in ("a", "b", "c"):
            writer.call("conv.create", {"conv_id": name, "conv_type": 1})
        writer.call("conv.delete", {"conv_id": "a", "conv_type": 1})
        writer.call("conv.set_draft", {"conv_id": "b", "conv_type": 1, "draft": text_draft("x")})
        with daemon.client() as late:
            result = late.call("conv.subscribe", {"since_seq": 2, "sync": True})
            assert result["seq"] == 5
            writer.call("conv.create", {"conv_id": "live", "conv_type": 1})
            events = [_event(late) for _ in range(6)]
    start, *replayed, finish, live = events
    assert (start["event"], start["seq"], start["full"], start["origin"]) == (START, 2, False, "")
    assert [(e["event"], e["seq"]) for e in replayed] == [(ADD, 3), (DEL, 4), (UPDATE, 5)]
    assert replayed[1]["conv_array"] == [{"conv_id": "a", "conv_type": 1}]
    assert (finish["event"], finish["seq"]) == (FINISH, 5)
    assert (live["event"], live["seq"], live["conv_array"][0]["conv_id"]) == (ADD, 6, "live")


def test_a_sync_under_concurrent_writers_loses_and_repeats_nothing(
    daemon: DaemonProcess,
) -> None:
    names = [f"p{n:04}" for n in range(1500)]
    touched = names[:300]  # the writers change only these (and conversations they create)
    stop = threading.Event()
    writes = [0, 0]
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        rng = random.Random(worker)
        try:
            with daemon.client() as client:
                while not stop.is_set():
                    name = rng.choice(touched + [f"new{worker}-{n}" for n in range(20)])
                    key = {"conv_id": name, "conv_type": 1}
                    op = rng.randrange(6)
                    if op <= 1:
                        draft = text_draft(f"{worker} {writes[worker]}")
                        calls = [("conv.set_draft", {**key, "draft": draft})]
                    elif op == 2:
                        calls = [("conv.pin", {**key, "is_pinned": rng.random() < 0.5})]
                    elif op == 3:
                        calls = [("conv.cancel_draft", key)]
                    elif op == 4:
                        calls = [("conv.delete", key)]
                    else:
                        calls = [("conv.create", key)]
                    # Refusals (no such conversation, pin limit) are part of the load.
                    _batch(client, calls)
                    writes[worker] += 1
        except BaseException as exc:
            errors.append(exc)

    with daemon.client() as setup:
        _preload(setup, names)
        before = [_key(c) for c in _list_all(setup)]
    workers = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for worker in workers:
        worker.start()
    try:
        with daemon.client() as subscriber, daemon.client() as checker:
            while sum(writes) < 50:
                stop.wait(0.01)
            result = subscriber.call("conv.subscribe", {"sync": True})
            seq = result["seq"]
            held: dict[Key, dict[str, Any]] = {}
            listed, resume_seq = _frame(subscriber, seq)
            for info in listed:
                assert _key(info) not in held, f"{_key(info)} twice in the frame"
                held[_key(info)] = info
            during = sum(writes)
            while sum(writes) < during + 100:
                stop.wait(0.01)
            stop.set()
            for worker in workers:
                worker.join(10)
            assert not errors, errors
            # A last change marks the end of the stream.
            checker.call("conv.create", {"conv_id": "sentinel", "conv_type": 2})
            last = resume_seq
            while True:
                event = _event(subscriber)
                assert event["seq"] > last, "events after Finish go up strictly"
                last = event["seq"]
                if event["event"] == DEL:
                    for key in map(_key, event["conv_array"]):
                        assert key in held, f"Del of {key}, which the listener does not have"
                        del held[key]
                    continue
                (info,) = event["conv_array"]
                if event["event"] == ADD:
                    assert _key(info) not in held, f"Add of {_key(info)}, which it has"
                else:
                    assert event["event"] == UPDATE
                    assert _key(info) in held, f"Update of {_key(info)}, which it lacks"
                    assert held[_key(info)] != info, f"Update of {_key(info)} repeats it"
                held[_key(info)] = info
                if info["conv_id"] == "sentinel":
                    break
            final = {_key(c): c for c in _list_all(checker)}
            assert held == final
            # Finish's seq is a true resume point: the frame plus the changes after it
            # (applied as upserts) give the same list.
            resumed = {_key(c): c for c in listed}
            checker.call("conv.subscribe", {"since_seq": resume_seq})
            while True:
                event = _event(checker)
                for info in event["conv_array"]:
                    if event["event"] == DEL:
                        resumed.pop(_key(info), None)
                    else:
                        resumed[_key(info)] = info
                if event["event"] == ADD and event["conv_array"][0]["conv_id"] == "sentinel":
                    break
            assert resumed == final
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
    # The conversations nobody touched came once each, in their conv.list order.
    untouched = {(name, 1) for name in names[300:]}
    assert [k for k in map(_key, listed) if k in untouched] == [k for k in before if k in untouched]


def test_a_frame_event_is_one_json_line_per_page(daemon: DaemonProcess) -> None:
    """The pages are ordinary conv.event lines (a raw reader needs nothing new)."""
    with daemon.client() as client:
        _preload(client, [f"q{n}" for n in range(150)])
        client.call("conv.subscribe", {"sync": True})
        lines = [json.loads(client.read_line()) for _ in range(4)]
    assert [m["params"]["event"] for m in lines] == [START, UPDATE, UPDATE, FINISH]
    assert [len(m["params"].get("conv_array", ())) for m in lines] == [0, 100, 50, 0]


def test_a_sync_ended_in_the_same_batch_sends_nothing(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        _preload(client, ["a", "b"])
        # A connection's subscriptions are numbered from 1.
        for subscription, params in ((1, {"sync": True}), (2, {"sync": True, "since_seq": 0})):
            replies = _batch(
                client,
                [
                    ("conv.subscribe", params),
                    ("conv.unsubscribe", {"subscription": subscription}),
                ],
            )
            assert replies[0]["result"]["subscription"] == subscription
            assert replies[1]["result"] == {}
        client.call("daemon.status")  # a round trip: any event due would have come first
        assert client.notifications == []
