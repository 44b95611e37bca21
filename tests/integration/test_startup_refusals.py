"""Start-up refusals: every check that can refuse runs before convd creates anything, names
what is in the way (the pid holding the socket or database), and says how to get past it."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from convd.store.migrations import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from ops_support import EnvDaemon, json_log_lines, run_convd
from support import DaemonProcess, LineClient, settled_bytes


def _refused(process: DaemonProcess) -> str:
    """Start it; it must exit 1 at once, with one error line and no traceback."""
    process.start(wait=False)
    assert process.process is not None
    assert process.process.wait(15) == 1, process.logs()
    log = process.logs()
    assert "Traceback" not in log, log
    errors = [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert len(errors) == 1, log
    return errors[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_convd_on_the_socket_names_the_pid_and_creates_no_database(
    daemon: DaemonProcess,
) -> None:
    assert daemon.process is not None
    pid = daemon.process.pid
    second = DaemonProcess(daemon.root)
    second.db = daemon.root / "elsewhere" / "convd.db"
    second.log = daemon.root / "second.log"
    line = _refused(second)
    assert f"another convd (pid {pid}) is already serving {daemon.socket}" in line
    # Started from a shell, so the hint is a signal, not systemctl.
    assert f"stop it with: kill {pid} (or Ctrl-C where it runs)" in line
    assert "systemctl" not in line
    # Refused before the database (or its directory) was made.
    assert not second.db.parent.exists()
    with daemon.client() as client:
        assert client.call("daemon.status")["pid"] == pid


def test_a_second_convd_on_the_database_names_the_pid_and_leaves_it_alone(
    daemon: DaemonProcess,
) -> None:
    assert daemon.process is not None
    with daemon.client() as client:
        client.call("conv.create", {"conv_id": "bob", "conv_type": 1})
    settled_bytes(daemon.db)  # the first daemon's own checkpoint is done
    before = _digest(daemon.db)
    second = DaemonProcess(daemon.root)
    second.socket = daemon.root / "run2" / "convd.sock"
    second.log = daemon.root / "second.log"
    line = _refused(second)
    pid = daemon.process.pid
    assert f"the database {daemon.db} is in use by a running convd (pid {pid})" in line
    assert f"kill {pid}" in line
    assert _digest(daemon.db) == before
    assert not second.socket.exists()


def test_the_hint_for_a_convd_run_by_systemd_is_systemctl(short_dir: Path) -> None:
    # systemd sets INVOCATION_ID in every unit it starts.
    first = EnvDaemon(short_dir, env={"INVOCATION_ID": "0123456789abcdef"}).start()
    try:
        second = DaemonProcess(short_dir)
        second.db = short_dir / "other" / "convd.db"
        second.log = short_dir / "second.log"
        line = _refused(second)
        assert "systemctl --user stop convd.socket convd.service" in line
        assert "kill" not in line
        result = run_convd("stop", "--db", first.db)
        assert result.returncode == 1
        assert "systemctl --user stop convd.socket convd.service" in result.stderr
    finally:
        assert first.stop() == 0


def test_a_shared_socket_directory_is_refused_before_the_database_exists(
    short_dir: Path,
) -> None:
    process = DaemonProcess(short_dir)
    process.socket.parent.mkdir()
    process.socket.parent.chmod(0o755)
    line = _refused(process)
    assert f"{process.socket.parent} has mode 0755" in line
    assert not process.db.parent.exists()


def test_a_clean_stop_leaves_no_lock_files(daemon: DaemonProcess) -> None:
    socket_lock = daemon.socket.with_name(daemon.socket.name + ".lock")
    db_lock = daemon.db.with_name(daemon.db.name + ".lock")
    assert socket_lock.exists() and db_lock.exists()
    assert daemon.process is not None
    # They say who holds them.
    assert socket_lock.read_text() == db_lock.read_text() == f"{daemon.process.pid} foreground\n"
    assert daemon.stop() == 0
    assert not socket_lock.exists()
    assert not db_lock.exists()
    assert sorted(p.name for p in daemon.socket.parent.iterdir()) == []
    # Beside the database, only the stamp that lets the next start skip its check.
    assert sorted(p.name for p in daemon.db.parent.iterdir()) == ["convd.db", "convd.db.checked"]


def test_a_lock_file_left_by_a_crash_does_not_stop_the_next_start(daemon: DaemonProcess) -> None:
    daemon.kill()
    assert daemon.db.with_name("convd.db.lock").exists()
    daemon.start()
    with daemon.client() as client:
        assert client.call("conv.list")["conversation_list_result_conv_list"] == []


def test_a_truncated_database_is_refused_untouched(short_dir: Path) -> None:
    process = DaemonProcess(short_dir).start()
    with process.client() as client:
        for n in range(60):
            client.call("conv.create", {"conv_id": f"user{n}", "conv_type": 1})
    assert process.stop() == 0
    size = process.db.stat().st_size
    os.truncate(process.db, size - 1000)  # part of the last page is gone
    before = _digest(process.db)
    names = sorted(p.name for p in process.db.parent.iterdir())
    line = _refused(process)
    assert f"cannot start: {process.db} is damaged (" in line
    assert f"convd restore BACKUP --db {process.db}" in line
    assert _digest(process.db) == before
    assert sorted(p.name for p in process.db.parent.iterdir()) == names


def test_an_emptied_database_beside_its_wal_is_refused_and_the_wal_kept(
    short_dir: Path,
) -> None:
    process = DaemonProcess(short_dir).start()
    with process.client() as client:
        client.call("conv.create", {"conv_id": "kept", "conv_type": 1})
        process.kill()  # the WAL keeps what the last checkpoint did not fold in
    wal = Path(f"{process.db}-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        wal.write_bytes(b"\0" * 4096)  # what is in it does not matter: that it is there does
    os.truncate(process.db, 0)  # emptied behind convd's back
    before = _digest(wal)
    line = _refused(process)
    assert f"{process.db} is empty but its write-ahead log {wal} holds data" in line
    # SQLite deletes a WAL it finds beside an empty file: convd never opened it.
    assert _digest(wal) == before
    assert process.db.stat().st_size == 0


def test_another_applications_database_is_refused_untouched(short_dir: Path) -> None:
    process = DaemonProcess(short_dir)
    process.db.parent.mkdir(mode=0o700)
    with closing(sqlite3.connect(process.db, isolation_level=None)) as other:
        other.execute("CREATE TABLE account (name TEXT)")
    header, before = process.db.read_bytes()[:100], _digest(process.db)
    line = _refused(process)
    assert f"{process.db} is not a convd database (it holds account)" in line
    assert process.db.read_bytes()[:100] == header
    assert _digest(process.db) == before
    assert not process.socket.exists()


def test_a_convd_database_of_schema_version_2_still_opens(short_dir: Path) -> None:
    process = DaemonProcess(short_dir)
    process.db.parent.mkdir(mode=0o700)
    with closing(sqlite3.connect(process.db, isolation_level=None)) as old:
        for target, script in enumerate(MIGRATIONS[:2], start=1):
            old.executescript(f"BEGIN; {script}; PRAGMA user_version = {target}; COMMIT;")
        old.execute("INSERT INTO account (sdk_app_id, user_id) VALUES (0, 'alice')")
        old.execute(
            "INSERT INTO conversation (account_id, conv_type, conv_id, order_key, active_time) "
            "VALUES (1, 1, 'bob', 1, 1)"
        )
    process.start()
    try:
        with process.client("alice") as client:
            listed = client.call("conv.list")["conversation_list_result_conv_list"]
            assert [c["conv_id"] for c in listed] == ["bob"]
            assert client.call("daemon.status")["conversations"] == 1
    finally:
        assert process.stop() == 0
    with closing(sqlite3.connect(process.db)) as db:
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_database_directory_that_cannot_be_made_is_one_line(short_dir: Path) -> None:
    # A regular file where a directory should be: fails for root too.
    blocker = short_dir / "not-a-dir"
    blocker.write_text("")
    process = DaemonProcess(short_dir)
    process.db = blocker / "convd" / "convd.db"
    line = _refused(process)
    assert f"cannot start: cannot create the directory {process.db.parent}" in line
    assert "Not a directory" in line
    assert blocker.read_text() == ""


def test_a_socket_directory_that_cannot_be_made_is_one_line(short_dir: Path) -> None:
    # As when XDG_RUNTIME_DIR outlives the login that made it, or names a path through a file.
    blocker = short_dir / "not-a-dir"
    blocker.write_text("")
    process = DaemonProcess(short_dir)
    process.socket = blocker / "convd" / "convd.sock"
    line = _refused(process)
    assert f"cannot create the socket's directory {process.socket.parent}" in line
    assert "Not a directory" in line
    assert not process.db.exists()


def test_a_lock_file_that_cannot_be_made_is_one_line(short_dir: Path) -> None:
    process = DaemonProcess(short_dir)
    process.socket.parent.mkdir(mode=0o700)
    (process.socket.parent / (process.socket.name + ".lock")).mkdir()
    line = _refused(process)
    assert "cannot create the lock file" in line and "Is a directory" in line
    assert not process.db.exists()


def test_the_help_names_the_fallback_socket() -> None:
    result = run_convd("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert f"convd-{os.getuid()}/convd.sock when XDG_RUNTIME_DIR is unset" in text
    assert "--keep-changes" in text


# -- stopping ----------------------------------------------------------------------------------


def test_an_idle_daemon_exits_promptly_after_sigterm(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.create", {"conv_id": "bob", "conv_type": 1})
    assert daemon.process is not None
    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(15) == 0
    # Loose on purpose (the goal is 200 ms; the trial measured 1.3-2.0 s before the fix).
    assert time.monotonic() - started < 1.0, daemon.logs()


def test_the_exit_skips_collecting_the_whole_heap(short_dir: Path) -> None:
    # What made the exit slow: after "stopped", the interpreter's teardown ran full garbage
    # collections over every object still alive. After serve, none is left to walk.
    script = (
        "import gc, json, sys\n"
        "from convd.cli import main\n"
        "code = main()\n"
        "print(json.dumps({'code': code, 'walked': len(gc.get_objects())}))\n"
    )
    process = DaemonProcess(short_dir)
    process.socket.parent.mkdir(mode=0o700)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            "--socket",
            str(process.socket),
            "--db",
            str(process.db),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=process.env,
    )
    process.process = child  # type: ignore[assignment]
    process.wait_ready()
    with LineClient(process.socket) as client:
        client.call("daemon.status")
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=15)
    report = json.loads(out)
    assert report["code"] == 0, err
    assert report["walked"] < 2000, report  # about 34,000 without the freeze
    assert gc.isenabled()  # (this process is untouched)


def test_convd_stop_stops_a_foreground_daemon_and_waits(daemon: DaemonProcess) -> None:
    assert daemon.process is not None
    pid = daemon.process.pid
    result = run_convd("stop", "--db", daemon.db)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"stopped convd (pid {pid})\n"
    # It waited: the database is free the moment it returns, so restore can go ahead.
    assert not daemon.db.with_name("convd.db.lock").exists()
    assert daemon.process.wait(5) == 0
    again = run_convd("stop", "--db", daemon.db)
    assert again.returncode == 0
    assert "convd is not running" in again.stdout


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "soon"])
def test_convd_stop_wants_a_finite_timeout(timeout: str) -> None:
    # NaN would never run out (every comparison with it is false); a negative one already has.
    result = run_convd("stop", "--timeout", timeout)
    assert result.returncode == 2, result
    assert "--timeout" in result.stderr and timeout in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# -- how far back subscribers can resume -------------------------------------------------------


@pytest.mark.parametrize("keep_for", ["0", "7d"])
def test_keep_changes_sets_how_far_back_a_subscriber_can_resume(
    short_dir: Path, keep_for: str
) -> None:
    process = DaemonProcess(
        short_dir, "--keep-changes", "100", "--keep-changes-for", keep_for
    ).start()
    try:
        with process.client() as client:
            for n in range(250):
                client.call("conv.create", {"conv_id": f"user{n}", "conv_type": 1})
            with process.client() as late:
                if keep_for == "0":
                    # By count only: 150 changes behind is too far.
                    failure = late.error("conv.subscribe", {"since_seq": 50})
                    assert failure["code"] == 90003, failure
                else:
                    # All 250 are younger than a week (and within 10 x 100): still kept.
                    late.call("conv.subscribe", {"since_seq": 50})
                late.call("conv.subscribe", {"since_seq": 200})
    finally:
        assert process.stop() == 0


def test_keep_changes_is_bounded() -> None:
    result = run_convd("--keep-changes", "5")
    assert result.returncode == 2
    assert "must be from 100 to 100000000" in result.stderr


def test_json_refusal_is_one_object(short_dir: Path) -> None:
    blocker = short_dir / "file"
    blocker.write_text("")
    process = DaemonProcess(short_dir, "--log-format", "json")
    process.db = blocker / "convd.db"
    process.start(wait=False)
    assert process.process is not None
    assert process.process.wait(15) == 1
    [error] = [e for e in json_log_lines(process.logs()) if e["level"] == "error"]
    assert "exc" not in error
    assert error["msg"].startswith("cannot start: cannot create the directory")
