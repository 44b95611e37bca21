"""Batch delete, custom data and the unread count shared across OS processes: a V2 process,
a C-face process and ``convctl``, each its own program (``tests/procs/v2_batch.py``,
``tests/procs/tim_batch.py``, the installed ``convctl``), on one real daemon. What one of them
changes, the others see, as events and as data."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import DaemonProcess

PROCS = Path(__file__).resolve().parents[1] / "procs"
USER = "alice"
ERR_INVALID_CONVERSATION = 6004
ERR_INVALID_PARAMETERS = 6017
kTIMConvEvent_Del = 1
kTIMConvEvent_Update = 2


class Program:
    """A helper from tests/procs: JSON commands on stdin, JSON lines by ``kind`` on stdout."""

    def __init__(self, daemon: DaemonProcess, name: str, *args: str) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, str(PROCS / f"{name}.py"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=daemon.env,
            text=True,
            bufsize=1,
        )
        self._queues: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _queue(self, kind: str) -> queue.Queue[dict[str, Any]]:
        with self._lock:
            return self._queues.setdefault(kind, queue.Queue())

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            self._queue(message["kind"]).put(message)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.extend(self.process.stderr)

    def next(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:
        try:
            return self._queue(kind).get(timeout=timeout)
        except queue.Empty:
            fatal = list(self._queue("fatal").queue)
            raise AssertionError(
                f"no {kind!r} from {self.name} within {timeout} s; fatal: {fatal}; "
                f"stderr:\n{''.join(self._stderr[-40:])}"
            ) from None

    def pending(self, kind: str) -> list[dict[str, Any]]:
        found = []
        with contextlib.suppress(queue.Empty):
            while True:
                found.append(self._queue(kind).get_nowait())
        return found

    def command(self, **command: Any) -> dict[str, Any]:
        """Send one command and return its ``result`` line."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.next("result")

    def finish(self) -> int:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        code = self.process.wait(15)
        self.close()
        return code

    def close(self) -> None:
        """Close its pipes, once its output is read (it has exited)."""
        for thread in self._threads:
            thread.join(5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@pytest.fixture
def programs(daemon: DaemonProcess) -> Iterator[list[Program]]:
    """Started programs are ended (and their exit codes checked) after the test."""
    started: list[Program] = []
    try:
        yield started
    finally:
        codes = []
        for program in started:
            if program.process.poll() is None:
                try:
                    codes.append(program.finish())
                except subprocess.TimeoutExpired:
                    program.process.kill()
                    program.process.wait(10)
                    program.close()
                    codes.append(-9)
            else:
                program.close()
                codes.append(program.process.returncode)
        assert codes == [0] * len(codes), codes


def start(daemon: DaemonProcess, programs: list[Program], name: str) -> Program:
    program = Program(daemon, name, USER)
    programs.append(program)
    program.next("ready")
    return program


def convctl(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = daemon.env
    env["CONVD_USER"] = USER
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["convctl", *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_v2_batch_calls_reach_the_c_face_and_convctl(
    daemon: DaemonProcess, programs: list[Program]
) -> None:
    c_face = start(daemon, programs, "tim_batch")
    v2 = start(daemon, programs, "v2_batch")
    assert convctl(daemon, "draft", "set", "c2c_bob", "see you").returncode == 0
    assert convctl(daemon, "conv", "create", "group_team").returncode == 0
    for _ in range(2):
        c_face.next("event")  # the two Adds

    outcome = v2.command(cmd="set_custom_data", ids=["c2c_bob", "group_team"], data="⭐ work")
    assert (outcome["code"], outcome["value"]) == (
        0,
        [
            {"conversationID": "c2c_bob", "resultCode": 0, "resultInfo": ""},
            {"conversationID": "group_team", "resultCode": 0, "resultInfo": ""},
        ],
    )
    updates = [c_face.next("event") for _ in range(2)]
    assert [u["conv_event"] for u in updates] == [kTIMConvEvent_Update] * 2
    assert [
        (u["conv_array"][0]["conv_id"], u["conv_array"][0]["conv_custom_data"]) for u in updates
    ] == [
        ("bob", "⭐ work"),
        ("team", "⭐ work"),
    ]
    shown = convctl(daemon, "--json", "conv", "get", "c2c_bob")
    assert json.loads(shown.stdout)["conv_custom_data"] == "⭐ work"

    outcome = v2.command(cmd="delete_list", ids=["c2c_bob", "c2c_nobody", "group_team"])
    assert outcome["code"] == 0
    assert [r["resultCode"] for r in outcome["value"]] == [0, ERR_INVALID_CONVERSATION, 0]
    deletes = [c_face.next("event") for _ in range(2)]
    assert [(d["conv_event"], d["conv_array"]) for d in deletes] == [
        (kTIMConvEvent_Del, [{"conv_id": "bob", "conv_type": 1}]),
        (kTIMConvEvent_Del, [{"conv_id": "team", "conv_type": 2}]),
    ]
    listed = convctl(daemon, "--json", "conv", "list")
    assert json.loads(listed.stdout) == []
    # Its own changes reached the V2 process's listener too.
    names = [e["name"] for e in v2.pending("event")]
    assert names.count("onConversationDeleted") == 2


def test_c_face_and_convctl_batch_calls_reach_the_v2_listener(
    daemon: DaemonProcess, programs: list[Program]
) -> None:
    v2 = start(daemon, programs, "v2_batch")
    c_face = start(daemon, programs, "tim_batch")
    for name in ("a", "b", "c"):
        assert convctl(daemon, "conv", "create", f"c2c_{name}").returncode == 0
    assert [v2.next("event")["name"] for _ in range(3)] == ["onNewConversation"] * 3

    outcome = c_face.command(cmd="set_custom_data", ids=["c2c_a", "c2c_b"], data="label")
    assert (outcome["ret"], outcome["code"]) == (0, 0)
    assert outcome["json"] == [
        {
            "conversation_operation_result_conversation_id": "c2c_a",
            "conversation_operation_result_result_code": 0,
            "conversation_operation_result_result_info": "",
        },
        {
            "conversation_operation_result_conversation_id": "c2c_b",
            "conversation_operation_result_result_code": 0,
            "conversation_operation_result_result_info": "",
        },
    ]
    changed = [v2.next("event") for _ in range(2)]
    assert [c["name"] for c in changed] == ["onConversationChanged"] * 2
    assert [c["conversations"][0]["customData"] for c in changed] == ["label", "label"]
    got = v2.command(cmd="get", conv="c2c_a")
    assert got["value"] == {"conversationID": "c2c_a", "customData": "label"}

    # convctl's batch commands, seen by the V2 listener.
    cleared = convctl(daemon, "conv", "set-custom-data", "c2c_a", "--data", "")
    assert (cleared.returncode, cleared.stdout) == (0, "set custom data of c2c_a\n")
    event = v2.next("event")
    assert event["conversations"][0] == {
        "conversationID": "c2c_a",
        "customData": "",
        "draftText": None,
    }
    deleted = convctl(daemon, "conv", "delete-many", "c2c_a", "c2c_gone", "c2c_b")
    assert deleted.returncode == 1  # one of them did not exist
    assert deleted.stdout == "deleted c2c_a c2c_b\n"
    assert deleted.stderr == "convctl: c2c_gone: error 6004: no conversation c2c_gone\n"
    assert [v2.next("event") for _ in range(2)] == [
        {"kind": "event", "name": "onConversationDeleted", "ids": ["c2c_a"]},
        {"kind": "event", "name": "onConversationDeleted", "ids": ["c2c_b"]},
    ]
    as_json = convctl(daemon, "--json", "conv", "delete-many", "c2c_c")
    assert (as_json.returncode, json.loads(as_json.stdout)) == (
        0,
        [
            {
                "conversation_id": "c2c_c",
                "conv_id": "c",
                "conv_type": 1,
                "result_code": 0,
                "result_info": "",
            }
        ],
    )
    assert v2.next("event")["ids"] == ["c2c_c"]
    # Limits through convctl: more than 100 is the daemon's 6017, exit status 1.
    too_many = convctl(daemon, "conv", "delete-many", *[f"u{n}" for n in range(101)])
    assert too_many.returncode == 1
    assert too_many.stderr.startswith(f"convctl: error {ERR_INVALID_PARAMETERS}: ")


def test_the_unread_count_is_zero_in_both_faces_and_never_changes(
    daemon: DaemonProcess, programs: list[Program]
) -> None:
    v2 = start(daemon, programs, "v2_batch")
    c_face = start(daemon, programs, "tim_batch")
    assert v2.command(cmd="unread") == {
        "kind": "result",
        "cmd": "unread",
        "code": 0,
        "desc": "",
        "value": 0,
    }
    outcome = c_face.command(cmd="unread")
    assert (outcome["ret"], outcome["code"]) == (0, 0)
    assert outcome["json"] == {"conv_get_total_unread_message_count_result_unread_count": 0}
    assert convctl(daemon, "draft", "set", "c2c_bob", "hi").returncode == 0
    c_face.next("event")
    v2.next("event")
    for program in (v2, c_face):
        assert program.finish() == 0
    assert [e for e in v2.pending("event") if e["name"] == "onTotalUnreadMessageCountChanged"] == []
    assert c_face.pending("unread_changed") == []
