"""Opening a database: only an empty or missing file is created; anything else must be a sound
convd database, checked read-only (not a byte written) before the WAL switch or a migration."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from convd.domain import Account, BackupFailed, ConversationService, EventBus
from convd.rpc import ConvListing
from convd.store import (
    SCHEMA_VERSION,
    DatabaseError,
    SqliteStore,
    maintenance,
    open_store,
    opening,
)
from convd.store.migrations import APPLICATION_ID, MIGRATIONS, register_functions
from convd.store.opening import StartedCheck, _quick_check, check_database
from convd.store.writer import _Transaction, list_key

pytestmark = pytest.mark.anyio


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def _sql(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        rows = db.execute(sql).fetchall()
    return rows


async def _login(store: SqliteStore, user_id: str) -> Account:
    return await ConversationService(store, EventBus()).login(0, user_id)


async def _make_convd_database(path: Path) -> None:
    async with open_store(path, listing=ConvListing()) as store:
        account = await _login(store, "alice")
        assert account.id == 1


def _old_convd_database(path: Path, version: int) -> None:
    """A database as convd 0.1 left it: schema ``version``, no application_id."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        for target, script in enumerate(MIGRATIONS[:version], start=1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {target}; COMMIT;")
        db.execute("INSERT INTO account (sdk_app_id, user_id) VALUES (0, 'alice')")
        db.execute(
            "INSERT INTO conversation (account_id, conv_type, conv_id, order_key, active_time) "
            "VALUES (1, 1, 'bob', 1, 1), (1, 1, 'carol', 2, 2)"
        )


async def test_a_new_database_carries_convds_application_id(tmp_path: Path) -> None:
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    assert _sql(db, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert _sql(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    # The header says so too (what `file` and the start-up check read).
    assert int.from_bytes(db.read_bytes()[68:72], "big") == APPLICATION_ID


async def test_an_empty_file_is_made_a_database(tmp_path: Path) -> None:
    db = tmp_path / "convd.db"
    db.touch()
    assert check_database(db) is True
    await _make_convd_database(db)
    assert _sql(db, "PRAGMA application_id") == [(APPLICATION_ID,)]


@pytest.mark.parametrize("version", [1, 2])
async def test_an_older_convd_database_opens_and_is_marked(tmp_path: Path, version: int) -> None:
    db = tmp_path / "convd.db"
    _old_convd_database(db, version)
    assert _sql(db, "PRAGMA application_id") == [(0,)]
    async with open_store(db, listing=ConvListing()) as store:
        assert await store.count_conversations() == 2
        assert store.history_id
    assert _sql(db, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert _sql(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert _sql(db, "SELECT conversations FROM account") == [(2,)]


async def test_a_database_with_a_notes_table_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        other.execute("INSERT INTO notes (body) VALUES ('keep me')")
    before, names = _digest(db), _files(tmp_path)
    with pytest.raises(DatabaseError) as refused:
        async with open_store(db, listing=ConvListing()):
            pass
    message = str(refused.value)
    assert message.startswith(f"{db} is not a convd database (it holds notes)")
    assert "\n" not in message
    assert _digest(db) == before
    assert _files(tmp_path) == names  # not even a -wal or -shm beside it


async def test_a_database_with_its_own_account_table_keeps_its_header(tmp_path: Path) -> None:
    db = tmp_path / "bank.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("CREATE TABLE account (iban TEXT PRIMARY KEY, balance INTEGER)")
        other.execute("INSERT INTO account VALUES ('DE00', 100)")
    header, before = db.read_bytes()[:100], _digest(db)
    with pytest.raises(DatabaseError, match="is not a convd database"):
        async with open_store(db, listing=ConvListing()):
            pass
    assert db.read_bytes()[:100] == header
    assert _digest(db) == before


async def test_another_applications_id_is_refused_from_the_header(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        # Tables convd would recognise do not make it convd's.
        for script in MIGRATIONS[:2]:
            other.executescript(script)
        other.execute("PRAGMA user_version = 2")
        other.execute("PRAGMA application_id = 1234")
    before = _digest(db)
    with pytest.raises(DatabaseError, match=r"its application_id is 0x4d2"):
        check_database(db)
    assert _digest(db) == before


@pytest.mark.parametrize(
    "content",
    [b"hello, world\n" * 100, b"\0" * 4096, b"SQLite format 3"],
    ids=["text", "zeros", "magic-only"],
)
async def test_a_file_that_is_not_sqlite_is_refused_untouched(
    tmp_path: Path, content: bytes
) -> None:
    db = tmp_path / "convd.db"
    db.write_bytes(content)
    with pytest.raises(DatabaseError, match="not a convd database \\(not an SQLite database\\)"):
        async with open_store(db, listing=ConvListing()):
            pass
    assert db.read_bytes() == content
    assert _files(tmp_path) == {"convd.db"}


@pytest.mark.parametrize("cut", [1, 100, 2048, 4096 + 7])
async def test_a_database_cut_short_is_refused_untouched(tmp_path: Path, cut: int) -> None:
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    with closing(sqlite3.connect(db)) as raw, raw:
        # Enough rows for several pages.
        raw.executemany(
            "INSERT INTO conversation (account_id, conv_type, conv_id, order_key, "
            "active_time, list_key, draft) VALUES (1, 1, ?, ?, ?, ?, ?)",
            [(f"user{n}", n, n, list_key(1, n), b'"' + b"x" * 200 + b'"') for n in range(200)],
        )
    assert not os.path.exists(f"{db}-wal")  # closed cleanly: the file holds everything
    os.truncate(db, db.stat().st_size - cut)
    before, names = _digest(db), _files(tmp_path)
    with pytest.raises(DatabaseError) as refused:
        async with open_store(db, listing=ConvListing()):
            pass
    message = str(refused.value)
    assert message.startswith(f"{db} is damaged (")
    assert f"convd restore BACKUP --db {db}" in message
    assert "\n" not in message
    assert _digest(db) == before
    assert _files(tmp_path) == names


async def test_a_damaged_page_is_found_by_the_quick_check(tmp_path: Path) -> None:
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    with closing(sqlite3.connect(db, isolation_level=None)) as raw:
        raw.execute("PRAGMA journal_mode = DELETE")
        page_size = raw.execute("PRAGMA page_size").fetchone()[0]
        pages = raw.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 2
    # Scribble over the second page (a b-tree page) without changing the size.
    with db.open("r+b") as file:
        file.seek(page_size)
        file.write(b"\xff" * 64)
    with pytest.raises(DatabaseError, match=f"{db} is damaged"):
        check_database(db)


def _filled_convd_database(db: Path, rows: int, *, indexed: bool = False) -> None:
    """A convd-marked database with ``rows`` random 300-byte blobs (and an index on them)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as raw:
        raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        raw.execute("CREATE TABLE filler (x BLOB)")
        if indexed:
            raw.execute("CREATE INDEX filler_x ON filler (x)")
        raw.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO filler SELECT randomblob(300) FROM n",
            (rows,),
        )


def test_the_quick_check_is_bounded_in_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "convd.db"
    _filled_convd_database(db, 5000)
    # No time at all: the check stops at once, says so, and the start goes on.
    assert check_database(db, budget=0.0) is False
    assert f"the check of {db} did not finish within 0 s" in caplog.text


def test_a_check_that_runs_out_of_time_is_interrupted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "convd.db"
    # ~25 MB: tens of milliseconds of checking even on a fast machine, against 1 ms.
    _filled_convd_database(db, 40000, indexed=True)
    assert check_database(db, budget=0.001) is False
    assert f"the check of {db} did not finish within 0.001 s" in caplog.text
    caplog.clear()
    assert check_database(db) is False  # with its full budget it finishes, silently
    assert "did not finish" not in caplog.text


class _LateStatement:
    """A connection whose statements start ``delay`` s after they are asked for: the thread
    that runs the check, held up on a loaded machine."""

    def __init__(self, db: sqlite3.Connection, delay: float) -> None:
        self._db = db
        self._delay = delay
        self.interrupts = 0

    def interrupt(self) -> None:
        self.interrupts += 1
        self._db.interrupt()

    def execute(self, sql: str) -> sqlite3.Cursor:
        time.sleep(self._delay)
        return self._db.execute(sql)


def test_a_budget_that_ends_before_the_check_starts_still_stops_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sqlite3_interrupt() is lost while no statement runs: a single one at the deadline,
    # before the check's first step, let the check run to its end.
    # The check takes ~10 ms here: the repeats come often enough to land within it.
    monkeypatch.setattr(opening, "_INTERRUPT_REPEAT_SECONDS", 0.001)
    db = tmp_path / "convd.db"
    _filled_convd_database(db, 40000, indexed=True)
    with closing(sqlite3.connect(db)) as connection:
        late = _LateStatement(connection, delay=0.05)
        assert _quick_check(late, db, budget=0.001) is False  # type: ignore[arg-type]
    assert late.interrupts >= 2
    assert f"the check of {db} did not finish within 0.001 s" in caplog.text


async def test_a_started_check_gives_the_verdict_of_check_database(tmp_path: Path) -> None:
    assert StartedCheck(tmp_path / "new.db").result() is True  # nothing there: created
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    assert StartedCheck(db).result() is False
    with db.open("r+b") as file:  # damaged: a page's header overwritten
        file.seek(4096)
        file.write(b"\xff" * 64)
    with pytest.raises(DatabaseError, match=f"{db} is damaged"):
        StartedCheck(db).result()


async def test_a_started_check_checks_again_when_the_file_changed_since(tmp_path: Path) -> None:
    """Its verdict was reached before the daemon held the lock: it counts only for the file
    it saw."""
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    check = StartedCheck(db)
    check._thread.join()  # it found the file sound ...
    with db.open("ab") as file:  # ... which is then cut short of a whole page
        file.write(b"\0" * 100)
    with pytest.raises(DatabaseError, match="ends in the middle of a page"):
        check.result()


def test_a_missing_database_with_a_leftover_wal_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "convd.db"
    Path(f"{db}-wal").write_bytes(b"x" * 100)
    with pytest.raises(DatabaseError, match="is missing but its write-ahead log"):
        check_database(db)
    assert not db.exists()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="is not a regular file"):
        check_database(tmp_path)


async def test_status_counts_follow_creates_replaces_and_deletes(tmp_path: Path) -> None:
    db = tmp_path / "convd.db"
    async with open_store(db, listing=ConvListing()) as store:
        alice = await _login(store, "alice")
        bob = await _login(store, "bob")
        # Every way a conversation can be stored: insert, INSERT OR REPLACE, upsert (the
        # writer's). Active times are unique within an account, as the writer keeps them.
        sql = (
            "INSERT OR REPLACE INTO conversation (account_id, conv_type, conv_id, order_key, "
            "active_time, list_key) VALUES (?, 1, ?, ?, ?, ?)"
        )
        with closing(sqlite3.connect(db)) as raw, raw:
            for account, conv, time in (
                (alice, "x", 1),
                (alice, "x", 3),
                (alice, "y", 2),
                (bob, "x", 1),
            ):
                raw.execute(sql, (account.id, conv, time, time, list_key(account.id, time)))
            raw.execute(
                "INSERT INTO conversation (account_id, conv_type, conv_id, order_key, "
                "active_time, list_key) VALUES (?, 1, 'y', 5, 5, ?) "
                "ON CONFLICT DO UPDATE SET order_key = 5",
                (alice.id, list_key(alice.id, 5)),
            )
        assert await store.count_conversations() == 3
        with closing(sqlite3.connect(db)) as raw, raw:
            raw.execute(
                "DELETE FROM conversation WHERE account_id = ? AND conv_id = 'x'", (alice.id,)
            )
        assert await store.count_conversations() == 2
    counted = _sql(db, "SELECT id, conversations FROM account ORDER BY id")
    actual = _sql(db, "SELECT account_id, count(*) FROM conversation GROUP BY 1 ORDER BY 1")
    assert counted == actual == [(1, 1), (2, 1)]


def test_counting_pinned_conversations_reads_only_the_pinned(tmp_path: Path) -> None:
    # The pin limit's count: pinned conversations are a range of the table's rowid (list_key
    # has the pinned bit above the order key), so it reads the pinned rows only.
    db = tmp_path / "convd.db"
    db.touch()
    with closing(sqlite3.connect(db, isolation_level=None)) as raw:
        register_functions(raw)
        for script in MIGRATIONS:
            raw.executescript(script)
        plan = raw.execute("EXPLAIN QUERY PLAN " + _Transaction.COUNT_PINNED, (1, 2)).fetchall()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in detail, detail


def _counting_quick_checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths the start-up check runs PRAGMA quick_check on, from now on."""
    checked: list[Path] = []
    real = opening._quick_check

    def counting(db: sqlite3.Connection, path: Path, budget: float) -> bool:
        checked.append(path)
        return real(db, path, budget)

    monkeypatch.setattr(opening, "_quick_check", counting)
    return checked


async def test_a_file_as_the_last_clean_stop_left_it_is_not_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    stamp = tmp_path / "convd.db.checked"
    assert stamp.exists() and not Path(f"{db}-wal").exists()
    checked = _counting_quick_checks(monkeypatch)
    first = opening.examine_database(db)
    assert checked == [] and first.checked_at is not None  # vouched for by the stamp
    async with open_store(db, listing=ConvListing()) as store:
        await _login(store, "bob")  # writes: the file changes, and so does the stamp
    assert checked == []
    # The stamp carries the time of the last check that ran, not of the last start.
    assert opening.examine_database(db).checked_at == first.checked_at
    assert checked == []


@pytest.mark.parametrize("change", ["damage", "touch", "wal", "stale", "garbled"])
async def test_a_file_changed_since_the_clean_stop_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    stamp = tmp_path / "convd.db.checked"
    checked = _counting_quick_checks(monkeypatch)
    if change == "damage":  # overwritten in place: the same size, a page's header broken
        with db.open("r+b") as file:
            file.seek(4096)
            file.write(b"\xff" * 64)
        with pytest.raises(DatabaseError, match=f"{db} is damaged"):
            opening.examine_database(db)
        assert checked == [db]
        return
    if change == "touch":  # even a modification time set back to what it was
        info = db.stat()
        os.utime(db, ns=(info.st_atime_ns, info.st_mtime_ns))
    elif change == "wal":  # what a crash leaves behind
        with closing(sqlite3.connect(db, isolation_level=None)) as other:
            other.execute("PRAGMA wal_autocheckpoint = 0")
            other.execute("INSERT INTO account (sdk_app_id, user_id) VALUES (0, 'x')")
            assert opening.examine_database(db).checked_at is not None
    elif change == "stale":  # the last whole check is more than a day old
        fields = stamp.read_text().split()
        old = float(fields[-1]) - opening.FULL_CHECK_INTERVAL - 1
        stamp.write_text(" ".join([*fields[:-1], repr(old)]) + "\n")
    else:
        stamp.write_text("convd-checked-1 not a stamp\n")
    if change != "wal":
        assert opening.examine_database(db).checked_at is not None
    assert checked == [db]


async def test_no_stamp_after_a_check_that_ran_out_of_time(tmp_path: Path) -> None:
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    stamp = tmp_path / "convd.db.checked"
    stamp.unlink()
    async with open_store(db, listing=ConvListing(), check=StartedCheck(db, budget=0.0)):
        pass
    assert not stamp.exists()  # never seen whole: the next start checks it
    async with open_store(db, listing=ConvListing()):
        pass
    assert stamp.exists()


async def test_a_start_removes_the_stamp_until_its_clean_close(tmp_path: Path) -> None:
    """A run that ends in a crash leaves no stamp (its WAL would also say so, unless it
    wrote nothing)."""
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    stamp = tmp_path / "convd.db.checked"
    assert stamp.exists()
    async with open_store(db, listing=ConvListing()):
        assert not stamp.exists()
    assert stamp.exists()
    assert stamp.stat().st_mode & 0o777 == 0o600
    assert not [name for name in _files(tmp_path) if name.endswith(".tmp")]


async def test_a_run_that_saw_sqlite_fail_leaves_no_stamp_even_if_it_wrote_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that failed (here: a backup's copy, as SQLite fails on a page it cannot read)
    leaves the file as it was, with no write to change its identity: the last clean stop's
    stamp must not vouch for it."""
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    stamp = tmp_path / "convd.db.checked"
    identity = opening._identity(db)

    def unreadable(source: sqlite3.Connection, target: Path) -> int:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(maintenance, "_copy", unreadable)
    async with open_store(db, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        with pytest.raises(BackupFailed) as failed:
            await service.backup(str(tmp_path / "backup.db"), False)
        assert failed.value.database_failed
        assert store.stats.database_errors == 1
    assert opening._identity(db) == identity  # nothing written
    assert not stamp.exists()
    checked = _counting_quick_checks(monkeypatch)
    opening.examine_database(db)
    assert checked == [db]


async def test_a_backup_that_fails_on_its_target_is_no_database_error(tmp_path: Path) -> None:
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    async with open_store(db, listing=ConvListing()) as store:
        service = ConversationService(store, EventBus())
        with pytest.raises(BackupFailed) as failed:
            await service.backup(str(tmp_path / "no such directory" / "backup.db"), False)
        assert not failed.value.database_failed
        assert store.stats.database_errors == 0
    assert (tmp_path / "convd.db.checked").exists()


async def test_a_backup_runs_after_its_worker_thread_start_on_that_thread(
    tmp_path: Path,
) -> None:
    # (The daemon passes placement.SharedCpu.free_this_thread: a worker thread started while
    # the event loop is pinned would otherwise run the backup on the loop's CPU.)
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    started: list[int] = []
    loop_thread = threading.get_native_id()
    async with open_store(
        db,
        listing=ConvListing(),
        worker_thread_start=lambda: started.append(threading.get_native_id()),
    ) as store:
        info = await ConversationService(store, EventBus()).backup(
            str(tmp_path / "backup.db"), False
        )
    assert info.size_bytes > 0
    assert len(started) == 1 and started[0] != loop_thread


@pytest.mark.parametrize(
    ("mtime_ns", "ctime_ns", "trusted"),
    [
        (1_700_000_000_123_456_789, 1_700_000_000_987_654_321, True),
        (1_700_000_000_000_000_000, 1_700_000_000_500_000_001, True),
        (1_700_000_000_000_000_000, 1_700_000_001_000_000_000, False),  # whole seconds
        (1_700_000_000_010_000_000, 1_700_000_000_020_000_000, False),  # exFAT's 10 ms
        (1_700_000_000_001_000_000, 1_700_000_000_001_000_001, True),
    ],
)
def test_coarse_file_times_are_not_trusted_to_tell_changes_apart(
    mtime_ns: int, ctime_ns: int, trusted: bool
) -> None:
    database = (1, 2, 4096, mtime_ns, ctime_ns)
    assert opening._times_tell_changes_apart(database) is trusted


async def test_a_started_check_does_not_count_on_a_stamp_removed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another start may remove the stamp (and its run fail) while this one imports: the
    verdict that leaned on the stamp is taken again, under the lock, and checks the file."""
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    checked = _counting_quick_checks(monkeypatch)
    started = StartedCheck(db)
    started._thread.join()
    assert checked == []  # the stamp vouched for the file
    opening.forget_clean_close(db)
    assert started.verdict().checked_at is not None
    assert checked == [db]


@pytest.mark.parametrize(
    ("code", "on_target"),
    [
        (sqlite3.SQLITE_FULL, True),
        (sqlite3.SQLITE_IOERR_WRITE, True),
        (sqlite3.SQLITE_IOERR_FSYNC, True),
        (sqlite3.SQLITE_CANTOPEN, True),
        (sqlite3.SQLITE_CORRUPT, False),
        (sqlite3.SQLITE_IOERR_READ, False),
        (sqlite3.SQLITE_IOERR_SHORT_READ, False),
        (sqlite3.SQLITE_NOTADB, False),
        (None, False),
    ],
)
def test_a_backup_error_of_the_copy_is_told_from_one_of_the_database(
    code: int | None, on_target: bool
) -> None:
    error = sqlite3.DatabaseError("failed")
    if code is not None:
        error.sqlite_errorcode = code
    assert maintenance.failed_on_target(error) is on_target


async def test_a_start_removes_what_a_stamp_that_died_half_written_left(tmp_path: Path) -> None:
    """A daemon killed between creating a stamp's temporary file and renaming it leaves the
    file; the next start (which holds the lock) removes it, and nothing else."""
    db = tmp_path / "convd.db"
    await _make_convd_database(db)
    from convd.store.maintenance import private_temp

    leftover = private_temp(tmp_path, "convd.db.checked")
    others = [
        private_temp(tmp_path, "other.db.checked"),  # another database's
        private_temp(tmp_path, "convd.db"),  # a backup's, not a stamp's
        tmp_path / ".convd.db.checked.notmine.tmp",
    ]
    others[-1].write_text("")
    opening.forget_clean_close(db)
    assert not leftover.exists()
    assert all(path.exists() for path in others)
