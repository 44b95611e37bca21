"""``convctl``: exit codes 0/1/2/3 as a real process, and the subcommands in-process."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest

from convd_client import cli
from support import DaemonProcess, text_draft


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


def test_arguments_that_are_not_utf8_or_a_timeout_that_is_nan_are_usage_errors(
    shared_daemon: DaemonProcess, user: str
) -> None:
    # "\udcff": the byte 0xff on the command line, as Python decodes it (surrogateescape).
    done = convctl(shared_daemon, "--user", user, "draft", "set", "bob", "\udcff")
    assert done.returncode == 2
    assert "TEXT is not valid UTF-8" in done.stderr
    done = convctl(shared_daemon, "--user", "al\udcffice", "conv", "list")
    assert done.returncode == 2
    assert "--user (or $CONVD_USER) is not valid UTF-8" in done.stderr
    done = convctl(
        shared_daemon, "--user", user, "conv", "set-custom-data", "bob", "--data", "\udcfe"
    )
    assert done.returncode == 2
    assert "--data is not valid UTF-8" in done.stderr
    done = convctl(shared_daemon, "backup", "\udcff.db")
    assert done.returncode == 2
    assert "PATH is not valid UTF-8" in done.stderr
    for timeout in ("nan", "inf"):
        done = convctl(shared_daemon, "--timeout", timeout, "status")
        assert done.returncode == 2
        assert "--timeout must be positive" in done.stderr


def test_usage_errors_are_found_before_connecting(
    shared_daemon: DaemonProcess, short_dir: Path
) -> None:
    # A bad conversation name is a usage error (2) even when convd cannot be reached (3).
    missing = str(short_dir / "nobody.sock")
    done = convctl(shared_daemon, "--socket", missing, "--user", "u", "conv", "get", "c2c_")
    assert done.returncode == 2
    assert "c2c_<userID>" in done.stderr
    done = convctl(shared_daemon, "--socket", missing, "--user", "u", "watch", "--count", "-1")
    assert done.returncode == 2


def test_unreachable_daemon_exits_3(shared_daemon: DaemonProcess, short_dir: Path) -> None:
    missing = short_dir / "nobody.sock"
    done = convctl(shared_daemon, "--socket", str(missing), "call", "daemon.status")
    assert done.returncode == 3
    assert str(missing) in done.stderr
    assert "hint:" in done.stderr
    env = dict(shared_daemon.env, CONVD_SOCKET=str(missing))
    assert convctl(shared_daemon, "status", env=env).returncode == 3


def test_a_closed_stdout_ends_quietly(shared_daemon: DaemonProcess) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `convctl status | true`
    try:
        done = subprocess.run(
            [sys.executable, "-m", "convd_client.cli", "status"],
            env=shared_daemon.env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_help_and_version(shared_daemon: DaemonProcess) -> None:
    done = convctl(shared_daemon, "--help")
    assert done.returncode == 0
    assert "call" in done.stdout
    # The exit codes are documented in the epilog.
    epilog = done.stdout[done.stdout.index("exit status:") :]
    for code in ("0 ", "1 ", "2 ", "3 ", "130 "):
        assert f"\n  {code}" in epilog
    for words in (
        ("conv", "get", "--help"),
        ("draft", "set", "--help"),
        ("watch", "--help"),
        ("backup", "--help"),
    ):
        done = convctl(shared_daemon, *words)
        assert done.returncode == 0, words
        assert done.stdout.startswith("usage: convctl "), words
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
    assert json.loads(out)["conv_draft_revision"] == 1
    code, _, err = run(capsys, "draft", "set", "bob", "stale", "--if-revision", "0")
    assert code == 1
    assert "90001" in err
    code, out, _ = run(capsys, "draft", "clear", "bob", "--if-revision", "1")
    assert (code, out) == (0, "revision 2\n")
    code, out, _ = run(capsys, "draft", "get", "bob", "--json")
    assert json.loads(out) == {"text": None, "revision": 2, "draft": None}
    # Options go before or after the command's arguments, and between them too.
    code, out, _ = run(capsys, "draft", "set", "bob", "--if-revision", "2", "between")
    assert (code, out) == (0, "revision 3\n")
    code, out, _ = run(capsys, "draft", "get", "bob")
    assert (code, out) == (0, "between\n")
    code, _, err = run(capsys, "draft", "set", "bob", "--if-revision", "3", "a", "b")
    assert code == 2 and "unrecognized arguments: a b" in err
    code, _, err = run(capsys, "draft", "set", "bob", "--if-revision", "3", "--frobnicate")
    assert code == 2 and "unrecognized arguments: --frobnicate" in err
    code, out, _ = run(capsys, "draft", "set", "bob", "--if-revision", "3", "-5")
    assert (code, out) == (0, "revision 4\n")
    code, out, _ = run(capsys, "draft", "set", "bob", "--if-revision", "4", "--", "-x")
    assert (code, out) == (0, "revision 5\n")
    assert run(capsys, "draft", "get", "bob")[1] == "-x\n"
    params = json.dumps({"conv_id": "bob", "conv_type": 1})
    code, out, _ = run(capsys, "call", "conv.create", "--timeout", "5", params)
    assert code == 0 and json.loads(out)["conv_id"] == "bob"
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


def test_conversations_named_by_type_and_id(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "conv", "create", "--type", "group", "team1", "--json")
    assert code == 0
    assert (json.loads(out)["conv_id"], json.loads(out)["conv_type"]) == ("team1", 2)
    # With --type the id is taken as it is, prefix-like text included.
    code, out, _ = run(capsys, "draft", "set", "--type", "c2c", "group_x", "hi", "--json")
    assert code == 0
    assert (json.loads(out)["conv_id"], json.loads(out)["conv_type"]) == ("group_x", 1)
    code, out, _ = run(capsys, "draft", "get", "c2c_group_x")
    assert (code, out) == (0, "hi\n")
    code, out, _ = run(capsys, "conv", "get", "group_team1")
    assert code == 0
    assert out.splitlines()[1].split()[0] == "group_team1"
    assert run(capsys, "conv", "pin", "--type", "group", "team1", "--json")[1] == "{}\n"
    assert run(capsys, "conv", "unpin", "--type", "group", "team1", "--json")[1] == "{}\n"
    assert run(capsys, "conv", "delete", "--type", "group", "team1", "--json")[1] == "{}\n"
    assert run(capsys, "conv", "get", "--type", "nope", "team1")[0] == 2
    assert run(capsys, "conv", "get", "--type", "c2c", "")[0] == 2


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_draft_set_reads_stdin(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, "line one\nline two ✓\n".encode())
    code, out, _ = run(capsys, "draft", "set", "c2c_bob")
    assert (code, out) == (0, "revision 1\n")
    code, out, _ = run(capsys, "draft", "get", "c2c_bob", "--json")
    assert json.loads(out)["text"] == "line one\nline two ✓"  # one trailing newline dropped
    _stdin(monkeypatch, b"from a dash\r\n\n")
    code, out, _ = run(capsys, "draft", "set", "c2c_bob", "-", "--if-revision", "1")
    assert (code, out) == (0, "revision 2\n")
    code, out, _ = run(capsys, "draft", "get", "c2c_bob")
    assert (code, out) == (0, "from a dash\r\n\n")
    _stdin(monkeypatch, b"")  # empty: clears
    code, out, _ = run(capsys, "draft", "set", "c2c_bob", "--json")
    assert code == 0
    assert json.loads(out)["conv_is_has_draft"] is False
    _stdin(monkeypatch, b"\xff\xfe")
    code, _, err = run(capsys, "draft", "set", "c2c_bob")
    assert code == 2
    assert "UTF-8" in err


def test_draft_set_reads_stdin_as_a_process(shared_daemon: DaemonProcess, user: str) -> None:
    env = dict(shared_daemon.env, CONVD_USER=user)
    done = subprocess.run(
        [sys.executable, "-m", "convd_client.cli", "draft", "set", "c2c_bob"],
        input="piped text\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (0, "revision 1\n"), done.stderr
    assert convctl(shared_daemon, "draft", "get", "bob", env=env).stdout == "piped text\n"


def _start_watch(daemon: DaemonProcess, user: str, *args: str) -> subprocess.Popen[str]:
    watcher = subprocess.Popen(
        [sys.executable, "-m", "convd_client.cli", "watch", *args],
        env=dict(daemon.env, CONVD_USER=user),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watcher.stderr is not None
    notice = watcher.stderr.readline()  # written once subscribed: no event can be missed
    assert notice.startswith(f"convctl: watching {user}'s conversations, now at seq "), notice
    return watcher


def _readline(stream: IO[str] | None) -> str:
    assert stream is not None
    return stream.readline()


def test_watch_prints_each_event_at_once_and_exits_0_on_sigint(
    shared_daemon: DaemonProcess, user: str
) -> None:
    watcher = _start_watch(shared_daemon, user)
    try:
        with shared_daemon.client(user) as line:
            line.call(
                "conv.set_draft",
                {"conv_id": "bob", "conv_type": 1, "draft": text_draft("see you at 6")},
            )
            # Read while the watcher still runs: the line was flushed, not buffered.
            first = _readline(watcher.stdout)
            assert first == '1 Add c2c_bob rev 1 draft "see you at 6"\n'
            line.call("conv.pin", {"conv_id": "bob", "conv_type": 1, "is_pinned": True})
            assert (
                _readline(watcher.stdout) == '2 Update c2c_bob pinned rev 1 draft "see you at 6"\n'
            )
            line.call("conv.delete", {"conv_id": "bob", "conv_type": 1})
            assert _readline(watcher.stdout) == "3 Del c2c_bob\n"
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
    assert watcher.returncode == 0
    assert out == ""
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err


def test_watch_stops_quietly_when_its_reader_goes_away(
    shared_daemon: DaemonProcess, user: str
) -> None:
    watcher = _start_watch(shared_daemon, user, "--json")
    try:
        with shared_daemon.client(user) as line:
            line.call("conv.create", {"conv_id": "bob", "conv_type": 1})
            event = json.loads(_readline(watcher.stdout))
            assert (event["seq"], event["event"], event["conversation_ids"]) == (1, 0, ["c2c_bob"])
            assert watcher.stdout is not None
            watcher.stdout.close()  # like `convctl watch | head -n1`
            line.call("conv.delete", {"conv_id": "bob", "conv_type": 1})
        assert watcher.wait(timeout=30) == 0
        assert watcher.stderr is not None
        assert watcher.stderr.read() == ""
    finally:
        if watcher.poll() is None:
            watcher.kill()
        watcher.communicate()


# -- socket path -------------------------------------------------------------------------------


def test_socket_path_names_the_socket_convctl_uses(
    shared_daemon: DaemonProcess, short_dir: Path
) -> None:
    env = dict(shared_daemon.env)
    done = convctl(shared_daemon, "socket-path", env=env)
    assert (done.returncode, done.stdout) == (0, f"{shared_daemon.socket}\n")
    done = convctl(shared_daemon, "socket-path", "--socket", "elsewhere.sock", env=env)
    assert done.stdout == f"{Path.cwd() / 'elsewhere.sock'}\n"
    del env["CONVD_SOCKET"]
    env["XDG_RUNTIME_DIR"] = str(short_dir)
    assert convctl(shared_daemon, "socket-path", env=env).stdout == (
        f"{short_dir / 'convd' / 'convd.sock'}\n"
    )
    # Without XDG_RUNTIME_DIR: the daemon's private fallback under $TMPDIR (no daemon needed).
    del env["XDG_RUNTIME_DIR"]
    env["TMPDIR"] = str(short_dir)
    fallback = short_dir / f"convd-{os.getuid()}" / "convd.sock"
    done = convctl(shared_daemon, "--json", "socket-path", env=env)
    assert (done.returncode, json.loads(done.stdout)) == (0, {"socket_path": str(fallback)})
    done = convctl(shared_daemon, "status", env=env)
    assert done.returncode == 3
    assert str(fallback) in done.stderr
    assert "XDG_RUNTIME_DIR is unset" in done.stderr


def test_help_names_the_fallback_socket_path(shared_daemon: DaemonProcess) -> None:
    text = " ".join(convctl(shared_daemon, "--help").stdout.split())
    assert "${TMPDIR:-/tmp}/convd-$UID/convd.sock when XDG_RUNTIME_DIR is unset" in text
    assert "convctl socket-path" in text


# -- consistency -------------------------------------------------------------------------------


def test_a_revision_conflict_is_one_line_and_data_only_with_json(
    shared_daemon: DaemonProcess, user: str
) -> None:
    env = dict(shared_daemon.env, CONVD_USER=user)
    assert convctl(shared_daemon, "draft", "set", "bob", "one", env=env).returncode == 0
    done = convctl(shared_daemon, "draft", "set", "bob", "two", "--if-revision", "0", env=env)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "convctl: error 90001: draft revision is 1, not 0\n"
    done = convctl(
        shared_daemon, "--json", "draft", "set", "bob", "two", "--if-revision", "0", env=env
    )
    assert done.returncode == 1
    assert done.stderr == "convctl: error 90001: draft revision is 1, not 0\n"
    error = json.loads(done.stdout)["error"]
    assert error["code"] == 90001
    assert error["data"]["conv_draft_revision"] == 1
    assert error["data"]["conv_draft"]["draft_msg"]["message_elem_array"][0] == {
        "elem_type": 0,
        "text_elem_content": "one",
    }


def test_backup_onto_an_existing_file_names_the_flag(
    env: str, short_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = short_dir / "exists.db"
    target.write_text("mine")
    code, out, err = run(capsys, "backup", str(target))
    assert (code, out) == (1, "")
    assert err == (
        f"convctl: error 90005: {target} already exists; choose another path or pass --overwrite\n"
    )
    assert target.read_text() == "mine"


def test_not_found_reads_the_same_in_every_command(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (
        ("conv", "get"),
        ("conv", "delete"),
        ("conv", "pin"),
        ("conv", "unpin"),
        ("draft", "get"),
        ("draft", "clear"),
    ):
        code, out, err = run(capsys, *command, "nobody")
        assert (code, out, err) == (1, "", "convctl: error 6004: no conversation c2c_nobody\n"), (
            command
        )
    code, _, err = run(capsys, "conv", "delete", "--type", "group", "team")
    assert (code, err) == (1, "convctl: error 6004: no conversation group_team\n")


def test_pin_unpin_and_delete_say_what_they_did(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "conv", "create", "group_team")[0] == 0
    assert run(capsys, "conv", "pin", "group_team") == (0, "pinned group_team\n", "")
    assert run(capsys, "conv", "unpin", "group_team") == (0, "unpinned group_team\n", "")
    assert run(capsys, "conv", "delete", "group_team") == (0, "deleted group_team\n", "")
    assert run(capsys, "conv", "create", "bob")[0] == 0
    assert run(capsys, "--json", "conv", "pin", "bob") == (0, "{}\n", "")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("watch", "--since", "-5"), "--since must not be negative"),
        (("watch", "--count", "-1"), "--count must not be negative"),
        (("draft", "set", "bob", "x", "--if-revision", "-1"), "--if-revision must not be negative"),
        (("draft", "clear", "bob", "--if-revision", "-1"), "--if-revision must not be negative"),
        (("draft", "set", "c2c_王小明", "x"), "a user id is 1..32 bytes of printable ASCII"),
        (("conv", "get", "u" * 33), "a user id is 1..32 bytes"),
        (("conv", "get", "group_" + "g" * 49), "a group id is 1..48 bytes"),
        (("conv", "get", "--type", "c2c", "tab\there"), "printable ASCII"),
        (("conv", "list", "--page-size", "0"), "--page-size must be 1..1000"),
    ],
)
def test_bad_arguments_are_usage_errors_with_the_commands_usage(
    shared_daemon: DaemonProcess, short_dir: Path, args: tuple[str, ...], says: str
) -> None:
    # Found before connecting: the socket does not even exist.
    missing = str(short_dir / "nobody.sock")
    done = convctl(shared_daemon, "--socket", missing, "--user", "u", *args)
    assert done.returncode == 2, done.stderr
    command = " ".join(a for a in args[:2] if not a.startswith("-") and a in _COMMAND_WORDS)
    assert done.stderr.startswith(f"usage: convctl {command} "), done.stderr
    assert says in done.stderr


_COMMAND_WORDS = {"watch", "draft", "set", "clear", "conv", "get", "list"}


def test_a_usage_error_of_a_top_level_check_prints_the_commands_usage(
    shared_daemon: DaemonProcess,
) -> None:
    env = dict(shared_daemon.env)
    env.pop("CONVD_USER", None)
    done = convctl(shared_daemon, "draft", "get", "bob", env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: convctl draft get ")


def test_a_socket_path_that_is_no_socket_is_named_as_such(
    shared_daemon: DaemonProcess, short_dir: Path
) -> None:
    regular = short_dir / "file"
    regular.write_text("")
    for path, says in (
        (short_dir, "is a directory, not a socket"),
        (regular, "is a regular file, not a socket"),
    ):
        done = convctl(shared_daemon, "--socket", str(path), "status")
        assert done.returncode == 3
        assert done.stderr.startswith(f"convctl: cannot reach convd at {path}: that {says}")
        assert "stale" not in done.stderr


# -- watch and a reader that goes away ---------------------------------------------------------


def test_watch_exits_at_once_when_its_reader_goes_away_without_another_event(
    shared_daemon: DaemonProcess, user: str
) -> None:
    with shared_daemon.client(user) as line:
        line.call("conv.create", {"conv_id": "a", "conv_type": 1})
        line.call("conv.create", {"conv_id": "b", "conv_type": 1})
    read_end, write_end = os.pipe()
    watcher = subprocess.Popen(
        [sys.executable, "-m", "convd_client.cli", "--json", "watch", "--since", "0", "-q"],
        env=dict(shared_daemon.env, CONVD_USER=user),
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end, "r") as reader:  # `| head -2`
            lines = [reader.readline(), reader.readline()]
        # The reader is gone; no event follows. The watcher must notice by itself.
        assert watcher.wait(timeout=30) == 0
        assert watcher.stderr is not None
        assert watcher.stderr.read() == ""
    finally:
        if watcher.poll() is None:
            watcher.kill()
        watcher.communicate()
    assert [json.loads(line)["conversation_ids"] for line in lines] == [["c2c_a"], ["c2c_b"]]


def test_watch_piped_into_head_exits_0(shared_daemon: DaemonProcess, user: str) -> None:
    with shared_daemon.client(user) as line:
        for conv_id in ("a", "b", "c"):
            line.call("conv.create", {"conv_id": conv_id, "conv_type": 1})
    convctl_cmd = f"{sys.executable} -m convd_client.cli"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f"{convctl_cmd} --json watch --since 0 | head -2"],
        env=dict(shared_daemon.env, CONVD_USER=user),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2
    assert "watching" in done.stderr  # the notice, and nothing else
    assert len(done.stderr.splitlines()) == 1


# -- conv list streams -------------------------------------------------------------------------


class _Recorder(io.StringIO):
    """stdout that notes how many pages had been fetched when the first row was written."""

    def __init__(self, pages: list[int]) -> None:
        super().__init__()
        self.pages = pages
        self.pages_at_first_row: int | None = None

    def write(self, text: str) -> int:
        if self.pages_at_first_row is None and ("c2c_" in text or '"conv_id"' in text):
            self.pages_at_first_row = self.pages[0]
        return super().write(text)


def _count_pages(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pages = [0]
    real = cli.Client.conv_list

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await real(self, *args, **kwargs)
        pages[0] += 1
        return result

    monkeypatch.setattr(cli.Client, "conv_list", counted)
    return pages


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
def test_conv_list_prints_each_page_as_it_arrives(
    shared_daemon: DaemonProcess,
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    json_output: bool,
) -> None:
    count = 25
    with shared_daemon.client(env) as line:
        for i in range(count):
            line.call("conv.create", {"conv_id": f"u{i:03}", "conv_type": 1})
    pages = _count_pages(monkeypatch)
    out = _Recorder(pages)
    monkeypatch.setattr(sys, "stdout", out)
    args = ["conv", "list", "--page-size", "10", *(["--json"] if json_output else [])]
    assert cli.main(args) == 0
    assert pages[0] == 3
    assert out.pages_at_first_row == 1  # printed before the rest was fetched
    text = out.getvalue()
    if json_output:
        ids = [c["conv_id"] for c in json.loads(text)]
        assert text.startswith("[\n{") and text.endswith("}\n]\n")
        assert len(text.splitlines()) == count + 2  # one ConvInfo per line
    else:
        rows = text.splitlines()
        assert rows[0].split() == ["CONVERSATION", "PINNED", "ORDER", "REV", "DRAFT"]
        ids = [row.split()[0].removeprefix("c2c_") for row in rows[1:]]
    assert ids == [f"u{i:03}" for i in reversed(range(count))]


def test_conv_list_prints_a_conversation_unpinned_meanwhile_once(
    shared_daemon: DaemonProcess, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with shared_daemon.client(env) as line:
        for i in range(5):
            line.call("conv.create", {"conv_id": f"u{i}", "conv_type": 1})
        line.call("conv.pin", {"conv_id": "u0", "conv_type": 1, "is_pinned": True})
        real = cli.Client.conv_list

        async def unpin_after_the_first_page(self: Any, *args: Any, **kwargs: Any) -> Any:
            page = await real(self, *args, **kwargs)
            if args[0] == 0:  # u0 was on it, pinned; unpinned, it moves to the end
                line.call("conv.pin", {"conv_id": "u0", "conv_type": 1, "is_pinned": False})
            return page

        monkeypatch.setattr(cli.Client, "conv_list", unpin_after_the_first_page)
        out = io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        assert cli.main(["--json", "conv", "list", "--page-size", "2"]) == 0
    ids = [c["conv_id"] for c in json.loads(out.getvalue())]
    assert sorted(ids) == ["u0", "u1", "u2", "u3", "u4"]
    assert ids[0] == "u0"


def test_an_empty_list(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--json", "conv", "list") == (0, "[]\n", "")
    code, out, _ = run(capsys, "conv", "list")
    assert (code, out) == (0, "CONVERSATION  PINNED  ORDER  REV  DRAFT\n")


def test_only_the_known_cancelled_read_race_is_kept_off_stderr() -> None:
    """convctl drops asyncio's report of anyio's cancelled-read race (a Future.set_result on a
    cancelled future, agronholm/anyio#1267) and nothing else."""
    import asyncio

    from convd_client._loop import ignore_cancelled_read_race

    loop = asyncio.new_event_loop()
    reported: list[dict[str, Any]] = []
    loop.default_exception_handler = reported.append  # type: ignore[method-assign]
    try:
        future = loop.create_future()
        future.cancel()
        race = asyncio.Handle(future.set_result, (None,), loop)
        ignore_cancelled_read_race(
            loop,
            {"message": "Exception in callback", "exception": asyncio.InvalidStateError()}
            | {"handle": race},
        )
        assert reported == []
        other = {"message": "Exception in callback", "exception": RuntimeError("boom")}
        ignore_cancelled_read_race(loop, other)
        assert reported == [other]
    finally:
        loop.close()
