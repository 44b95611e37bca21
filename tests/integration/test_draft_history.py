"""Draft history over the real daemon: conv.draft_history / conv.restore_draft, their events
and errors, delete, convctl, a restore racing a write from separate processes, and two V2
windows in two processes where the stale one's write is refused."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import DaemonProcess, LineClient, RpcFailure, text_draft

PROCS = Path(__file__).resolve().parents[1] / "procs"

C2C = 1
BOB = {"conv_id": "bob", "conv_type": C2C}


def set_draft(line: LineClient, text: str, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = line.call(
        "conv.set_draft", {**BOB, "draft": text_draft(text), **extra}
    )
    return result


def texts(info: dict[str, Any]) -> list[str]:
    draft = info.get("conv_draft") or {}
    return [
        e["text_elem_content"] for e in draft.get("draft_msg", {}).get("message_elem_array", [])
    ]


def vtexts(version: dict[str, Any]) -> list[str]:
    return texts({"conv_draft": version["draft"]})


def convctl(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convd_client.cli", "--user", "alice", *args],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_history_restore_events_and_errors(daemon: DaemonProcess) -> None:
    with daemon.client() as writer, daemon.client() as watcher:
        watcher.call("conv.subscribe", {})
        set_draft(writer, "a long draft I care about")
        set_draft(writer, "oops")
        writer.call("conv.cancel_draft", {**BOB})
        history = writer.call("conv.draft_history", {**BOB})
        assert history["conv_draft_revision"] == 3
        versions = history["versions"]
        assert [(v["revision"], vtexts(v), v["replaced_how"]) for v in versions] == [
            (2, ["oops"], "cancel"),
            (1, ["a long draft I care about"], "set"),
        ]
        # replaced_by is the origin the writer's events carry.
        origins = {n["params"]["origin"] for n in [watcher.next_notification() for _ in range(3)]}
        assert {v["replaced_by"] for v in versions} == origins
        assert writer.call("conv.draft_history", {**BOB, "count": 1})["versions"] == versions[:1]

        restored = writer.call("conv.restore_draft", {**BOB, "revision": 1, "if_revision": 3})
        assert texts(restored) == ["a long draft I care about"]
        assert restored["conv_draft_revision"] == 4
        event = watcher.next_notification()["params"]
        assert event["event"] == 2  # Update
        assert event["conv_array"] == [restored]

        # The wrong if_revision: 90001 with the current ConvInfo; nothing written.
        with pytest.raises(RpcFailure) as conflict:
            writer.call("conv.restore_draft", {**BOB, "revision": 2, "if_revision": 3})
        assert conflict.value.code == 90001
        assert conflict.value.data == restored
        # An unknown revision: 90006, named in data.
        with pytest.raises(RpcFailure) as unknown:
            writer.call("conv.restore_draft", {**BOB, "revision": 42})
        assert unknown.value.code == 90006
        assert unknown.value.error["message"] == "Draft version not found"
        assert unknown.value.data["revision"] == 42
        with pytest.raises(RpcFailure) as missing:
            writer.call("conv.draft_history", {"conv_id": "nobody", "conv_type": C2C})
        assert missing.value.code == 6004
        with pytest.raises(RpcFailure) as bad:
            writer.call("conv.draft_history", {**BOB, "count": 0})
        assert bad.value.code == -32602

        # Deleting the conversation deletes its history; created again, it starts empty.
        writer.call("conv.delete", {**BOB})
        set_draft(writer, "fresh")
        assert writer.call("conv.draft_history", {**BOB})["versions"] == []
        with pytest.raises(RpcFailure) as gone:
            writer.call("conv.restore_draft", {**BOB, "revision": 1})
        assert gone.value.code == 90006


def test_the_history_bounds_are_convd_options(short_dir: Any) -> None:
    daemon = DaemonProcess(short_dir, "--draft-history", "2", "--draft-history-for", "1d").start()
    try:
        with daemon.client() as line:
            for n in range(5):
                set_draft(line, f"v{n}")
            versions = line.call("conv.draft_history", {**BOB})["versions"]
            assert [vtexts(v) for v in versions] == [["v3"], ["v2"]]
    finally:
        assert daemon.stop() == 0, daemon.logs()
    refused = subprocess.run(
        [sys.executable, "-m", "convd", "--draft-history", "1001", "--db", "/nonexistent/x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "--draft-history" in refused.stderr


def test_convctl_draft_history_and_restore(daemon: DaemonProcess) -> None:
    with daemon.client() as line:
        set_draft(line, "first")
        set_draft(line, "second")
    shown = convctl(daemon, "draft", "history", "bob")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "current revision 2"
    assert lines[1].startswith("rev 1  ")
    assert "overwritten by " in lines[1] and lines[1].endswith('"first"')
    as_json = json.loads(convctl(daemon, "--json", "draft", "history", "c2c_bob").stdout)
    assert as_json["conv_draft_revision"] == 2
    assert [v["revision"] for v in as_json["versions"]] == [1]

    done = convctl(daemon, "draft", "restore", "bob", "1", "--if-revision", "2")
    assert (done.returncode, done.stdout) == (0, "revision 3\n"), done.stderr
    assert convctl(daemon, "draft", "get", "bob").stdout == "first\n"
    restored = json.loads(convctl(daemon, "--json", "draft", "restore", "bob", "2").stdout)
    assert texts(restored) == ["second"]

    stale = convctl(daemon, "draft", "restore", "bob", "1", "--if-revision", "2")
    assert stale.returncode == 1
    assert "error 90001" in stale.stderr
    unknown = convctl(daemon, "draft", "restore", "bob", "99")
    assert unknown.returncode == 1
    assert "error 90006: no revision 99 in the draft history" in unknown.stderr
    assert convctl(daemon, "draft", "restore", "bob", "-1").returncode == 2


def test_a_restore_racing_a_write_from_other_processes_one_wins(daemon: DaemonProcess) -> None:
    """Both processes start from revision R: the restore and the write carry it as
    if_revision. Exactly one commits; the other is refused with the winner's draft, and the
    draft the winner replaced is in the history: nothing is lost whichever wins."""
    for round_ in range(3):
        with daemon.client() as line:
            line.call("conv.delete", {**BOB}) if round_ else None
            set_draft(line, "keep me")
            current = set_draft(line, "overwritten")
        revision = current["conv_draft_revision"]
        base = [sys.executable, "-m", "convd_client.cli", "--user", "alice", "--json", "draft"]
        racers = [
            subprocess.Popen(
                [*base, "restore", "bob", str(revision - 1), "--if-revision", str(revision)],
                env=daemon.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            subprocess.Popen(
                [*base, "set", "bob", "typed meanwhile", "--if-revision", str(revision)],
                env=daemon.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        ]
        outputs = [racer.communicate(timeout=30) for racer in racers]
        codes = [racer.returncode for racer in racers]
        assert sorted(codes) == [0, 1], outputs
        winner = codes.index(0)
        won = json.loads(outputs[winner][0])
        lost = json.loads(outputs[1 - winner][0])["error"]
        assert lost["code"] == 90001
        assert lost["data"] == won  # the loser sees what won
        assert won["conv_draft_revision"] == revision + 1
        with daemon.client() as line:
            history = line.call("conv.draft_history", {**BOB})
        assert history["conv_draft_revision"] == revision + 1
        assert [vtexts(v) for v in history["versions"]] == [["overwritten"], ["keep me"]]


class Child:
    """A tests/procs helper as its own process: JSON commands in, JSON lines out."""

    def __init__(self, daemon: DaemonProcess, program: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(PROCS / f"{program}.py"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=daemon.env,
            text=True,
            bufsize=1,
        )
        self.lines: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _queue(self, kind: str) -> queue.Queue[dict[str, Any]]:
        with self._lock:
            return self.lines.setdefault(kind, queue.Queue())

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            self._queue(message["kind"]).put(message)

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def next(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        try:
            return self._queue(kind).get(timeout=timeout)
        except queue.Empty:
            fatal = list(self._queue("fatal").queue)
            raise AssertionError(f"no {kind!r} line within {timeout} s; fatal: {fatal}") from None

    def finish(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(15)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.close()


def test_a_stale_v2_window_is_refused_and_gets_the_current_draft(
    daemon: DaemonProcess, children: list[Child]
) -> None:
    """Two V2 managers in two processes. A's listeners are held busy (its window has not
    caught up) while B writes: A's next write carries the revision A last saw, is refused,
    and A's callback gets B's draft. Having seen it, A's next write goes through."""
    a, b = Child(daemon, "v2_drafter", "alice"), Child(daemon, "v2_drafter", "alice")
    children.extend((a, b))
    a.next("ready", timeout=15)
    b.next("ready", timeout=15)
    a.send(cmd="set_draft", conv="c2c_bob", text="A's long draft")
    assert a.next("result")["code"] == 0
    seen = {"kind": "event", "conv": "c2c_bob", "text": "A's long draft", "revision": 1}
    assert b.next("event") == seen
    # A's window is told of its own write too, and the answer can reach A before that event
    # does: were A to arm the hold first, A's own event would be the one held (seen in CI).
    assert a.next("event") == seen

    # A's window gets busy with an unrelated change; B then overwrites bob's draft.
    a.send(cmd="hold")
    a.next("armed")  # else the change could reach A before A holds (seen under load)
    b.send(cmd="set_draft", conv="c2c_carol", text="elsewhere")
    assert b.next("result")["code"] == 0
    assert a.next("held")["convs"] == ["c2c_carol"]
    b.send(cmd="set_draft", conv="c2c_bob", text="B's draft")
    assert b.next("result")["code"] == 0

    a.send(cmd="set_draft", conv="c2c_bob", text="A's stale edit", stale=True)
    refused = a.next("result")
    assert refused["code"] == 90001, refused
    assert (refused["current_text"], refused["current_revision"]) == ("B's draft", 2)
    with daemon.client() as line:
        [stored] = line.call("conv.get", {"convs": [BOB]})
    assert texts(stored) == ["B's draft"]  # nothing was overwritten

    # A has now seen revision 2: its next write goes through, and B's draft is kept.
    a.send(cmd="set_draft", conv="c2c_bob", text="A merged both")
    assert a.next("result")["code"] == 0
    a.send(cmd="history", conv="c2c_bob", count=5)
    assert a.next("result")["versions"] == [
        [2, "B's draft", "set"],
        [1, "A's long draft", "set"],
    ]

    # Opting out (overwrite=True) writes over what A has not seen.
    while a.next("event")["text"] != "A merged both":
        pass  # as above: A's own event must not be the one its hold catches
    a.send(cmd="hold")
    a.next("armed")
    b.send(cmd="set_draft", conv="c2c_carol", text="elsewhere again")
    assert b.next("result")["code"] == 0
    assert a.next("held")["convs"] == ["c2c_carol"]
    b.send(cmd="set_draft", conv="c2c_bob", text="B again")
    assert b.next("result")["code"] == 0
    a.send(cmd="set_draft", conv="c2c_bob", text="A wins anyway", stale=True, overwrite=True)
    assert a.next("result")["code"] == 0
    # And B restores the draft A overwrote (compare-and-set on restore too), once its window
    # has seen A's write (before that, the restore would be refused: B's view is stale).
    while b.next("event")["text"] != "A wins anyway":
        pass
    b.send(cmd="restore", conv="c2c_bob", revision=4)
    assert b.next("result")["code"] == 0
    with daemon.client() as line:
        [stored] = line.call("conv.get", {"convs": [BOB]})
    assert texts(stored) == ["B again"]
    for child in (a, b):
        assert child.finish() == 0
