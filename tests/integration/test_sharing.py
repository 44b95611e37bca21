"""Drafts and live conversation events shared across OS processes, through the public client.

Every client here is a separate program from ``tests/procs/`` (run as ``python <file> ...``
with ``$CONVD_SOCKET`` pointing at the test's daemon) that uses only ``convd_client``'s public
API (the C face, the V2 face or ``Client``), except the stalled subscriber, which speaks the
wire protocol on a raw socket because it must truly stop reading. The programs print one
JSON line per thing they observe and take commands as JSON lines on stdin (see
``tests/procs/_proc.py``); each one exits on its own after at most 50 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from convd_client.tim import (
    TIM_ERR_IO,
    kTIMConvEvent_Add,
    kTIMConvEvent_Del,
    kTIMConvEvent_Finish,
    kTIMConvEvent_Start,
    kTIMConvEvent_Update,
)
from support import DaemonProcess, LineClient

PROCS = Path(__file__).resolve().parents[1] / "procs"
USER = "alice"
C2C = 1
ERR_INVALID_CONVERSATION = 6004
ERR_IO_OPERATION_FAILED = 6022
DRAFT_REVISION_CONFLICT = 90001


class Child:
    """One helper program from tests/procs, running as its own process.

    Its stdout lines (JSON objects with a ``kind``) are read on a thread and queued by kind;
    its stderr is collected on another thread, for failure messages.
    """

    def __init__(self, daemon: DaemonProcess, program: str, *args: str) -> None:
        self.name = f"{program}{list(args)}"
        self.process = subprocess.Popen(
            [sys.executable, str(PROCS / f"{program}.py"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=daemon.env,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, name=self.name, daemon=True),
            threading.Thread(target=self._read_stderr, name=self.name, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _queue(self, kind: str) -> queue.Queue[dict[str, Any]]:
        with self._lock:
            return self._queues.setdefault(kind, queue.Queue())

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                message = {"kind": "garbage", "line": line}
            self._queue(message.get("kind", "garbage")).put(message)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def describe(self) -> str:
        stderr = "".join(self._stderr[-60:])
        fatal = list(self._queue("fatal").queue)
        return f"{self.name} (exit code {self.process.poll()}), fatal: {fatal}, stderr:\n{stderr}"

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def next(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next line of this kind, waiting at most ``timeout`` seconds for it."""
        try:
            return self._queue(kind).get(timeout=timeout)
        except queue.Empty:
            message = f"no {kind!r} line within {timeout} s from {self.describe()}"
            raise AssertionError(message) from None

    def pending(self, kind: str) -> list[dict[str, Any]]:
        """The lines of this kind received and not taken yet."""
        found = []
        while True:
            try:
                found.append(self._queue(kind).get_nowait())
            except queue.Empty:
                return found

    def finish(self, timeout: float = 10.0) -> int:
        """Tell it to quit (close its stdin) and wait; its exit code. Its output is all read."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    def kill(self) -> None:
        """Kill it if it still runs; then close its pipes, once everything has been read."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@pytest.fixture
def spawn(daemon: DaemonProcess) -> Iterator[Callable[..., Child]]:
    """Start helper programs against ``daemon``; any still running at the end are killed."""
    children: list[Child] = []

    def start(program: str, *args: str) -> Child:
        child = Child(daemon, program, *args)
        children.append(child)
        return child

    try:
        yield start
    finally:
        for child in children:
            child.kill()


def finish_all(*children: Child) -> None:
    for child in children:
        assert child.finish() == 0, child.describe()


def texts(conv_info: dict[str, Any]) -> list[str]:
    """The text elements of a ConvInfo's draft ([] without a draft)."""
    draft = conv_info.get("conv_draft")
    if not draft:
        return []
    return [e["text_elem_content"] for e in draft["draft_msg"]["message_elem_array"]]


# -- 1. a V2 writer, a C-face listener and a V2 reader share one conversation ----------------


def test_v2_changes_reach_a_c_listener_and_a_v2_reader(
    daemon: DaemonProcess, spawn: Callable[..., Child]
) -> None:
    with daemon.client(USER) as line:
        # The conversation exists already, so that setting its draft is an Update.
        line.call("conv.create", {"conv_id": "bob", "conv_type": C2C})
    listener = spawn("c_listener", USER)  # B: TIMInit, TIMLogin, TIMSetConvEventCallback
    writer = spawn("v2_writer", USER)  # A
    reader = spawn("v2_reader", USER)  # C
    for child in (listener, writer, reader):
        child.next("ready", timeout=15)

    # A sets a draft through V2; B hears an Update carrying it; C reads the same draftText.
    text = f"draft from pid {writer.pid}"
    writer.send(cmd="set_draft", conv="c2c_bob", text=text)
    written = writer.next("result")
    assert written["code"] == 0, written
    event = listener.next("event", timeout=5)
    assert event["conv_event"] == kTIMConvEvent_Update, event
    [conv] = event["conv_array"]
    assert (conv["conv_id"], conv["conv_type"]) == ("bob", C2C)
    assert conv["conv_is_has_draft"] is True
    assert texts(conv) == [text]
    # Promptly: generous on purpose (the latency itself is measured in bench/).
    assert event["t"] - written["started"] < 5.0
    reader.send(cmd="get", conv="c2c_bob")
    read = reader.next("result")
    assert read["code"] == 0, read
    assert read["draftText"] == text
    assert read["draftRevision"] == conv["conv_draft_revision"] > 0

    # A pins it: an Update with conv_is_pinned, the draft unchanged; C sees it pinned.
    writer.send(cmd="pin", conv="c2c_bob", pinned=True)
    assert writer.next("result")["code"] == 0
    event = listener.next("event", timeout=5)
    assert event["conv_event"] == kTIMConvEvent_Update, event
    [conv] = event["conv_array"]
    assert conv["conv_id"] == "bob"
    assert conv["conv_is_pinned"] is True
    assert texts(conv) == [text]
    reader.send(cmd="get", conv="c2c_bob")
    read = reader.next("result")
    assert (read["code"], read["isPinned"], read["draftText"]) == (0, True, text)

    # A deletes it: a Del naming it; C finds no such conversation.
    writer.send(cmd="delete", conv="c2c_bob")
    assert writer.next("result")["code"] == 0
    event = listener.next("event", timeout=5)
    assert event["conv_event"] == kTIMConvEvent_Del, event
    assert event["conv_array"] == [{"conv_id": "bob", "conv_type": C2C}]
    reader.send(cmd="get", conv="c2c_bob")
    assert reader.next("result")["code"] == ERR_INVALID_CONVERSATION

    finish_all(listener, writer, reader)
    # Three changes, three events: nothing repeated, nothing from before B subscribed.
    assert listener.pending("event") == []


# -- 2. two processes race a conditional draft write -----------------------------------------


ROUNDS = 10


def test_racing_if_revision_writes_one_wins_and_no_update_is_lost(
    daemon: DaemonProcess, spawn: Callable[..., Child]
) -> None:
    # One racer on each face: TIMConvSetDraftIfRevision vs setConversationDraft(ifRevision=).
    racers = {"c": spawn("racer", "c", USER, "race"), "v2": spawn("racer", "v2", USER, "race")}
    for racer in racers.values():
        racer.next("ready", timeout=15)
    with daemon.client(USER) as watcher:
        watcher.call("conv.subscribe", {})
        for round_ in range(ROUNDS):
            for racer in racers.values():
                racer.send(cmd="read")
            reads = {face: racer.next("read") for face, racer in racers.items()}
            revision = reads["c"]["revision"]
            # Round 0 races to create the conversation (revision 0: it does not exist yet).
            assert reads["v2"]["revision"] == revision == 2 * round_, reads
            assert reads["v2"]["text"] == reads["c"]["text"]

            # Both write at the same instant, each with the revision it read.
            own_text = {face: f"{face} racer's draft, round {round_}" for face in racers}
            at = time.time() + 0.05
            for face, racer in racers.items():
                racer.send(cmd="race", text=own_text[face], at=at)
            results = {face: racer.next("race") for face, racer in racers.items()}
            assert {r["if_revision"] for r in results.values()} == {revision}
            codes = sorted(r["code"] for r in results.values())
            assert codes == [0, DRAFT_REVISION_CONFLICT], results
            winner = next(face for face, r in results.items() if r["code"] == 0)
            loser = next(face for face in racers if face != winner)
            # The loser is told what won: the winner's draft at the next revision.
            conflict = results[loser]
            assert conflict["current_text"] == own_text[winner], results
            assert conflict["current_revision"] == revision + 1, results
            if winner == "c":  # only the C face reports the new ConvInfo on success
                assert results["c"]["revision"] == revision + 1

            # The loser retries on top of the winner's revision, and succeeds.
            racers[loser].send(cmd="retry")
            retry = racers[loser].next("retry")
            assert retry["code"] == 0, retry
            assert retry["if_revision"] == revision + 1
            if loser == "c":
                assert retry["revision"] == revision + 2

            # No update lost: exactly two commits, the winner's then the loser's, and the
            # stored draft is the loser's at R + 2.
            committed = [watcher.next_notification()["params"] for _ in range(2)]
            assert [
                (texts(e["conv_array"][0]), e["conv_array"][0]["conv_draft_revision"])
                for e in committed
            ] == [
                ([own_text[winner]], revision + 1),
                ([own_text[loser]], revision + 2),
            ]
            [stored] = watcher.call("conv.get", {"convs": [{"conv_id": "race", "conv_type": C2C}]})
            assert texts(stored) == [own_text[loser]]
            assert stored["conv_draft_revision"] == revision + 2
        # Nothing else was committed (a round trip flushes any event still on its way).
        watcher.call("daemon.status")
        assert watcher.notifications == []
    finish_all(*racers.values())


# -- 3. kill -9 the daemon under connected client processes ----------------------------------


def history(line: LineClient) -> list[tuple[int, Any]]:
    """Every change the daemon has committed for the account, as (event, conv_array)."""
    current = line.call("conv.subscribe", {"since_seq": 0})["seq"]
    replay = [line.next_notification()["params"] for _ in range(current)]
    assert [e["seq"] for e in replay] == list(range(1, current + 1))
    return [(e["event"], e["conv_array"]) for e in replay]


def test_client_processes_ride_out_a_daemon_kill(
    daemon: DaemonProcess, spawn: Callable[..., Child]
) -> None:
    listener = spawn("c_listener", USER)
    writer = spawn("v2_writer", USER)
    for child in (listener, writer):
        child.next("ready", timeout=15)
    assert writer.next("state")["state"] == "connected"  # the first connection
    writer.send(cmd="set_draft", conv="c2c_bob", text="before the crash")
    assert writer.next("result")["code"] == 0
    assert listener.next("event", timeout=5)["conv_event"] == kTIMConvEvent_Add

    daemon.kill()  # SIGKILL: no goodbye, the socket file stays behind

    # Calls made during the outage fail at once, with an error naming the problem.
    writer.send(cmd="set_draft", conv="c2c_bob", text="during the outage")
    failed = writer.next("result")
    assert failed["code"] == ERR_IO_OPERATION_FAILED, failed
    assert failed["elapsed"] < 2.0, failed
    assert "not reachable" in failed["desc"]
    assert str(daemon.socket) in failed["desc"]
    listener.send(cmd="set_draft", conv="bob", text="during the outage")
    failed = listener.next("result")
    assert failed["ret"] == TIM_ERR_IO, failed
    assert failed["elapsed"] < 2.0, failed
    # The V2 SDK listener heard about it too.
    state = writer.next("state")
    assert (state["state"], state["code"]) == ("failed", ERR_IO_OPERATION_FAILED), state
    assert str(daemon.socket) in state["error"]

    # Keep the listener away until the changes below are committed (a client that is slow
    # to come back), so that they can only reach it through the resume's replay.
    os.kill(listener.pid, signal.SIGSTOP)
    try:
        daemon.start()
        with daemon.client(USER) as other:
            draft = {
                "draft_msg": {"message_elem_array": [{"elem_type": 0, "text_elem_content": ""}]}
            }
            for n in range(3):
                draft["draft_msg"]["message_elem_array"][0]["text_elem_content"] = f"away {n}"
                other.call("conv.set_draft", {"conv_id": "bob", "conv_type": C2C, "draft": draft})
            other.call("conv.create", {"conv_id": "carol", "conv_type": C2C})
            other.call("conv.pin", {"conv_id": "carol", "conv_type": C2C, "is_pinned": True})
            other.call("conv.delete", {"conv_id": "bob", "conv_type": C2C})
        # The writer came back on its own (logged in again): its calls work again.
        deadline = time.monotonic() + 15
        while writer.next("state", timeout=15)["state"] != "connected":
            assert time.monotonic() < deadline, "the writer did not reconnect"
        writer.send(cmd="set_draft", conv="c2c_dave", text="after the restart")
        assert writer.next("result")["code"] == 0
    finally:
        os.kill(listener.pid, signal.SIGCONT)

    with daemon.client(USER) as line:
        expected = history(line)
    # 1 before the crash, 3 drafts + create + pin + delete while away, 1 after the restart.
    assert len(expected) == 8
    # The listener, never restarted, reconnects by itself and receives every change it
    # missed, in seq order, none twice, framed by its resume's sync (Start .. Finish).
    received = [listener.next("event", timeout=15) for _ in range(len(expected) + 1)]
    finish_all(listener, writer)
    received += listener.pending("event")
    assert [e["conv_event"] for e in (received[0], received[-1])] == [
        kTIMConvEvent_Start,
        kTIMConvEvent_Finish,
    ]
    assert [(e["conv_event"], e["conv_array"]) for e in received[1:-1]] == expected[1:]


# -- 4. a subscriber that stops reading while another process writes thousands of drafts -----


DRAFTS = 3000


def test_a_stalled_subscriber_process_slows_no_one_and_loses_nothing(
    daemon: DaemonProcess, spawn: Callable[..., Child]
) -> None:
    stalled = spawn("stalled_subscriber", USER, str(DRAFTS))  # raw socket, small SO_RCVBUF
    healthy = spawn("client_subscriber", USER, str(DRAFTS))  # async Client
    stalled_ready = stalled.next("ready", timeout=15)
    assert stalled_ready["seq"] == 0
    assert healthy.next("ready", timeout=15)["seq"] == 0

    # The stalled subscriber reads nothing while the writer commits DRAFTS changes. The
    # writer and the healthy subscriber must finish regardless: were the daemon to wait for
    # the stalled one, they would not (and the test would hit its timeout). Measured on a
    # 2-core machine (3000 sequential set_draft calls, one healthy subscriber), the writer
    # took 4.0 / 4.2 / 4.7 s without a stalled subscriber and 4.2 / 4.5 / 4.0 s with one:
    # no slow-down beyond the noise. No timing is asserted here (bench/ measures).
    writer = spawn("bulk_writer", USER, str(DRAFTS))
    written = writer.next("done", timeout=45)
    assert written["count"] == DRAFTS
    received = healthy.next("done", timeout=30)["seqs"]
    assert received == list(range(1, DRAFTS + 1))
    # The daemon cut the stalled one off (its queue is bounded) while it was still stalled.
    assert f"disconnecting {stalled_ready['origin']}: outbound queue full" in daemon.logs()

    # It reads again: what reached it before the cut, then the end of the connection; it
    # reconnects, resumes after the last seq it processed and gets the rest.
    stalled.send(cmd="resume")
    caught_up = stalled.next("done", timeout=30)
    first, second = caught_up["first"], caught_up["second"]
    assert caught_up["cut"] is True, caught_up["end"]
    assert 0 < len(first) < DRAFTS
    assert first == list(range(1, len(first) + 1))
    assert second == list(range(len(first) + 1, DRAFTS + 1))
    assert caught_up["resume"].get("seq") == DRAFTS, caught_up["resume"]
    finish_all(stalled, healthy, writer)
