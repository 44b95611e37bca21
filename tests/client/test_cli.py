"""``convctl``: exit codes 0/1/2/3 as a real process, and the subcommands in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from convd_client import cli
from support import DaemonProcess


def convctl(daemon: DaemonProcess, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "convd_client.cli", *args],
        env=env if env is not None else daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# -- as a process ------------------------------------------------------------------------------


def test_call_prints_the_result_as_json(shared_daemon: DaemonProcess) -> None:
    done = convctl(shared_daemon, "call", "daemon.status")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["socket_path"] == str(shared_daemon.socket)


def test_call_logs_in_first_when_given_a_user(shared_daemon: DaemonProcess, user: str) -> None:
    params = json.dumps({"conv_id": "bob", "conv_type": 1})
    done = convctl(shared_daemon, "--user", user, "call", "conv.create", params)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["conv_id"] == "bob"
    env = dict(shared_daemon.env, CONVD_USER=user)
    done = convctl(shared_daemon, "call", "conv.list", env=env)
    assert done.returncode == 0, done.stderr
    assert [
        c["conv_id"] for c in json.loads(done.stdout)["conversation_list_result_conv_list"]
    ] == ["bob"]


def test_an_error_reply_exits_1(shared_daemon: DaemonProcess, user: str) -> None:
    params = json.dumps({"conv_id": "ghost", "conv_type": 1})
    done = convctl(shared_daemon, "--user", user, "call", "conv.delete", params)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "6004" in done.stderr
    done = convctl(shared_daemon, "call", "conv.list")  # not logged in
    assert done.returncode == 1
    assert "6014" in done.stderr


def test_usage_errors_exit_2(shared_daemon: DaemonProcess) -> None:
    assert convctl(shared_daemon).returncode == 2
    done = convctl(shared_daemon, "call", "conv.list", "{not json")
    assert done.returncode == 2
    assert "JSON" in done.stderr
    assert convctl(shared_daemon, "call", "conv.list", "[1]").returncode == 2
    assert convctl(shared_daemon, "frobnicate").returncode == 2
    env = dict(shared_daemon.env)
    env.pop("CONVD_USER", None)
    done = convctl(shared_daemon, "conv", "list", env=env)
    assert done.returncode == 2
    assert "--user" in done.stderr


def test_unreachable_daemon_exits_3(shared_daemon: DaemonProcess, short_dir: Path) -> None:
    missing = short_dir / "nobody.sock"
    done = convctl(shared_daemon, "--socket", str(missing), "call", "daemon.status")
    assert done.returncode == 3
    assert str(missing) in done.stderr
    assert "hint:" in done.stderr
    env = dict(shared_daemon.env, CONVD_SOCKET=str(missing))
    assert convctl(shared_daemon, "status", env=env).returncode == 3


def test_help_and_version(shared_daemon: DaemonProcess) -> None:
    done = convctl(shared_daemon, "--help")
    assert done.returncode == 0
    assert "call" in done.stdout
    done = convctl(shared_daemon, "--version")
    assert done.returncode == 0
    assert done.stdout.startswith("convctl ")


# -- subcommands, in-process -------------------------------------------------------------------


@pytest.fixture
def env(shared_daemon: DaemonProcess, user: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CONVD_SOCKET", str(shared_daemon.socket))
    monkeypatch.setenv("CONVD_USER", user)
    return user


def test_conv_and_draft_commands(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "conv", "create", "bob")[0] == 0
    assert run(capsys, "conv", "create", "group_team")[0] == 0
    code, out, _ = run(capsys, "draft", "set", "c2c_bob", "hello there")
    assert (code, out) == (0, "revision 1\n")
    code, out, _ = run(capsys, "draft", "get", "bob")
    assert (code, out) == (0, "hello there\n")
    code, out, _ = run(capsys, "conv", "pin", "group_team")
    assert code == 0
    code, out, _ = run(capsys, "conv", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["CONVERSATION", "PINNED", "ORDER", "REV", "DRAFT"]
    assert lines[1].split()[:2] == ["group_team", "yes"]
    assert lines[2].split()[0] == "c2c_bob"
    assert lines[2].endswith("hello there")
    code, out, _ = run(capsys, "conv", "list", "--json")
    assert [c["conv_id"] for c in json.loads(out)] == ["team", "bob"]
    code, out, _ = run(capsys, "conv", "get", "c2c_bob", "--json")
    assert json.loads(out)[0]["conv_draft_revision"] == 1
    code, _, err = run(capsys, "draft", "set", "bob", "stale", "--if-revision", "0")
    assert code == 1
    assert "90001" in err
    code, out, _ = run(capsys, "draft", "clear", "bob", "--if-revision", "1")
    assert (code, out) == (0, "revision 2\n")
    code, out, _ = run(capsys, "draft", "get", "bob", "--json")
    assert json.loads(out) == {"draft": None, "revision": 2}
    assert run(capsys, "conv", "unpin", "group_team")[0] == 0
    assert run(capsys, "conv", "delete", "group_team")[0] == 0
    code, _, err = run(capsys, "conv", "get", "group_team")
    assert code == 1
    assert "6004" in err
    assert run(capsys, "conv", "get", "c2c_")[0] == 2


def test_status_command(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "version: " in out
    code, out, _ = run(capsys, "status", "--json")
    assert "pid" in json.loads(out)


def test_watch_prints_events(shared_daemon: DaemonProcess, user: str) -> None:
    env = dict(shared_daemon.env, CONVD_USER=user)
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "convd_client.cli",
            "watch",
            "--since",
            "0",
            "--count",
            "2",
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with shared_daemon.client(user) as line:
            # The watcher subscribes after starting; replay from seq 0 closes the race.
            line.call("conv.create", {"conv_id": "w1", "conv_type": 1})
            line.call("conv.delete", {"conv_id": "w1", "conv_type": 1})
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
    assert watcher.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == [0, 1]


def test_backup_command(env: str, short_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = short_dir / "copy.db"
    code, out, _ = run(capsys, "backup", str(target))
    assert code == 0
    assert out.startswith(f"wrote {target} (")
    code, _, err = run(capsys, "backup", str(target))
    assert code == 1
    assert "90005" in err
    code, out, _ = run(capsys, "backup", str(target), "--overwrite", "--json")
    assert code == 0
    assert json.loads(out)["path"] == str(target)
