"""The daemon as a process: durability, graceful stop, one daemon per socket, file modes."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from support import DaemonProcess, LineClient, text_draft

SPEC_DRAFT = text_draft("this draft", user_define="this is userdefine", edit_time=1551271429)


def _key(conv_id: str, conv_type: int = 1) -> dict[str, Any]:
    return {"conv_id": conv_id, "conv_type": conv_type}


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _list(client: LineClient) -> list[dict[str, Any]]:
    conversations: list[dict[str, Any]] = client.call("conv.list", {"count": 1000})[
        "conversation_list_result_conv_list"
    ]
    return conversations


def _assert_durability(client: LineClient, durability: str) -> None:
    # The mode asked for is the one the daemon runs in: else both ids would test one mode.
    assert client.call("daemon.status")["store"]["durability"] == durability


# In both modes: "everysec" leaves each COMMIT in the OS without an fsync, which a kill -9 of
# convd (unlike a power cut) must not lose either.
@pytest.mark.parametrize("durability", ["full", "everysec"])
def test_kill_9_right_after_an_acknowledged_draft_keeps_it(
    daemon: DaemonProcess, durability: str
) -> None:
    with daemon.client() as client:
        _assert_durability(client, durability)
        client.call("conv.create", _key("other"))
        written = client.call("conv.set_draft", {**_key("Windows-02"), "draft": SPEC_DRAFT})
        daemon.kill()  # SIGKILL the moment the reply is in: no chance to flush anything
    assert daemon.socket.exists()  # left behind by the killed daemon
    daemon.start()
    with daemon.client() as client:
        (stored,) = client.call("conv.get", {"convs": [_key("Windows-02")]})
        assert stored == written
        assert stored["conv_draft"] == SPEC_DRAFT and stored["conv_draft_revision"] == 1
        assert [c["conv_id"] for c in _list(client)] == ["Windows-02", "other"]
        assert client.call("conv.subscribe")["seq"] == 2
    assert "removing stale socket" in daemon.logs()


@pytest.mark.parametrize("durability", ["full", "everysec"])
def test_many_acknowledged_writes_survive_kill_9(daemon: DaemonProcess, durability: str) -> None:
    with daemon.client() as client:
        _assert_durability(client, durability)
        requests = [
            {
                "jsonrpc": "2.0",
                "method": "conv.set_draft",
                "params": {**_key(f"u{n % 10}"), "draft": text_draft(f"v{n}")},
                "id": n,
            }
            for n in range(200)
        ]
        for request in requests:
            client.send_json(request)
        acknowledged = [client.read_json() for _ in requests]
        assert all("result" in r for r in acknowledged)
        daemon.kill()
    daemon.start()
    with daemon.client() as client:
        texts = {
            c["conv_id"]: c["conv_draft"]["draft_msg"]["message_elem_array"][0]["text_elem_content"]
            for c in _list(client)
        }
        assert texts == {f"u{n}": f"v{190 + n}" for n in range(10)}
        assert client.call("conv.subscribe")["seq"] == 200


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop_finishes_the_request_in_progress(
    daemon: DaemonProcess, signum: signal.Signals
) -> None:
    assert daemon.process is not None
    with daemon.client() as idle, daemon.client() as busy:
        busy.call("conv.create", _key("bob"))
        # Hold SQLite's write lock from outside: the next write waits inside the daemon.
        blocker = sqlite3.connect(daemon.db, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            busy.send_json(
                {
                    "jsonrpc": "2.0",
                    "method": "conv.set_draft",
                    "params": {**_key("bob"), "draft": text_draft("in flight")},
                    "id": "inflight",
                }
            )
            time.sleep(0.3)  # the daemon has read it and is waiting for the lock
            daemon.process.send_signal(signum)
            # An idle connection is closed at once...
            with pytest.raises(EOFError):
                idle.read_line()
            # ...but the daemon waits for the request in progress.
            time.sleep(0.2)
            assert daemon.process.poll() is None, daemon.logs()
        finally:
            blocker.rollback()
            blocker.close()
        reply = busy.read_json()
        assert reply["id"] == "inflight", reply
        assert reply["result"]["conv_draft_revision"] == 1, reply
        with pytest.raises(EOFError):
            busy.read_line()
    assert daemon.process.wait(10) == 0, daemon.logs()
    assert not daemon.socket.exists()
    assert "Traceback" not in daemon.logs()
    daemon.start()
    with daemon.client() as client:
        (bob,) = client.call("conv.get", {"convs": [_key("bob")]})
        elems = bob["conv_draft"]["draft_msg"]["message_elem_array"]
        assert elems == [{"elem_type": 0, "text_elem_content": "in flight"}]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_removes_the_socket_and_exits_0(daemon: DaemonProcess, signum: int) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob"))
    assert stat.S_ISSOCK(os.lstat(daemon.socket).st_mode)
    assert daemon.stop(signum) == 0
    assert not daemon.socket.exists()
    with pytest.raises(OSError), socket.socket(socket.AF_UNIX) as probe:
        probe.connect(str(daemon.socket))
    assert "Traceback" not in daemon.logs()


def _refused(second: DaemonProcess) -> str:
    second.start(wait=False)
    assert second.process is not None
    assert second.process.wait(15) == 1, second.logs()
    message = second.logs()
    assert "Traceback" not in message
    return message


def test_second_daemon_on_the_same_socket_is_refused(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", _key("bob"))
        # Same socket, same database.
        twin = DaemonProcess(daemon.root)
        twin.log = daemon.root / "twin.log"
        message = _refused(twin)
        assert "running convd" in message or "already" in message, message
        # Same socket, another database: the socket alone is enough to refuse.
        second = DaemonProcess(daemon.root)
        second.db = daemon.root / "other" / "convd.db"
        second.log = daemon.root / "second.log"
        message = _refused(second)
        assert str(daemon.socket) in message and "already" in message, message
        # The first daemon still owns the socket and serves on this connection and new ones.
        assert [c["conv_id"] for c in _list(client)] == ["bob"]
    assert daemon.socket.exists()
    with daemon.client() as client:
        assert [c["conv_id"] for c in _list(client)] == ["bob"]


def test_stale_socket_is_cleaned_on_start(short_dir: Path) -> None:
    process = DaemonProcess(short_dir)
    process.socket.parent.mkdir(mode=0o700)
    # A socket file nobody listens on: what a crashed daemon leaves.
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(process.socket))
    assert stat.S_ISSOCK(os.lstat(process.socket).st_mode)
    process.start()
    try:
        with process.client() as client:
            assert client.call("conv.list")["conversation_list_result_conv_list"] == []
        assert "removing stale socket" in process.logs()
    finally:
        assert process.stop() == 0
    assert not process.socket.exists()


def test_file_modes(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.set_draft", {**_key("bob"), "draft": text_draft("x")})
        assert _mode(daemon.socket) == 0o600
        assert _mode(daemon.socket.parent) == 0o700
        assert _mode(daemon.db.parent) == 0o700
        database_files = [
            p for p in daemon.db.parent.iterdir() if p.name.startswith(daemon.db.name)
        ]
        assert daemon.db in database_files
        for path in database_files:
            assert _mode(path) == 0o600, path
        lock = daemon.socket.with_name(daemon.socket.name + ".lock")
        if lock.exists():
            assert _mode(lock) == 0o600


def test_refuses_a_socket_directory_others_can_enter(short_dir: Path) -> None:
    process = DaemonProcess(short_dir)
    process.socket.parent.mkdir()
    process.socket.parent.chmod(0o755)
    process.start(wait=False)
    assert process.process is not None
    assert process.process.wait(15) == 1
    logs = process.logs()
    assert "chmod 700" in logs and str(process.socket.parent) in logs, logs
    assert not process.socket.exists()


def test_database_persists_across_restart(daemon: DaemonProcess) -> None:
    with daemon.client("alice") as alice, daemon.client("bob") as bob:
        for n in range(5):
            alice.call("conv.create", _key(f"u{n}"))
        alice.call("conv.create", _key("team", 2))
        alice.call("conv.set_draft", {**_key("u1"), "draft": SPEC_DRAFT})
        alice.call("conv.pin", {**_key("u3"), "is_pinned": True})
        alice.call("conv.set_draft", {**_key("u4"), "draft": text_draft("gone")})
        alice.call("conv.cancel_draft", _key("u4"))
        alice.call("conv.delete", _key("u0"))
        bob.call("conv.set_draft", {**_key("alice"), "draft": text_draft("bob's")})
        before_alice, before_bob = _list(alice), _list(bob)
        seq = alice.call("conv.subscribe")["seq"]
    assert daemon.stop() == 0
    daemon.start()
    with daemon.client("alice") as alice, daemon.client("bob") as bob:
        assert _list(alice) == before_alice
        assert _list(bob) == before_bob
        assert alice.call("conv.subscribe")["seq"] == seq
        # Order keys continue: a new activation goes on top of the unpinned ones.
        alice.call("conv.create", _key("fresh"))
        assert [c["conv_id"] for c in _list(alice)][:2] == ["u3", "fresh"]
        status = alice.call("daemon.status")
        assert status["conversations"] == len(before_alice) + len(before_bob) + 1


def test_a_connection_attempted_during_shutdown_is_refused_at_once(daemon: DaemonProcess) -> None:
    with daemon.client() as busy:
        # Keep the daemon in its shutdown phase: an outside writer holds SQLite's write lock,
        # so this connection's write cannot finish until the lock is released.
        blocker = sqlite3.connect(daemon.db, timeout=0, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            pending = threading.Thread(
                target=busy.request,
                args=("conv.create", {"conv_id": "late", "conv_type": 1}),
                daemon=True,
            )
            pending.start()
            time.sleep(0.3)
            assert daemon.process is not None
            daemon.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            # Still shutting down (the write in flight waits for the lock) ...
            assert daemon.process.poll() is None
            # ... yet a new connection is refused at once instead of waiting in the backlog.
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(2)
            try:
                with pytest.raises(OSError):
                    probe.connect(str(daemon.socket))
            finally:
                probe.close()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        pending.join(10)
        assert daemon.process.wait(15) == 0
