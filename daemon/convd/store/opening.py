"""Deciding, without writing a byte, whether a file may be opened as convd's database.

convd creates a database only where there is none (no file, or an empty one). Anything else
must be a sound convd database: an SQLite file marked with convd's ``application_id``, or one
from before that mark (schema versions 1-2, recognised by their tables). Another application's
database, a file that is not SQLite and a damaged file are refused, untouched, before the
daemon switches the journal mode or migrates anything.

The checks, cheapest first:

1. the header (first 100 bytes, read directly): SQLite's magic string, the application_id,
   and whether the file ends on a page boundary and holds every page its header counts (a file
   cut short, by a copy or a full disk, fails here at once, whatever its size);
2. a read-only SQLite connection (``immutable`` when there is no WAL to replay, so not even a
   ``-shm`` file appears): the schema version and tables;
3. ``PRAGMA quick_check`` (b-tree structure, record formats, NOT NULL and CHECK constraints;
   not the slower match of index and table content that ``integrity_check`` adds), bounded by
   ``QUICK_CHECK_SECONDS``: a check that runs out of time is logged and start-up goes on.
   It is skipped when the file is exactly as convd left it at a clean shutdown, and the last
   quick_check of it that finished is less than ``FULL_CHECK_INTERVAL`` old: like a file
   system marked clean at unmount, the file needs checking only if something else may have
   changed it. The ``<database>.checked`` stamp (``record_clean_close``) holds what makes
   that sure (device, inode, size, modification and change times of the file, and no WAL),
   and when that quick_check ran. A write by anyone, a truncation, a restore or a crash
   (which leaves a WAL) changes what the stamp names; the change time cannot be set back.
   The stamp is removed as soon as a start has accepted the file (``forget_clean_close``)
   and written again only by a clean close after a run in which SQLite reported no error.
   No stamp is written where file times may not tell two changes apart: times in whole
   milliseconds or coarser (exFAT, FAT, ext3, some network file systems) or a change time
   that is the creation time (Windows); there every start checks.

``convd serve`` runs all of it on a thread of its own from the moment its command line is
parsed (``StartedCheck``), while the daemon imports the rest of itself: the quick_check of
100,000 conversations (64-100 MB since schema 11's renderings) takes ~110 ms of SQLite's C
code, which holds no GIL. This module needs nothing but sqlite3 for that.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Final, NamedTuple

# urllib.parse's quote is pathname2url on POSIX, without urllib.request's ~15 ms import.
from urllib.parse import quote as pathname2url

from .migrations import APPLICATION_ID, CONVD_TABLES, SCHEMA_VERSION

__all__ = [
    "FULL_CHECK_INTERVAL",
    "QUICK_CHECK_SECONDS",
    "DamagedDatabase",
    "DatabaseError",
    "StartedCheck",
    "Verdict",
    "check_database",
    "check_replaceable",
    "examine_database",
    "forget_clean_close",
    "record_clean_close",
]

logger = logging.getLogger(__name__)

#: The most time start-up spends on ``PRAGMA quick_check``. It reads every page: ~110 ms for
#: the 100 MB of 100,000 conversations with their change history, from a warm cache, so 1 s
#: covers databases of several hundred MB; a bigger one is checked that far, and the header
#: checks still apply.
QUICK_CHECK_SECONDS: Final = 1.0
#: The longest the quick_check of an unchanged file is skipped: a file that lay on a disk for
#: a day is read whole once more (bad sectors, firmware: damage that no write time shows).
FULL_CHECK_INTERVAL: Final = 24 * 3600.0

_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100


class DatabaseError(Exception):
    """The database cannot be used (newer schema, corrupt file, wrong permissions)."""


class DamagedDatabase(DatabaseError):
    """The file is damaged (cut short, a bad header or page): restoring a backup is the cure."""


def _damaged(path: Path, detail: str) -> DamagedDatabase:
    return DamagedDatabase(
        f"{path} is damaged ({detail}); convd leaves it untouched. "
        f"Restore a backup into it with: convd restore BACKUP --db {path}"
    )


def _foreign(path: Path, detail: str) -> DatabaseError:
    return DatabaseError(
        f"{path} is not a convd database ({detail}); convd leaves it untouched: choose another --db"
    )


def _not_regular(path: Path) -> DatabaseError:
    return DatabaseError(f"{path} is not a regular file; choose another --db")


def _wal_has_frames(path: Path) -> bool:
    try:
        return os.path.getsize(f"{path}-wal") > 0
    except OSError:
        return False


def _check_header(path: Path, size: int, wal: bool) -> None:
    with path.open("rb") as file:
        header = file.read(_HEADER_SIZE)
    if len(header) < _HEADER_SIZE or not header.startswith(_MAGIC):
        raise _foreign(path, "not an SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise _damaged(path, f"its header gives the page size {page_size}")
    if size % page_size:
        raise _damaged(
            path,
            f"it ends in the middle of a page: {size} bytes is not a whole number of "
            f"{page_size}-byte pages",
        )
    # The page count in the header is valid only when the "version-valid-for" number matches
    # the change counter; and a WAL may still hold pages the file does not have yet.
    pages = int.from_bytes(header[28:32], "big")
    if not wal and header[24:28] == header[92:96] and pages * page_size > size:
        raise _damaged(path, f"it is cut short: {size // page_size} of its {pages} pages are there")
    application_id = int.from_bytes(header[68:72], "big", signed=True)
    if application_id not in (0, APPLICATION_ID):
        raise _foreign(path, f"its application_id is {application_id:#x}")


def _connect_read_only(path: Path, wal: bool) -> sqlite3.Connection:
    # immutable: no locks and no -wal/-shm files (valid while we hold the database's lock and
    # there is no WAL to replay); otherwise read-only, replaying the WAL a crash left behind.
    mode = "mode=ro" if wal else "mode=ro&immutable=1"
    return sqlite3.connect(
        f"file:{pathname2url(str(path.resolve()))}?{mode}", uri=True, isolation_level=None
    )


#: How often a check past its budget is interrupted again, until it stops.
_INTERRUPT_REPEAT_SECONDS = 0.01


def _out_of_time(path: Path, budget: float) -> None:
    logger.warning("the check of %s did not finish within %.3g s; starting anyway", path, budget)


def _quick_check(db: sqlite3.Connection, path: Path, budget: float) -> bool:
    """True if the check finished (and found nothing); raises DatabaseError if it found
    damage; False if it ran out of time."""
    if budget <= 0:
        _out_of_time(path, budget)
        return False
    # Stopped from a timer thread (sqlite3_interrupt), not by a progress handler: a handler
    # is Python, and taking the GIL every few thousand steps made the check wait for the
    # imports it runs beside (StartedCheck).
    # sqlite3_interrupt() is a no-op while no statement runs, so one that lands before the
    # check's first step (this thread held up on a loaded machine) would be lost and the check
    # would run to its end: the interrupt is repeated until the check ends.
    done = threading.Event()

    def interrupt_when_over() -> None:
        if done.wait(budget):
            return
        db.interrupt()
        while not done.wait(_INTERRUPT_REPEAT_SECONDS):
            db.interrupt()

    timer = threading.Thread(target=interrupt_when_over, name="convd-check-timer", daemon=True)
    timer.start()
    try:
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_INTERRUPT:
            raise
        _out_of_time(path, budget)
        return False
    finally:
        done.set()
        timer.join()  # no interrupt may reach the connection's later statements
    if problems != ["ok"]:
        raise _damaged(path, "; ".join(" ".join(p.split()) for p in problems))
    return True


class Verdict(NamedTuple):
    """What the check of a database found."""

    #: convd is to create the database (there is none, or an empty file).
    create: bool
    #: When a quick_check of the file last finished (time.time()): the one just run, or the
    #: one a clean-shutdown stamp vouches for; None when it ran out of time.
    checked_at: float | None


def _identify(db: sqlite3.Connection, path: Path) -> int | None:
    """The schema version of the convd database ``db``, or None for an SQLite file with
    nothing in it; raises DatabaseError for another application's database."""
    application_id = int(db.execute("PRAGMA application_id").fetchone()[0])
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    names = {str(row[0]): str(row[1]) for row in db.execute("SELECT name, type FROM sqlite_master")}
    tables = {name for name, kind in names.items() if kind == "table"}
    if application_id == APPLICATION_ID:
        pass
    elif application_id != 0:
        raise _foreign(path, f"its application_id is {application_id:#x}")
    elif not names and version == 0:
        # An SQLite file with nothing in it (e.g. a start that stopped right after
        # creating it): nothing to take over.
        return None
    elif not (1 <= version <= 2 and tables >= CONVD_TABLES):
        listed = ", ".join(sorted(tables)[:5]) or "no tables"
        raise _foreign(path, f"it holds {listed}")
    return version


def _check_contents(path: Path, wal: bool, budget: float, clean_since: float | None) -> Verdict:
    """Check through SQLite, read-only (the quick_check only when ``clean_since`` is None);
    ``create`` if the file is an SQLite database with no schema."""
    with closing(_connect_read_only(path, wal)) as db:
        version = _identify(db, path)
        if version is None:
            return Verdict(True, time.time())
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"{path} has schema version {version}, newer than this convd understands "
                f"({SCHEMA_VERSION}); upgrade convd"
            )
        if clean_since is not None:
            logger.debug("%s is as convd closed it: quick_check skipped", path)
            return Verdict(False, clean_since)
        started = time.time()
        return Verdict(False, started if _quick_check(db, path, budget) else None)


def check_database(path: Path, *, budget: float = QUICK_CHECK_SECONDS) -> bool:
    """Check ``path`` without changing it; True if convd is to create the database there.

    Raises DatabaseError, naming the file and what to do, for anything convd must not open.
    """
    return examine_database(path, budget=budget).create


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".checked")


def _clean_since(path: Path, identity: tuple[tuple[int, ...] | None, ...]) -> float | None:
    """When the quick_check the stamp vouches for ran, if the stamp names ``identity`` and
    that is recent enough; otherwise None."""
    try:
        fields = _stamp_path(path).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    database = identity[0]
    if len(fields) != 7 or fields[0] != "convd-checked-1" or database is None or identity[1]:
        return None
    try:
        named = tuple(int(field) for field in fields[1:6])
        checked_at = float(fields[6])
    except ValueError:
        return None
    if named != database or not 0 <= time.time() - checked_at < FULL_CHECK_INTERVAL:
        return None
    return checked_at


def _past(ctime_ns: int) -> bool:
    """Wait (a few ms at most) until the clock that file times come from has passed
    ``ctime_ns``: then any later change to the file gets a later change time. Linux stamps
    files from a coarse clock, which can give two changes a few ms apart the same time."""
    clock = getattr(time, "CLOCK_REALTIME_COARSE", time.CLOCK_REALTIME)
    deadline = time.monotonic() + 0.05
    while time.clock_gettime_ns(clock) <= ctime_ns:
        if time.monotonic() > deadline:
            return False  # a clock set back: no stamp, the next start checks
        time.sleep(0.001)
    return True


def forget_clean_close(path: Path) -> None:
    """Remove ``path``'s stamp: once a start has accepted the file, only a clean close may
    vouch for it again (a run that ends in a crash, or that saw SQLite fail, must not leave
    the last clean close's stamp behind, even if it wrote nothing).

    Also removes what a stamp's writing left behind when its process died between creating
    its temporary file and renaming it (``record_clean_close``): only a daemon that holds
    the database's lock writes stamps, and the caller holds it now.
    """
    stamp = _stamp_path(path)
    try:
        stamp.unlink(missing_ok=True)
    except OSError as exc:
        # A stamp that cannot go could vouch for a file this run finds damaged: say so.
        logger.warning("cannot remove %s (remove it by hand): %s", stamp, exc)
    # Imported here, as in record_clean_close (open_store, the caller, has it loaded).
    from .maintenance import private_temps

    for leftover in private_temps(stamp.parent, stamp.name):
        try:
            leftover.unlink()
        except OSError as exc:
            logger.debug("cannot remove %s: %s", leftover, exc)


def _times_tell_changes_apart(database: tuple[int, ...]) -> bool:
    """False where a file's times may be too coarse to tell two changes apart: whole
    milliseconds or coarser (exFAT's 10 ms, FAT's 2 s, ext3's 1 s, some network file
    systems; a nanosecond clock lands on a whole millisecond once in 10**6, and then only
    that stamp is not written), or a change time that is the creation time (Windows)."""
    mtime_ns, ctime_ns = database[3], database[4]
    return os.name == "posix" and bool(mtime_ns % 1_000_000 or ctime_ns % 1_000_000)


def record_clean_close(path: Path, checked_at: float) -> None:
    """After a clean shutdown (every connection closed, so no WAL): stamp ``path`` as left
    by convd, last checked at ``checked_at``, so that the next start may skip its check."""
    identity = _identity(path)
    database = identity[0]
    if database is None or identity[1] is not None or not _times_tell_changes_apart(database):
        return
    if not _past(database[4]) or _identity(path) != identity:
        return  # a clock set back, or a change meanwhile: no stamp, the next start checks
    line = " ".join(["convd-checked-1", *map(str, database), repr(checked_at)])
    stamp = _stamp_path(path)
    # Imported here: the start-up's early check imports this module, and needs no more.
    from .maintenance import private_temp

    partial: Path | None = None
    try:
        # Written beside (a new 0600 file, never one someone put there) and renamed over: a
        # stamp is whole or absent.
        partial = private_temp(stamp.parent, stamp.name)
        fd = os.open(partial, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(line + "\n")
        os.replace(partial, stamp)
        partial = None
    except OSError as exc:
        logger.warning("cannot write %s (the next start checks the database): %s", stamp, exc)
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)


def examine_database(path: Path, *, budget: float = QUICK_CHECK_SECONDS) -> Verdict:
    """``check_database``, and when a quick_check of the file last finished."""
    wal = _wal_has_frames(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if wal:
            raise DatabaseError(
                f"{path} is missing but its write-ahead log {path}-wal is there; move the "
                "-wal file away (or put the database back) and start convd again"
            ) from None
        return Verdict(True, time.time())
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path)
    if info.st_size == 0:
        if wal:
            # Opening it at all (even read-only) would let SQLite delete that WAL as stale,
            # and whatever it holds with it. SQLite never leaves this state by itself.
            raise DatabaseError(
                f"{path} is empty but its write-ahead log {path}-wal holds data; convd leaves "
                "both untouched. Move the -wal file away (or put the database back) and start "
                "convd again"
            )
        return Verdict(True, time.time())
    try:
        if info.st_size:
            _check_header(path, info.st_size, wal)
        return _check_contents(path, wal, budget, _clean_since(path, _identity(path)))
    except sqlite3.DatabaseError as exc:
        if _corrupt(exc):
            # "database disk image is malformed", "file is not a database"
            raise _damaged(path, str(exc)) from None
        raise DatabaseError(f"cannot read the database {path}: {exc}") from None
    except OSError as exc:
        raise DatabaseError(f"cannot read the database {path}: {exc.strerror or exc}") from None


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def check_replaceable(path: Path) -> None:
    """Raise DatabaseError, with the daemon's own refusal, if ``convd restore`` must not
    replace ``path``: it is not a regular file, or not convd's (not SQLite, another
    application_id, tables of another application), or it cannot be read to tell.

    The checks of ``examine_database`` that say what the file is, read-only as there, without
    the quick_check. A missing or empty file passes, and so does a damaged one or one of a
    newer schema: replacing those with a backup is what restore is for.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path)
    if info.st_size == 0:
        return
    wal = _wal_has_frames(path)
    try:
        _check_header(path, info.st_size, wal)
        with closing(_connect_read_only(path, wal)) as db:
            _identify(db, path)
    except DamagedDatabase:
        return
    except sqlite3.DatabaseError as exc:
        if _corrupt(exc):
            return
        detail = str(exc)
    except OSError as exc:
        detail = exc.strerror or str(exc)
    else:
        return
    raise DatabaseError(
        f"cannot read {path} to tell whether it is a convd database ({detail}); "
        "move it away and restore again"
    )


def _identity(path: Path) -> tuple[tuple[int, ...] | None, ...]:
    """What changes when anyone writes, replaces or truncates the database or its WAL."""
    found: list[tuple[int, ...] | None] = []
    for name in (str(path), f"{path}-wal"):
        try:
            info = os.stat(name)
        except OSError:
            found.append(None)
        else:
            found.append(
                (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            )
    return tuple(found)


class StartedCheck:
    """``examine_database(path)``, begun at once on a thread of its own.

    ``convd serve`` starts it before importing the rest of the daemon, and asks for the
    verdict once it holds the database's lock. A verdict reached before the lock counts only
    for the file it saw: if the database, its WAL or its stamp changed since the check began
    (another convd still writing, a restore, another start), or if the check refused the
    file, ``verdict`` examines it again, now under the lock, and that is the verdict.
    """

    def __init__(self, path: Path, *, budget: float = QUICK_CHECK_SECONDS) -> None:
        self._path = path
        self._budget = budget
        self._identity = self._files()
        self._verdict: Verdict | None = None
        self._thread = threading.Thread(target=self._run, name="convd-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._verdict = examine_database(self._path, budget=self._budget)
        except Exception:  # verdict() examines again, under the lock, and raises it there
            self._verdict = None

    def result(self) -> bool:
        """True if convd is to create the database; raises DatabaseError as check_database."""
        return self.verdict().create

    def verdict(self) -> Verdict:
        """The Verdict of examine_database; raises DatabaseError as it does."""
        self._thread.join()
        verdict = self._verdict
        if verdict is not None and self._files() == self._identity:
            return verdict
        return examine_database(self._path, budget=self._budget)

    def _files(self) -> tuple[object, ...]:
        # The stamp too: a verdict that leaned on a stamp another start has since removed
        # (and whose run may have seen SQLite fail) does not count.
        try:
            stamp = os.stat(_stamp_path(self._path))
        except OSError:
            stamped = None
        else:
            stamped = (stamp.st_dev, stamp.st_ino, stamp.st_size, stamp.st_mtime_ns)
        return (*_identity(self._path), stamped)
