"""Whole-database operations: the lock that keeps one daemon per database, an online backup
taken through SQLite's backup API, and the offline restore behind ``convd restore``.

Everything here is blocking; the daemon runs ``backup_database`` in a worker thread.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Final

# urllib.parse's quote is pathname2url on POSIX, without urllib.request's ~15 ms import.
from urllib.parse import quote as pathname2url

from ..domain import BackupFailed, BackupInfo
from ..lockfile import LockFile, LockHeld, Role
from .migrations import APPLICATION_ID, NEW_HISTORY_ID, SCHEMA_VERSION
from .opening import DatabaseError, check_replaceable

__all__ = [
    "DatabaseInUse",
    "MaintenanceError",
    "RestoreResult",
    "backup_database",
    "database_lock_path",
    "in_use_message",
    "lock_database",
    "make_database_dir",
    "restore_database",
]

logger = logging.getLogger(__name__)

_TABLES = frozenset({"account", "conversation", "change"})
#: The files SQLite keeps beside a database: they belong to it, and to no other file.
_SIDE_FILES = ("-wal", "-shm", "-journal")
#: What link() answers where the file system has no hard links (FAT, exFAT, SMB, some FUSE).
_NO_HARD_LINKS: Final = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS})


class MaintenanceError(Exception):
    """A restore cannot go ahead; the message says why and what to do."""


class DatabaseInUse(MaintenanceError):
    """Another convd holds the database's lock."""


def database_lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def make_database_dir(database: Path) -> None:
    """Create the database's directory (0700) if missing; a one-line error if that fails."""
    try:
        database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise MaintenanceError(
            f"cannot create the directory {database.parent} for the database {database}: "
            f"{exc.strerror or exc}"
        ) from None
    if not database.parent.is_dir():
        raise MaintenanceError(
            f"cannot create the directory {database.parent} for the database {database}: "
            "a file of that name is in the way"
        )


def in_use_message(database: Path, held: LockHeld) -> str:
    lock_path = database_lock_path(database)
    if held.holder is None:
        return (
            f"the database {database} is in use by a running convd (it holds {lock_path}); "
            "stop it first"
        )
    return (
        f"the database {database} is in use by a running {held.holder.describe()} (it holds "
        f"{lock_path}); {held.holder.stop_hint()}"
    )


@contextmanager
def lock_database(database: Path, role: Role = "foreground") -> Iterator[None]:
    """Hold ``<database>.lock`` (flock) while the block runs: one user of a database at a time.

    The running daemon holds it, so ``convd restore`` cannot swap the file under it, and two
    daemons on different sockets cannot share one database. The file names the holder's pid
    and role (for refusals and ``convd stop``) and is removed when the block exits.
    """
    make_database_dir(database)
    lock_path = database_lock_path(database)
    try:
        lock = LockFile.acquire(lock_path, role)
    except LockHeld as held:
        raise DatabaseInUse(in_use_message(database, held)) from None
    except OSError as exc:
        raise MaintenanceError(f"cannot open the lock file {lock_path}: {exc.strerror}") from None
    try:
        yield
    finally:
        lock.release()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: private_temp's files are ``.<stem>.<this many random bytes, in hex>.tmp``.
_TEMP_TOKEN_BYTES: Final = 4
_TEMP_SUFFIX: Final = ".tmp"


def private_temp(directory: Path, stem: str) -> Path:
    """A new, empty, 0600 file in ``directory`` (never an existing one); ``private_temps``
    finds it again."""
    import secrets  # only backups and restores need it: kept off the start-up path

    while True:
        path = directory / f".{stem}.{secrets.token_hex(_TEMP_TOKEN_BYTES)}{_TEMP_SUFFIX}"
        try:
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except FileExistsError:
            continue
        os.close(fd)
        return path


def private_temps(directory: Path, stem: str) -> list[Path]:
    """The files ``private_temp(directory, stem)`` made that are still there (those of a
    process that died before it renamed or removed them)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    prefix = f".{stem}."
    found = []
    for name in names:
        token = name[len(prefix) : -len(_TEMP_SUFFIX)]
        if (
            name.startswith(prefix)
            and name.endswith(_TEMP_SUFFIX)
            and len(token) == 2 * _TEMP_TOKEN_BYTES
            and all(digit in "0123456789abcdef" for digit in token)
        ):
            found.append(directory / name)
    return found


def _copy(source: sqlite3.Connection, target: Path) -> int:
    """Copy ``source`` into the file ``target`` as a standalone (rollback-journal) database;
    return its schema version."""
    with closing(sqlite3.connect(target, isolation_level=None)) as copy:
        # pages=-1: the whole database in one step, under one read transaction: a consistent
        # snapshot, while the daemon's writer goes on appending to its WAL.
        source.backup(copy, pages=-1)
        # The copy inherits WAL mode from the page it copied; make it one self-contained file.
        copy.execute("PRAGMA journal_mode = DELETE")
        version = int(copy.execute("PRAGMA user_version").fetchone()[0])
    fsync_file(target)
    return version


def _new_history(database: Path, version: int) -> None:
    # The restored history is not the one clients saw (seqs may repeat with other changes):
    # give it a new id so they reload instead of resuming. (Version 1 has no id yet; the
    # migration that adds it draws a fresh one.)
    if version >= 2:
        with closing(sqlite3.connect(database, isolation_level=None)) as copy:
            copy.execute(NEW_HISTORY_ID)
        fsync_file(database)


#: SQLite's result codes for a copy that failed on its own file, not on the database's: no
#: room, no permission, writes and syncs that failed.
_TARGET_FAILURES: Final = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_TOOBIG,
        sqlite3.SQLITE_IOERR_WRITE,
        sqlite3.SQLITE_IOERR_FSYNC,
        sqlite3.SQLITE_IOERR_DIR_FSYNC,
        sqlite3.SQLITE_IOERR_TRUNCATE,
    }
)


def failed_on_target(exc: sqlite3.Error) -> bool:
    """Whether a backup's SQLite error came from writing the copy rather than from reading
    the database (which then counts as a database error: the next start checks the file).
    Anything else, a read error above all, is the database's."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return False
    return code in _TARGET_FAILURES or (code & 0xFF) in _TARGET_FAILURES


def _errno_name(exc: OSError) -> str | None:
    return errno.errorcode.get(exc.errno) if exc.errno is not None else None


def _live_files(database: Path) -> set[str]:
    real = os.path.realpath(database)
    suffixes = (*_SIDE_FILES, ".lock", ".checked")
    return {real, *(real + suffix for suffix in suffixes)}


def _publish_new(temporary: Path, target: Path) -> None:
    """Move the finished copy ``temporary`` to ``target``, which must not exist: raises
    FileExistsError if it does (someone's file is never replaced)."""
    try:
        # link() fails if target appeared meanwhile.
        os.link(temporary, target)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
    else:
        temporary.unlink()
        return
    # No hard links on this file system: reserve the name with an exclusive create (which
    # fails if the name is taken), then rename the copy over that empty file of ours.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        reserved = os.fstat(fd)
    finally:
        os.close(fd)
    try:
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            current = os.lstat(target)
            if (current.st_dev, current.st_ino) == (reserved.st_dev, reserved.st_ino):
                os.unlink(target)  # still the empty file reserved above
        raise


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def backup_database(
    database: Path,
    target: Path,
    *,
    overwrite: bool = False,
    daemon_files: Mapping[Path, str] | None = None,
) -> BackupInfo:
    """Write a consistent copy of ``database`` (which may be in use) to ``target``, 0600.

    The copy is first written beside ``target`` under a temporary name, then moved into
    place, so ``target`` is never a half-written file. Without ``overwrite`` an existing file
    is never replaced; where the file system has no hard links, the name is taken by an
    empty file first, replaced by the copy at once. Raises BackupFailed.
    """
    real = os.path.realpath(target)
    if real in _live_files(database):
        raise BackupFailed(f"{target} is the live database; choose another path", str(target))
    for path, what in (daemon_files or {}).items():
        if real == os.path.realpath(path):
            # Replaced, the daemon would run on with nobody able to reach it.
            raise BackupFailed(f"{target} is {what}; choose another path", str(target))
    if _is_socket(target):
        # Some program's (maybe this daemon's) way in: replacing it would lock its clients out.
        raise BackupFailed(f"{target} is a socket; choose another path", str(target))
    if not overwrite and os.path.lexists(target):
        raise BackupFailed(
            f"{target} already exists; choose another path or pass overwrite", str(target), "EEXIST"
        )
    temporary: Path | None = None
    try:
        temporary = private_temp(target.parent, target.name)
        with closing(sqlite3.connect(database, isolation_level=None, timeout=5.0)) as source:
            source.execute("PRAGMA query_only = ON")
            version = _copy(source, temporary)
        if overwrite:
            os.replace(temporary, target)
        else:
            _publish_new(temporary, target)
        temporary = None
        _fsync_dir(target.parent)
        size = os.stat(target).st_size
    except FileExistsError:
        raise BackupFailed(
            f"{target} already exists; choose another path or pass overwrite", str(target), "EEXIST"
        ) from None
    except OSError as exc:
        raise BackupFailed(
            f"cannot write {target}: {exc.strerror}", str(target), _errno_name(exc)
        ) from None
    except sqlite3.Error as exc:
        # SQLite's own text stays in the log: clients get what happened, not internals.
        logger.exception("backup to %s failed", target)
        raise BackupFailed(
            "cannot copy the database (SQLite failed; the daemon's log has the details)",
            str(target),
            database_failed=not failed_on_target(exc),
        ) from None
    finally:
        if temporary is not None:
            with suppress(OSError):
                temporary.unlink()
    return BackupInfo(path=str(target), size_bytes=size, schema_version=version)


# -- restore ---------------------------------------------------------------------------------


class RestoreResult:
    __slots__ = ("replaced", "schema_version")

    def __init__(self, schema_version: int, replaced: Path | None) -> None:
        self.schema_version = schema_version
        #: Where the database that was there before now is (None: there was none).
        self.replaced = replaced


def _open_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{pathname2url(str(path.resolve()))}?mode=ro", uri=True)


def _check_backup(source: sqlite3.Connection, name: Path) -> int:
    """Check integrity and schema of a backup about to be restored; return its version."""
    problems = [row[0] for row in source.execute("PRAGMA integrity_check(5)")]
    if problems != ["ok"]:
        raise MaintenanceError(f"{name} is damaged: {'; '.join(problems)}")
    version = int(source.execute("PRAGMA user_version").fetchone()[0])
    application_id = int(source.execute("PRAGMA application_id").fetchone()[0])
    if application_id not in (0, APPLICATION_ID):
        raise MaintenanceError(f"{name} is not a convd database")
    tables = {
        row[0] for row in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if version == 0 or not tables >= _TABLES:
        raise MaintenanceError(f"{name} is not a convd database")
    if version > SCHEMA_VERSION:
        raise MaintenanceError(
            f"{name} has schema version {version}, newer than this convd understands "
            f"({SCHEMA_VERSION}); restore it with a newer convd"
        )
    return version


def _set_aside_name(database: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    candidate = database.with_name(f"{database.name}.replaced-{stamp}")
    counter = 1
    while any(os.path.lexists(f"{candidate}{s}") for s in ("", *_SIDE_FILES)):
        candidate = database.with_name(f"{database.name}.replaced-{stamp}-{counter}")
        counter += 1
    return candidate


def _checkpoint(database: Path) -> None:
    """Fold the WAL into the database file, so the file alone holds everything."""
    if os.path.getsize(database) == 0:
        return  # SQLite would delete a WAL beside an empty file: it is set aside with it
    try:
        with closing(sqlite3.connect(database, isolation_level=None, timeout=5.0)) as db:
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.Error as exc:
        # A damaged database is a reason to restore: keep its WAL beside it, untouched.
        logger.warning("cannot checkpoint %s (%s); its WAL is kept beside it", database, exc)
        return
    if busy:
        raise DatabaseInUse(f"the database {database} is busy; stop every convd using it")


def _move_side_files(database: Path, aside: Path) -> list[str]:
    """Rename the -wal, -shm and -journal files beside ``database`` to the same names beside
    ``aside``; the suffixes of those there were."""
    moved = []
    for suffix in _SIDE_FILES:
        with suppress(FileNotFoundError):
            os.rename(f"{database}{suffix}", f"{aside}{suffix}")
            moved.append(suffix)
    return moved


def restore_database(source: Path, database: Path) -> RestoreResult:
    """Install a copy of the backup ``source`` as ``database``, keeping the one it replaces.

    The caller holds ``lock_database(database)``, so no daemon is using it. Steps: check the
    backup (integrity, a convd schema no newer than this one) and that ``database`` is convd's
    (or damaged, or missing), as the daemon would; copy the backup beside the database (0600);
    checkpoint the current database; set it (and any -wal/-shm/-journal left) aside as
    ``<name>.replaced-<timestamp>``, or, with the database missing, whatever of those is left
    (logged); move the copy into place. At every step ``database`` is either the old or the
    new complete file.
    """
    if not source.is_file():
        raise MaintenanceError(f"{source} is not a file")
    if database.exists() and os.path.samefile(source, database):
        raise MaintenanceError(f"{source} is the database itself; nothing to restore")
    try:
        check_replaceable(database)
    except DatabaseError as exc:
        raise MaintenanceError(str(exc)) from None
    database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = private_temp(database.parent, database.name + ".restore")
    try:
        try:
            with closing(_open_read_only(source)) as backup:
                version = _check_backup(backup, source)
                _copy(backup, temporary)
            _new_history(temporary, version)
        except sqlite3.Error as exc:
            raise MaintenanceError(f"{source} cannot be read as a database: {exc}") from None
        replaced: Path | None = None
        if database.exists():
            _checkpoint(database)
            replaced = _set_aside_name(database)
            # A hard link, then an atomic rename over the database: never a moment without one.
            try:
                os.link(database, replaced)
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS | {errno.EXDEV}:
                    raise
                os.rename(database, replaced)  # no hard links on this file system
            _move_side_files(database, replaced)
        else:
            # Left without their database: never paired with the copy (SQLite would replay
            # another database's WAL onto it), and kept (a WAL may hold writes that are in
            # no other file).
            aside = _set_aside_name(database)
            for suffix in _move_side_files(database, aside):
                logger.warning(
                    "%s is missing but %s%s was there (it belongs to the missing database, "
                    "not to the backup): kept as %s%s",
                    database,
                    database,
                    suffix,
                    aside,
                    suffix,
                )
        os.rename(temporary, database)
        _fsync_dir(database.parent)
    finally:
        with suppress(FileNotFoundError):
            temporary.unlink()
    return RestoreResult(version, replaced)
