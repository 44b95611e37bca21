"""``daemon.backup`` (online, consistent, through SQLite's backup API) and ``convd restore``
(offline, checked, keeps what it replaces): a user can save or move their drafts."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import stat
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from convd.store import SCHEMA_VERSION
from convd_schemas import ConvdErrCode, JsonRpcErrCode
from ops_support import run_convd
from support import DaemonProcess, LineClient, settled_bytes, text_draft


def _fill(client: LineClient) -> list[dict[str, Any]]:
    client.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": text_draft("hi")})
    client.call(
        "conv.set_draft",
        {"conv_id": "team", "conv_type": 2, "draft": text_draft("a", "b", user_define="u")},
    )
    client.call("conv.create", {"conv_id": "carol", "conv_type": 1})
    client.call("conv.pin", {"conv_id": "carol", "conv_type": 1, "is_pinned": True})
    return list(client.call("conv.list")["conversation_list_result_conv_list"])


def _backup(client: LineClient, path: Path, **extra: Any) -> dict[str, Any]:
    return dict(client.call("daemon.backup", {"path": str(path), **extra}))


def _sqlite(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute(sql).fetchall()


def _restore(backup: Path, db: Path) -> Any:
    return run_convd("restore", backup, "--db", db)


def test_backup_then_restore_into_a_fresh_daemon_brings_the_drafts_back(
    daemon: DaemonProcess, short_dir: Path
) -> None:
    backup = short_dir / "drafts.backup"
    with daemon.client() as client:
        before = _fill(client)
        history = client.call("conv.subscribe", {})["history"]
        result = _backup(client, backup)
    assert result == {
        "path": str(backup),
        "size_bytes": backup.stat().st_size,
        "schema_version": SCHEMA_VERSION,
    }
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    # A single self-contained file: no -wal beside it, integrity ok.
    assert not Path(f"{backup}-wal").exists()
    assert _sqlite(backup, "PRAGMA integrity_check") == [("ok",)]
    assert daemon.stop() == 0

    # Move the drafts to a new machine: restore into an empty place, start there.
    moved = DaemonProcess(short_dir / "new")
    moved.root.mkdir(mode=0o700)
    restored = _restore(backup, moved.db)
    assert restored.returncode == 0, restored.stderr
    assert f"restored {backup} into {moved.db} (schema version {SCHEMA_VERSION})" in (
        restored.stdout
    )
    assert "previous database" not in restored.stdout
    assert stat.S_IMODE(moved.db.stat().st_mode) == 0o600
    moved.start()
    try:
        with moved.client() as client:
            after = client.call("conv.list")["conversation_list_result_conv_list"]
            # Revisions, pins, texts, order: all as they were.
            assert after == before
            # ... but a new change history: a client that resumes with its old seq reloads.
            assert client.call("conv.subscribe", {})["history"] != history
            # The restored revisions go on where they were.
            bob = next(c for c in before if c["conv_id"] == "bob")
            changed = client.call(
                "conv.set_draft",
                {
                    "conv_id": "bob",
                    "conv_type": 1,
                    "draft": text_draft("again"),
                    "if_revision": bob["conv_draft_revision"],
                },
            )
            assert changed["conv_draft_revision"] == bob["conv_draft_revision"] + 1
    finally:
        assert moved.stop() == 0


def test_backup_while_writing_is_a_consistent_snapshot(
    daemon: DaemonProcess, short_dir: Path
) -> None:
    stop, writing = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with daemon.client() as client:
                n = 0
                while not stop.is_set():
                    n += 1
                    client.call(
                        "conv.set_draft",
                        {"conv_id": f"u{n % 20}", "conv_type": 1, "draft": text_draft(str(n))},
                    )
                    if n == 10:
                        writing.set()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(15)
        with daemon.client(None) as client:
            backups = [_backup(client, short_dir / f"b{i}.db") for i in range(5)]
            # The daemon kept serving reads during the backups.
            assert client.call("daemon.status")["conversations"] > 0
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    for result in backups:
        path = Path(result["path"])
        assert _sqlite(path, "PRAGMA integrity_check") == [("ok",)]
        # Each write commits the conversation, its change and the sequence together: a
        # torn copy would break one of these.
        [(last_seq,)] = _sqlite(path, "SELECT last_seq FROM account")
        [(newest,)] = _sqlite(path, "SELECT coalesce(max(seq), 0) FROM change")
        assert last_seq == newest
        [(conversations,)] = _sqlite(path, "SELECT count(*) FROM conversation")
        assert conversations == min(20, last_seq)


def test_backup_refuses_an_existing_file_unless_told_to_overwrite(
    daemon: DaemonProcess, short_dir: Path
) -> None:
    target = short_dir / "exists.db"
    target.write_text("keep me")
    with daemon.client(None) as client:
        # No login needed: the backup covers the whole database.
        error = client.error("daemon.backup", {"path": str(target)})
        assert error["code"] == ConvdErrCode.BACKUP_FAILED == 90005
        assert {k: error["data"][k] for k in ("path", "errno")} == {
            "path": str(target),
            "errno": "EEXIST",
        }
        assert "already exists" in error["data"]["detail"]
        assert "already exists" in error["data"]["detail"]
        assert target.read_text() == "keep me"

        result = _backup(client, target, overwrite=True)
    assert result["size_bytes"] == target.stat().st_size
    assert _sqlite(target, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_backup_failures_are_reported_and_leave_nothing_behind(
    daemon: DaemonProcess, short_dir: Path
) -> None:
    with daemon.client(None) as client:
        relative = client.error("daemon.backup", {"path": "drafts.db"})
        assert relative["code"] == JsonRpcErrCode.INVALID_PARAMS

        missing = short_dir / "no" / "such" / "dir" / "x.db"
        error = client.error("daemon.backup", {"path": str(missing)})
        assert error["code"] == ConvdErrCode.BACKUP_FAILED
        assert {k: error["data"][k] for k in ("path", "errno")} == {
            "path": str(missing),
            "errno": "ENOENT",
        }

        live = client.error("daemon.backup", {"path": str(daemon.db), "overwrite": True})
        assert live["code"] == ConvdErrCode.BACKUP_FAILED
        assert "is the live database" in live["data"]["detail"]

        unknown = client.error("daemon.backup", {"path": "/x", "compress": True})
        assert unknown["code"] == JsonRpcErrCode.INVALID_PARAMS

        # Still serving, and no temporary files anywhere it tried.
        assert daemon.process is not None
        assert client.call("daemon.status")["pid"] == daemon.process.pid
    assert sorted(p.name for p in daemon.db.parent.iterdir()) == sorted(
        ["convd.db", "convd.db-wal", "convd.db-shm", "convd.db.lock"]
    )


def test_backup_under_a_path_that_cannot_hold_a_file_fails(
    daemon: DaemonProcess, short_dir: Path
) -> None:
    # Unwritable even for root: the "directory" is a regular file.
    blocker = short_dir / "plain-file"
    blocker.write_text("")
    with daemon.client(None) as client:
        error = client.error("daemon.backup", {"path": str(blocker / "x.db")})
    assert error["code"] == ConvdErrCode.BACKUP_FAILED
    assert {k: error["data"][k] for k in ("path", "errno")} == {
        "path": str(blocker / "x.db"),
        "errno": "ENOTDIR",
    }
    assert f"cannot write {blocker / 'x.db'}" in error["data"]["detail"]
    # The failure is in the daemon's log too, quoted.
    assert f"backup failed: 'cannot write {blocker / 'x.db'}" in daemon.logs()


def test_a_backup_path_cannot_forge_or_flood_the_log(
    daemon: DaemonProcess, short_dir: Path
) -> None:
    forged = f"{short_dir}/x\n2026-01-01 00:00:00,000 ERROR convd.app: FORGED"
    with daemon.client(None) as client:
        client.error("daemon.backup", {"path": forged + "/y.db"})  # no such directory
        too_long = client.error("daemon.backup", {"path": "/" + "x" * 5000})
    assert too_long["code"] == -32602  # refused by the contract, before anything is logged
    logs = daemon.logs()
    assert "FORGED" in logs and not any(line.endswith("FORGED") for line in logs.splitlines())
    assert "x" * 5000 not in logs


# -- restore ---------------------------------------------------------------------------------


@pytest.fixture
def backup(daemon: DaemonProcess, short_dir: Path) -> Path:
    path = short_dir / "saved.db"
    with daemon.client() as client:
        _fill(client)
        _backup(client, path)
    return path


def test_restore_refuses_while_the_daemon_runs(daemon: DaemonProcess, backup: Path) -> None:
    before = settled_bytes(daemon.db)
    result = _restore(backup, daemon.db)
    assert result.returncode == 1
    assert daemon.process is not None
    pid = daemon.process.pid
    assert f"the database {daemon.db} is in use by a running convd (pid {pid})" in result.stderr
    # Started from a terminal (not by systemd): the hint says kill, not systemctl.
    assert f"stop it with: kill {pid}" in result.stderr
    assert "systemctl" not in result.stderr
    assert daemon.db.read_bytes() == before
    with daemon.client() as client:
        assert client.call("conv.list")["conversation_list_result_conv_list"]


# A crash test: in both modes ("everysec" leaves the last COMMIT in the OS, unsynced).
@pytest.mark.parametrize("durability", ["full", "everysec"])
def test_restore_keeps_the_replaced_database_with_everything_it_held(
    daemon: DaemonProcess, backup: Path, durability: str
) -> None:
    with daemon.client() as client:
        assert client.call("daemon.status")["store"]["durability"] == durability
        client.call("conv.create", {"conv_id": "after-backup", "conv_type": 1})
    # A crash: the last write may still be only in the WAL.
    daemon.kill()
    result = _restore(backup, daemon.db)
    assert result.returncode == 0, result.stderr
    [replaced] = daemon.db.parent.glob("convd.db.replaced-*[0-9]")
    assert f"the previous database is kept as {replaced}" in result.stdout
    assert stat.S_IMODE(replaced.stat().st_mode) == 0o600
    # The replaced copy opens on its own and holds the write made after the backup.
    assert _sqlite(replaced, "SELECT conv_id FROM conversation WHERE conv_id = 'after-backup'")
    assert not Path(f"{daemon.db}-wal").exists()

    daemon.start()
    with daemon.client() as client:
        ids = {c["conv_id"] for c in client.call("conv.list")["conversation_list_result_conv_list"]}
    assert ids == {"bob", "team", "carol"}


def _broken_copy(backup: Path, directory: Path, sql: str) -> Path:
    copy = directory / "broken.db"
    shutil.copy(backup, copy)
    with closing(sqlite3.connect(copy, isolation_level=None)) as db:
        db.execute(sql)
    return copy


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (f"PRAGMA user_version = {SCHEMA_VERSION + 1}", "newer than this convd understands"),
        ("DROP TABLE change", "is not a convd database"),
        ("PRAGMA user_version = 0", "is not a convd database"),
    ],
)
def test_restore_refuses_a_file_that_is_not_a_usable_backup(
    daemon: DaemonProcess, backup: Path, short_dir: Path, sql: str, message: str
) -> None:
    assert daemon.stop() == 0
    before = daemon.db.read_bytes()
    result = _restore(_broken_copy(backup, short_dir, sql), daemon.db)
    assert result.returncode == 1
    assert message in result.stderr
    assert daemon.db.read_bytes() == before
    assert not list(daemon.db.parent.glob("*.replaced-*"))
    assert not list(daemon.db.parent.glob(".*.tmp"))


def test_restore_refuses_a_damaged_file(
    daemon: DaemonProcess, backup: Path, short_dir: Path
) -> None:
    assert daemon.stop() == 0
    damaged = short_dir / "damaged.db"
    data = bytearray(backup.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    # Scribble over every page after the first (the header stays valid).
    for offset in range(page_size, len(data), page_size):
        data[offset : offset + 64] = b"\xa5" * 64
    damaged.write_bytes(bytes(data))
    before = daemon.db.read_bytes()
    result = _restore(damaged, daemon.db)
    assert result.returncode == 1
    assert "cannot restore:" in result.stderr
    assert daemon.db.read_bytes() == before

    not_sqlite = short_dir / "notes.txt"
    not_sqlite.write_text("not a database\n" * 1000)
    result = _restore(not_sqlite, daemon.db)
    assert result.returncode == 1
    assert "cannot be read as a database" in result.stderr

    result = _restore(short_dir / "missing.db", daemon.db)
    assert result.returncode == 1
    assert "is not a file" in result.stderr


def test_restore_sets_aside_a_wal_left_without_its_database(
    daemon: DaemonProcess, backup: Path
) -> None:
    # The daemon's refusal for this state says to move the -wal away: restore does that (the
    # WAL may hold acknowledged writes of the missing database, so it is kept, not removed).
    with daemon.client() as client:
        for n in range(5):
            client.call(
                "conv.set_draft",
                {"conv_id": f"new{n}", "conv_type": 1, "draft": text_draft(f"only in the WAL {n}")},
            )
    daemon.kill()
    wal = Path(f"{daemon.db}-wal")
    wal_bytes = wal.read_bytes()
    assert wal_bytes
    moved = daemon.db.with_name("convd.db.moved")
    daemon.db.rename(moved)

    result = _restore(backup, daemon.db)
    assert result.returncode == 0, result.stderr
    assert "previous database" not in result.stdout
    [kept] = daemon.db.parent.glob("convd.db.replaced-*-wal")
    assert f"{daemon.db} is missing" in result.stderr
    assert f"kept as {kept}" in result.stderr
    assert kept.read_bytes() == wal_bytes
    assert not wal.exists()
    assert not Path(f"{daemon.db}-shm").exists()

    # The restored database is exactly the backup.
    daemon.start()
    with daemon.client() as client:
        ids = {c["conv_id"] for c in client.call("conv.list")["conversation_list_result_conv_list"]}
    assert ids == {"bob", "team", "carol"}
    assert daemon.stop() == 0

    # Nothing was lost: the kept WAL, put back beside the database it belongs to, gives back
    # the writes that were only there.
    kept.rename(f"{moved}-wal")
    with closing(sqlite3.connect(moved, isolation_level=None)) as db:
        found = {row[0] for row in db.execute("SELECT conv_id FROM conversation")}
    assert found >= {f"new{n}" for n in range(5)}


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("directory", "is not a regular file; choose another --db"),
        ("text", "is not a convd database (not an SQLite database)"),
        ("foreign", "is not a convd database (it holds photo)"),
    ],
)
def test_restore_refuses_to_replace_what_the_daemon_would_not_open(
    daemon: DaemonProcess, backup: Path, short_dir: Path, kind: str, message: str
) -> None:
    target = short_dir / "elsewhere" / "thing"
    target.parent.mkdir()
    if kind == "directory":
        target.mkdir()
        (target / "a.txt").write_text("precious")
    elif kind == "text":
        target.write_text("my notes\n")
    else:
        with closing(sqlite3.connect(target, isolation_level=None)) as other:
            other.execute("CREATE TABLE photo (name TEXT)")
    before = sorted(str(p) for p in target.parent.rglob("*"))
    result = _restore(backup, target)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"cannot restore: {target} {message}" in line
    assert sorted(str(p) for p in target.parent.rglob("*")) == before
    if kind == "directory":
        assert (target / "a.txt").read_text() == "precious"


def test_backup_refuses_the_daemons_socket_and_its_lock(
    daemon: DaemonProcess, short_dir: Path
) -> None:
    lock = daemon.socket.with_name(daemon.socket.name + ".lock")
    lock_bytes = lock.read_bytes()
    other = short_dir / "other.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listening:
        listening.bind(str(other))
        with daemon.client(None) as client:
            for path, what in [
                (daemon.socket, "is the daemon's socket"),
                (lock, "is the daemon's socket lock file"),
                (other, "is a socket"),
            ]:
                error = client.error("daemon.backup", {"path": str(path), "overwrite": True})
                assert error["code"] == ConvdErrCode.BACKUP_FAILED
                assert error["data"]["path"] == str(path)
                assert error["data"]["detail"] == f"{path} {what}; choose another path"
        assert other.is_socket()
    assert daemon.socket.is_socket()
    assert lock.read_bytes() == lock_bytes
    # Still reachable on its socket.
    with daemon.client(None) as client:
        assert client.call("daemon.status")["socket_path"] == str(daemon.socket)
