"""convctl's conv mark/unmark, group commands and conv list filters, as processes against the
real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from support import DaemonProcess


def convctl(daemon: DaemonProcess, *args: str) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "convd_client.cli", "--user", "alice", *args],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def ok(daemon: DaemonProcess, *args: str) -> Any:
    done = convctl(daemon, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_marks_groups_and_filters(daemon: DaemonProcess) -> None:
    for conv in ("bob", "carol", "group_g1"):
        ok(daemon, "conv", "create", conv)
    results = ok(daemon, "conv", "mark", "bob", "group_g1", "--mark", "star")
    assert [r["result_code"] for r in results] == [0, 0]
    assert [r["conversation_id"] for r in results] == ["c2c_bob", "group_g1"]
    ok(daemon, "conv", "mark", "bob", "--mark", "0x100000000")
    assert ok(daemon, "conv", "get", "bob")["conv_mark_array"] == [1, 1 << 32]
    ok(daemon, "conv", "unmark", "group_g1", "--mark", "star")
    assert [c["conv_id"] for c in ok(daemon, "conv", "list", "--mark", "star")] == ["bob"]
    assert [c["conv_id"] for c in ok(daemon, "conv", "list", "--mark", "none")] == [
        "g1",
        "carol",
    ]
    ok(daemon, "group", "create", "friends", "bob")
    ok(daemon, "group", "add", "friends", "--type", "group", "g1")
    assert ok(daemon, "group", "list") == ["friends"]
    assert [c["conv_id"] for c in ok(daemon, "conv", "list", "--group", "friends")] == [
        "g1",
        "bob",
    ]
    listed = ok(daemon, "conv", "list", "--group", "friends", "--conv-type", "c2c")
    assert [c["conv_id"] for c in listed] == ["bob"]
    assert [c["conv_id"] for c in ok(daemon, "conv", "list", "--group", "")] == ["carol"]
    assert ok(daemon, "group", "rename", "friends", "pals") == {}
    assert ok(daemon, "conv", "get", "bob")["conv_conversation_group_array"] == ["pals"]
    ok(daemon, "group", "remove", "pals", "bob")
    ok(daemon, "draft", "set", "carol", "hi")
    assert [c["conv_id"] for c in ok(daemon, "conv", "list", "--has-draft")] == ["carol"]
    assert [c["conv_id"] for c in ok(daemon, "conv", "list", "--no-draft")] == ["g1", "bob"]
    assert ok(daemon, "group", "delete", "pals") == {}
    assert ok(daemon, "group", "list") == []


def test_plain_output_and_failures(daemon: DaemonProcess) -> None:
    ok(daemon, "conv", "create", "bob")
    done = convctl(daemon, "conv", "mark", "bob", "nobody", "--mark", "fold")
    assert done.returncode == 1
    assert done.stdout == "marked c2c_bob\n"
    assert "convctl: c2c_nobody: error 6004: no conversation c2c_nobody" in done.stderr
    done = convctl(daemon, "group", "delete", "nope")
    assert (done.returncode, done.stderr.split(":")[1].strip()) == (1, "error 51009")
    done = convctl(daemon, "conv", "mark", "bob", "--mark", "sparkly")
    assert done.returncode == 2 and "invalid mark" in done.stderr
    done = convctl(daemon, "conv", "mark", "bob", "--mark", "0x10")
    assert done.returncode == 1 and "error 6017" in done.stderr
    done = convctl(daemon, "group", "create", "x" * 33)
    assert done.returncode == 1 and "error 51011" in done.stderr
    done = convctl(daemon, "group", "create", "team")
    assert (done.returncode, done.stdout) == (0, "created team\n")
    done = convctl(daemon, "group", "list")
    assert done.stdout == "team\n"
