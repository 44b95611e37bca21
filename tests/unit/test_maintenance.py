"""``store.maintenance``: what a restore replaces, what it sets aside and where, and how a
backup is published without hard links or over a file the daemon itself uses."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from convd.domain import BackupFailed, ConversationService, EventBus
from convd.rpc import ConvListing
from convd.store import maintenance, open_store
from convd.store.maintenance import MaintenanceError, backup_database, restore_database

pytestmark = pytest.mark.anyio


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _users(path: Path) -> list[str]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return [str(row[0]) for row in db.execute("SELECT user_id FROM account ORDER BY id")]


async def _convd_database(path: Path, *users: str) -> None:
    async with open_store(path, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        for user in users:
            await service.login(0, user)


@pytest.fixture
async def saved(tmp_path: Path) -> Path:
    """A backup that holds the account "alice" only."""
    source = tmp_path / "source" / "convd.db"
    source.parent.mkdir()
    await _convd_database(source, "alice")
    backup = tmp_path / "saved.db"
    backup_database(source, backup)
    return backup


# -- restore: side files without their database -----------------------------------------------


@pytest.mark.parametrize(
    "suffixes",
    [("-wal",), ("-wal", "-shm"), ("-journal",), ("-shm",), ("-wal", "-shm", "-journal")],
)
async def test_restore_sets_aside_side_files_left_without_their_database(
    saved: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, suffixes: tuple[str, ...]
) -> None:
    db = tmp_path / "data" / "convd.db"
    db.parent.mkdir()
    contents = {suffix: f"what the lost database left in {suffix}".encode() for suffix in suffixes}
    for suffix, data in contents.items():
        Path(f"{db}{suffix}").write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="convd.store.maintenance"):
        result = restore_database(saved, db)
    # No database was there: nothing counts as "the previous database".
    assert result.replaced is None
    # The restored database is the backup, with no side file of another one beside it.
    for suffix in ("-wal", "-shm", "-journal"):
        assert not Path(f"{db}{suffix}").exists()
    assert _users(db) == ["alice"]
    # Each side file is kept, byte for byte, under a name that says what it is, and the log
    # says where it went.
    [stem] = {p.name.rsplit("-", 1)[0] for p in db.parent.glob("convd.db.replaced-*")}
    assert sorted(p.name for p in db.parent.glob("convd.db.replaced-*")) == sorted(
        stem + suffix for suffix in suffixes
    )
    for suffix, data in contents.items():
        kept = db.parent / (stem + suffix)
        assert kept.read_bytes() == data
        assert str(kept) in caplog.text
    assert f"{db} is missing" in caplog.text


async def test_restore_keeps_a_database_and_its_journal_together(
    saved: Path, tmp_path: Path
) -> None:
    db = tmp_path / "data" / "convd.db"
    db.parent.mkdir()
    await _convd_database(db, "alice", "bob")
    journal = Path(f"{db}-journal")
    journal.write_bytes(b"")  # an empty journal is no hot journal: SQLite leaves it
    result = restore_database(saved, db)
    assert result.replaced is not None
    assert _users(result.replaced) == ["alice", "bob"]
    assert Path(f"{result.replaced}-journal").exists()
    assert not journal.exists()
    assert _users(db) == ["alice"]


# -- restore: only a convd database is replaced -----------------------------------------------


def _foreign_with_wal(db: Path) -> None:
    """Another application's database in WAL mode, as a crash left it (frames in its WAL)."""
    live = db.with_name("live.db")
    with closing(sqlite3.connect(live, isolation_level=None)) as other:
        other.execute("PRAGMA application_id = 0x12345678")
        other.execute("PRAGMA journal_mode = WAL")
        other.execute("PRAGMA wal_autocheckpoint = 0")
        other.execute("CREATE TABLE photo (name TEXT)")
        other.execute("INSERT INTO photo VALUES ('cat.jpg')")
        # Copied while it is open: the WAL still holds the frames.
        db.write_bytes(live.read_bytes())
        Path(f"{db}-wal").write_bytes(Path(f"{live}-wal").read_bytes())
    live.unlink()
    assert Path(f"{db}-wal").stat().st_size > 0


def _foreign_tables(db: Path) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("CREATE TABLE notes (text TEXT)")
        other.execute("INSERT INTO notes VALUES ('precious')")


def _directory(db: Path) -> None:
    db.mkdir()
    (db / "a.txt").write_text("precious")


_NOT_CONVD: dict[str, tuple[Callable[[Path], None], str]] = {
    "directory": (_directory, "is not a regular file; choose another --db"),
    "fifo": (os.mkfifo, "is not a regular file; choose another --db"),
    "text": (
        lambda db: db.write_text("my notes\n" * 100),
        "is not a convd database (not an SQLite database); convd leaves it untouched",
    ),
    "foreign-id": (_foreign_with_wal, "is not a convd database (its application_id is 0x12345678)"),
    "foreign-tables": (_foreign_tables, "is not a convd database (it holds notes)"),
}


def _state(directory: Path) -> dict[str, str]:
    return {
        str(p): _digest(p) if p.is_file() else str(p.stat().st_mode) for p in directory.rglob("*")
    }


@pytest.mark.parametrize("kind", sorted(_NOT_CONVD))
async def test_restore_refuses_to_replace_what_is_not_a_convd_database(
    saved: Path, tmp_path: Path, kind: str
) -> None:
    make, message = _NOT_CONVD[kind]
    db = tmp_path / "other" / "thing"
    db.parent.mkdir()
    make(db)
    before = _state(db.parent)
    with pytest.raises(MaintenanceError) as refused:
        restore_database(saved, db)
    assert str(refused.value).startswith(f"{db} {message}")
    assert "\n" not in str(refused.value)
    # Untouched: not renamed, not checkpointed (its WAL keeps its frames), nothing beside it.
    assert _state(db.parent) == before


async def test_restore_replaces_a_damaged_convd_database(saved: Path, tmp_path: Path) -> None:
    # Replacing a damaged database is what restore is for (the daemon's refusal says so).
    db = tmp_path / "data" / "convd.db"
    db.parent.mkdir()
    await _convd_database(db, "alice", "bob")
    data = bytearray(db.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for offset in range(page_size, len(data), page_size):
        data[offset : offset + 64] = b"\xa5" * 64
    db.write_bytes(bytes(data))
    damaged = _digest(db)
    result = restore_database(saved, db)
    assert result.replaced is not None
    assert _digest(result.replaced) == damaged
    assert _users(db) == ["alice"]


async def test_restore_replaces_an_empty_file_and_keeps_the_wal_beside_it(
    saved: Path, tmp_path: Path
) -> None:
    # SQLite deletes a WAL it finds beside an empty file when it opens it read-write: the
    # restore must not open this one (the WAL may hold every write of the lost database).
    db = tmp_path / "convd.db"
    db.write_bytes(b"")
    wal = Path(f"{db}-wal")
    live = tmp_path / "live.db"
    with closing(sqlite3.connect(live, isolation_level=None)) as other:
        other.execute("PRAGMA journal_mode = WAL")
        other.execute("PRAGMA wal_autocheckpoint = 0")
        other.execute("CREATE TABLE t (x)")
        wal.write_bytes(Path(f"{live}-wal").read_bytes())
    wal_bytes = wal.read_bytes()
    result = restore_database(saved, db)
    assert result.replaced is not None
    assert result.replaced.read_bytes() == b""
    assert Path(f"{result.replaced}-wal").read_bytes() == wal_bytes
    assert not wal.exists()
    assert _users(db) == ["alice"]


# -- backup: file systems without hard links --------------------------------------------------


def _no_hard_links(
    monkeypatch: pytest.MonkeyPatch, code: int, before: Callable[[], None] = lambda: None
) -> list[str]:
    calls: list[str] = []

    def link(src: object, dst: object, *args: object, **kwargs: object) -> None:
        calls.append(str(dst))
        before()
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(maintenance.os, "link", link)
    return calls


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS])
async def test_a_backup_without_hard_links_is_written_and_never_replaces_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    db = tmp_path / "convd.db"
    await _convd_database(db, "alice")
    usb = tmp_path / "usb"
    usb.mkdir()
    calls = _no_hard_links(monkeypatch, code)
    target = usb / "drafts.db"
    info = backup_database(db, target)
    assert calls == [str(target)]
    assert info.size_bytes == target.stat().st_size > 0
    assert target.stat().st_mode & 0o777 == 0o600
    assert _users(target) == ["alice"]
    assert sorted(p.name for p in usb.iterdir()) == ["drafts.db"]  # no temporary left

    # An existing file is still never replaced.
    kept = usb / "kept.db"
    kept.write_text("keep me")
    with pytest.raises(BackupFailed) as failed:
        backup_database(db, kept)
    assert failed.value.errno_name == "EEXIST"
    assert kept.read_text() == "keep me"
    assert sorted(p.name for p in usb.iterdir()) == ["drafts.db", "kept.db"]


async def test_a_backup_without_hard_links_never_replaces_a_file_that_appeared_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "convd.db"
    await _convd_database(db, "alice")
    target = tmp_path / "drafts.db"
    # Someone else's file appears after the first check, just before the copy is published.
    _no_hard_links(monkeypatch, errno.EPERM, lambda: target.write_text("theirs"))
    with pytest.raises(BackupFailed) as failed:
        backup_database(db, target)
    assert failed.value.errno_name == "EEXIST"
    assert "already exists" in str(failed.value)
    assert target.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- backup: never over a socket --------------------------------------------------------------


async def test_a_backup_never_replaces_a_socket(tmp_path: Path) -> None:
    db = tmp_path / "convd.db"
    await _convd_database(db, "alice")
    path = tmp_path / "some.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listening:
        listening.bind(str(path))
        with pytest.raises(BackupFailed) as failed:
            backup_database(db, path, overwrite=True)
        assert str(failed.value) == f"{path} is a socket; choose another path"
        assert path.is_socket()
