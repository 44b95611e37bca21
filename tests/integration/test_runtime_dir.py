"""The socket's directory, the socket path and the database files stay private."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from ops_support import convd_command, private_dir, run_convd, wait_for
from support import DaemonProcess, LineClient, text_draft

NOBODY = 65534


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _refused(daemon: DaemonProcess) -> str:
    """Start the daemon, which must exit 1 at once; return its log."""
    daemon.start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(15) == 1, daemon.logs()
    assert not daemon.socket.exists() or daemon.socket.is_symlink()
    return daemon.logs()


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o755, 0o750])
def test_a_socket_directory_others_can_enter_is_refused(short_dir: Path, mode: int) -> None:
    daemon = DaemonProcess(short_dir)
    daemon.socket.parent.mkdir()
    os.chmod(daemon.socket.parent, mode)
    log = _refused(daemon)
    directory = daemon.socket.parent
    assert f"{directory} has mode {mode:04o}" in log
    assert f"Fix it with: chmod 700 {directory}" in log
    assert _mode(directory) == mode  # reported, not silently changed


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_socket_directory_owned_by_someone_else_is_refused(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir)
    directory = private_dir(daemon.socket.parent)
    os.chown(directory, NOBODY, NOBODY)
    log = _refused(daemon)
    assert f"{directory} is owned by uid {NOBODY}, not by you (uid {os.getuid()})" in log
    assert f"rm -r {directory}" in log


def test_a_symlink_planted_at_the_socket_path_is_not_followed(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir)
    private_dir(daemon.socket.parent)
    target = short_dir / "precious"
    target.write_text("keep me")
    daemon.socket.symlink_to(target)
    log = _refused(daemon)
    assert f"{daemon.socket} exists and is not a socket" in log
    assert daemon.socket.is_symlink()
    assert target.read_text() == "keep me"


def test_a_symlink_planted_at_the_lock_path_is_not_followed(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir)
    private_dir(daemon.socket.parent)
    target = short_dir / "precious"
    target.write_text("keep me")
    lock = daemon.socket.with_name(daemon.socket.name + ".lock")
    lock.symlink_to(target)
    log = _refused(daemon)
    assert f"{lock} is a symbolic link" in log
    assert target.read_text() == "keep me"


def test_a_symlinked_socket_directory_is_refused(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir)
    elsewhere = private_dir(short_dir / "elsewhere")
    daemon.socket.parent.symlink_to(elsewhere)
    log = _refused(daemon)
    assert f"{daemon.socket.parent} is not a directory" in log
    assert list(elsewhere.iterdir()) == []


def test_without_xdg_runtime_dir_a_private_fallback_is_used_with_a_warning(
    short_dir: Path,
) -> None:
    env = dict(os.environ)
    for name in ("XDG_RUNTIME_DIR", "CONVD_SOCKET", "CONVD_DB"):
        env.pop(name, None)
    # tempfile.gettempdir() follows TMPDIR: the fallback lands inside this test's directory.
    env["TMPDIR"] = str(short_dir)
    fallback = short_dir / f"convd-{os.getuid()}"
    socket_path = fallback / "convd.sock"
    log = short_dir / "convd.log"
    with log.open("wb") as out:
        # No --socket: the default path applies.
        process = subprocess.Popen(
            convd_command("--db", short_dir / "data" / "convd.db"), stderr=out, env=env
        )
    try:
        # Connectable, not merely present: the file appears at bind(), before listen().
        wait_for(lambda: _accepts(socket_path) or process.poll() is not None)
        assert process.poll() is None, log.read_text()
        with LineClient(socket_path) as client:
            assert client.call("daemon.status")["socket_path"] == str(socket_path)
        assert _mode(fallback) == 0o700
        assert (
            "WARNING convd.app: XDG_RUNTIME_DIR is not set; using the private directory "
            f"{fallback} instead" in log.read_text()
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


def test_socket_lock_and_database_files_are_private(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": text_draft("hi")})
        db = daemon.db
        # While serving: WAL mode, so the -wal and -shm files exist too.
        files = {
            daemon.socket: 0o600,
            daemon.socket.parent: 0o700,
            daemon.socket.with_name("convd.sock.lock"): 0o600,
            db: 0o600,
            db.with_name("convd.db-wal"): 0o600,
            db.with_name("convd.db-shm"): 0o600,
            db.with_name("convd.db.lock"): 0o600,
            db.parent: 0o700,
        }
        assert {path: _mode(path) for path in files} == files
        assert stat.S_ISSOCK(os.lstat(daemon.socket).st_mode)


def test_a_database_readable_by_others_is_made_private(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir)
    daemon.db.parent.mkdir(parents=True)
    daemon.db.touch()
    os.chmod(daemon.db, 0o644)
    daemon.start()
    try:
        assert _mode(daemon.db) == 0o600
        assert f"{daemon.db} had mode 0644; setting it to 0600" in daemon.logs()
    finally:
        assert daemon.stop() == 0


def test_files_stay_private_whatever_the_umask(short_dir: Path) -> None:
    # `convd restore` and the daemon set umask 077 themselves; run one with a lax umask.
    old = os.umask(0o000)
    try:
        daemon = DaemonProcess(short_dir).start()
    finally:
        os.umask(old)
    try:
        with daemon.client() as client:
            backup = short_dir / "backup.db"
            client.call("daemon.backup", {"path": str(backup)})
        assert _mode(daemon.socket) == 0o600
        assert _mode(daemon.db) == 0o600
        assert _mode(backup) == 0o600
    finally:
        assert daemon.stop() == 0
    result = run_convd("restore", backup, "--db", short_dir / "restored" / "convd.db")
    assert result.returncode == 0, result.stderr
    assert _mode(short_dir / "restored" / "convd.db") == 0o600
    assert _mode(short_dir / "restored") == 0o700
