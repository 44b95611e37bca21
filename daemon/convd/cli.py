"""The ``convd`` command: ``convd [serve]`` runs the daemon in the foreground, ``convd stop``
stops it, ``convd restore FILE`` installs a backup while it is stopped, and ``convd
install-units`` writes the systemd user units for this install."""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path

from convd_schemas import __version__
from convd_schemas.limits import (
    DEFAULT_DRAFT_HISTORY,
    DEFAULT_DRAFT_HISTORY_SECONDS,
    MAX_DRAFT_HISTORY,
)

from .defaults import DEFAULT_KEPT_CHANGES, DEFAULT_KEPT_SECONDS, default_database_path
from .lockfile import is_locked, read_holder
from .logs import configure_logging
from .store import StartedCheck

# The rest of the daemon (anyio, the event loop, the rpc, transport and store layers) is
# imported where a command needs it: ``serve`` first starts the database's check on a thread
# of its own, and the check runs while those imports go on (issue 10, section 3.1).

__all__ = ["main"]

logger = logging.getLogger("convd")

_COMMANDS = ("serve", "stop", "restore", "install-units")
#: Bounds of --keep-changes.
_KEEP_MIN, _KEEP_MAX = 100, 100_000_000
#: How long ``convd stop`` waits by default: the service's TimeoutStopSec.
_STOP_TIMEOUT = 30.0


def _expected() -> tuple[type[BaseException], ...]:
    """Startup failures the user can fix: one line naming the problem, exit status 1."""
    from .store import DatabaseError, MaintenanceError
    from .transport import ActivationError, AlreadyRunning, UnsafePath

    return (AlreadyRunning, UnsafePath, DatabaseError, MaintenanceError, ActivationError)


class _FallbackSocket:
    """Where the socket goes when XDG_RUNTIME_DIR is unset (convd_schemas.paths), worked out
    only when help is printed: argparse formats ``%(fallback)s`` with ``str()`` then, and the
    daemon's start-up does not pay for importing tempfile."""

    def __str__(self) -> str:
        import tempfile

        return str(Path(tempfile.gettempdir()) / f"convd-{os.getuid()}" / "convd.sock")


def _kept_changes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not _KEEP_MIN <= value <= _KEEP_MAX:
        raise argparse.ArgumentTypeError(f"must be from {_KEEP_MIN} to {_KEEP_MAX}, not {value}")
    return value


def _draft_history(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= MAX_DRAFT_HISTORY:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_DRAFT_HISTORY}, not {value}")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> int:
    """Seconds from ``90``, ``90s``, ``30m``, ``12h`` or ``7d``."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    try:
        value = int(number) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (a whole number with s, m, h or d)"
        ) from None
    if not 0 <= value <= 3650 * 86400:
        raise argparse.ArgumentTypeError(f"must be from 0 to 3650d, not {text}")
    return value


def _wait_seconds(text: str) -> float:
    """A finite number of seconds, 0 or more (``nan`` would never run out)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds, 0 or more, not {text}"
        )
    return value


def _add_options(parser: argparse.ArgumentParser, *, serve: bool, sub: bool) -> None:
    # On a subcommand, options default to SUPPRESS so that ones given before the command
    # (``convd --db X restore F``) are not reset by the subcommand's defaults.
    def default(value: object) -> object:
        return argparse.SUPPRESS if sub else value

    if serve:
        socket_option = parser.add_argument(
            "--socket",
            type=Path,
            default=default(None),
            metavar="PATH",
            help="socket path (default: $CONVD_SOCKET, else $XDG_RUNTIME_DIR/convd/convd.sock, "
            "or %(fallback)s when XDG_RUNTIME_DIR is unset); "
            "ignored when systemd passes the listening socket",
        )
        socket_option.fallback = _FallbackSocket()  # type: ignore[attr-defined]
        parser.add_argument(
            "--durability",
            default=default("full"),
            choices=["full", "everysec"],
            help="full (default): every write is fsynced before it is acknowledged and survives "
            "power loss; everysec: acknowledged writes survive a crash of convd (kill -9) and "
            "are fsynced at least once a second, so power loss may take the last second "
            "(like Redis's appendfsync everysec)",
        )
        parser.add_argument(
            "--event-loop",
            default=default("auto"),
            choices=["auto", "asyncio", "uvloop"],
            help="auto (default): uvloop when installed (pip install 'convd[fast]'), else "
            "asyncio's own loop",
        )
        parser.add_argument(
            "--same-cpu",
            action=argparse.BooleanOptionalAction,
            default=default(True),
            help="while writes queue up, keep the event loop and the SQLite writer on one "
            "CPU (the default, Linux), and make them SCHED_BATCH (unless given another "
            "policy) so that neither preempts the other: they take turns holding Python's GIL "
            "several times per write, and a turn across two CPUs costs a cross-CPU wake-up "
            "(with 8 writing processes on 2 vCPUs: about +26 %% writes/s, and SCHED_BATCH with "
            "a yield after each commit another +17 %%); --no-same-cpu lets the OS place them",
        )
        parser.add_argument(
            "--keep-changes",
            type=_kept_changes,
            default=default(DEFAULT_KEPT_CHANGES),
            metavar="N",
            help="changes kept per account, so that a subscriber that was away can resume "
            f"instead of reloading its list (90003) (default: {DEFAULT_KEPT_CHANGES}: about "
            "3.5 MB per account; from 100 to 100000000)",
        )
        parser.add_argument(
            "--keep-changes-for",
            type=_duration,
            default=default(DEFAULT_KEPT_SECONDS),
            metavar="DURATION",
            help="also keep every change younger than this (e.g. 7d, 12h, 30m, 0 for no age "
            "bound), up to 10 times --keep-changes (~35 MB per account by default): a "
            "subscriber away for less can always resume (default: 7d)",
        )
        parser.add_argument(
            "--draft-history",
            type=_draft_history,
            default=default(DEFAULT_DRAFT_HISTORY),
            metavar="N",
            help="earlier drafts kept per conversation, so that an overwritten draft can be "
            "restored (conv.draft_history / conv.restore_draft; 0 keeps none; at most "
            f"{MAX_DRAFT_HISTORY}) (default: {DEFAULT_DRAFT_HISTORY})",
        )
        parser.add_argument(
            "--draft-history-for",
            type=_duration,
            default=default(DEFAULT_DRAFT_HISTORY_SECONDS),
            metavar="DURATION",
            help="and none older than this (e.g. 30d, 12h, 0 for no age bound); both bounds "
            f"hold at once (default: {DEFAULT_DRAFT_HISTORY_SECONDS // 86400}d)",
        )
    parser.add_argument(
        "--db",
        type=Path,
        default=default(None),
        metavar="PATH",
        help="database path (default: $CONVD_DB, else $XDG_DATA_HOME/convd/convd.db)",
    )
    parser.add_argument(
        "--log-level",
        default=default("info"),
        choices=["debug", "info", "warning", "error"],
        help="how much to log to stderr (default: info)",
    )
    parser.add_argument(
        "--log-format",
        default=default("text"),
        choices=["text", "json"],
        help="text lines, or one JSON object per line: ts, level, logger, msg, exc (default: text)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convd",
        description="Serve IM conversations and drafts over JSON-RPC 2.0 on a Unix socket. "
        "Without a command, convd serves in the foreground (as `convd serve`).",
        epilog="Logs go to stderr. Under systemd, convd takes the socket it is passed "
        "(LISTEN_FDS) and reports readiness (NOTIFY_SOCKET).",
    )
    parser.add_argument("--version", action="version", version=f"convd {__version__}")
    _add_options(parser, serve=True, sub=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve in the foreground until SIGTERM or SIGINT (the default)",
        description="Serve in the foreground until SIGTERM or SIGINT.",
    )
    _add_options(serve, serve=True, sub=True)
    stop = commands.add_parser(
        "stop",
        help="stop the convd using the database, and wait until it has",
        description="Send SIGTERM to the convd that holds the database's lock (named in "
        "<db>.lock) and wait until it has closed the database. Exits 0 if no convd is "
        "running. A convd started by systemd is left to systemctl (stopping only the "
        "process would let its socket start it again).",
    )
    stop.add_argument(
        "--timeout",
        type=_wait_seconds,
        default=_STOP_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait (default: %(default)s)",
    )
    _add_options(stop, serve=False, sub=True)
    restore = commands.add_parser(
        "restore",
        help="replace the database with a backup (stop the daemon first)",
        description="Check FILE (a `daemon.backup` / `convctl backup` copy): its integrity and "
        "schema version. Then keep the current database beside it as "
        "<db>.replaced-<timestamp> and install a copy of FILE (mode 0600). Refuses while a "
        "convd is using the database: stop it first (`convd stop`; under systemd: "
        "systemctl --user stop convd.socket convd.service).",
    )
    restore.add_argument("file", type=Path, metavar="FILE", help="the backup to restore")
    _add_options(restore, serve=False, sub=True)
    units = commands.add_parser(
        "install-units",
        help="write the systemd user units (convd.socket, convd.service) for this convd",
        description="Write convd.socket and convd.service, with ExecStart naming this "
        "install's convd, into DIR (replacing them). Then: systemctl --user daemon-reload && "
        "systemctl --user enable --now convd.socket",
    )
    units.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to write them (default: $XDG_CONFIG_HOME/systemd/user, "
        "i.e. ~/.config/systemd/user)",
    )
    _add_options(units, serve=False, sub=True)
    return parser


def _root_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _backend_options(event_loop: str) -> dict[str, bool]:
    """uvloop (the optional extra convd[fast]) when asked for or, with "auto", when it is
    installed: a faster event loop under the same asyncio API. convd runs the same on
    asyncio's own loop."""
    if event_loop == "asyncio":
        return {}
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if event_loop == "uvloop":
            raise _Unavailable("uvloop is not installed: pip install 'convd[fast]'") from None
        return {}
    return {"use_uvloop": True}


class _Unavailable(Exception):
    """What the command line asked for is not installed."""


def _serve(args: argparse.Namespace) -> int:
    database: Path = args.db or default_database_path()
    try:
        # Begun before the imports below (msgspec and the wire contract, anyio, the daemon's
        # layers: ~90 ms), which it runs beside: see store.StartedCheck.
        check = StartedCheck(database)
        from .config import Config

        config = Config.resolve(
            args.socket,
            database,
            durability=args.durability,
            kept_changes=args.keep_changes,
            kept_seconds=args.keep_changes_for,
            draft_history=args.draft_history,
            draft_history_seconds=args.draft_history_for,
            same_cpu=args.same_cpu,
        )
        import anyio

        from .app import run_daemon

        anyio.run(
            run_daemon,
            config,
            check,
            backend="asyncio",
            backend_options=_backend_options(args.event_loop),
        )
        # The database is closed and the socket removed: all that is left is the interpreter's
        # teardown, whose garbage collections walk every object still alive (jsonschema, the
        # OpenRPC document, ...): 60-150 ms here, seconds on a loaded machine. The OS frees
        # the memory anyway; freezing the heap takes it out of those collections.
        gc.freeze()
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:  # every exit path is logged, in the chosen format
        cause = _root_cause(exc)
        if isinstance(cause, KeyboardInterrupt):
            return 0
        if isinstance(cause, (*_expected(), _Unavailable)):
            logger.error("cannot start: %s", cause)
        else:
            logger.critical("convd failed", exc_info=cause)
        return 1
    return 0


def _stop(args: argparse.Namespace) -> int:
    from .store.maintenance import database_lock_path

    database: Path = args.db or default_database_path()
    lock_path = database_lock_path(database)
    if not is_locked(lock_path):
        print(f"convd is not running (nothing holds {lock_path})")
        return 0
    holder = read_holder(lock_path)
    if holder is None:
        logger.error("cannot stop: a process holds %s but does not say which", lock_path)
        return 1
    if holder.role != "foreground":
        logger.error("cannot stop: %s uses %s; %s", holder.describe(), database, holder.stop_hint())
        return 1
    try:
        os.kill(holder.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it has just exited
    except PermissionError:
        logger.error("cannot stop: %s belongs to another user", holder.describe())
        return 1
    deadline = time.monotonic() + args.timeout
    while is_locked(lock_path):
        if time.monotonic() > deadline:
            logger.error(
                "cannot stop: %s did not stop within %g s (it finishes the requests in "
                "flight first)",
                holder.describe(),
                args.timeout,
            )
            return 1
        time.sleep(0.01)
    print(f"stopped {holder.describe()}")
    return 0


def _install_units(args: argparse.Namespace) -> int:
    # Imported here: sysconfig is slow to import and only this command needs it.
    from .units import convd_command, default_unit_dir, write_units

    directory: Path = args.dir or default_unit_dir()
    exec_start = convd_command()
    try:
        written = write_units(directory, exec_start)
    except OSError as exc:
        logger.error("cannot write the units into %s: %s", directory, exc.strerror or exc)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"ExecStart={exec_start} serve")
    print("now: systemctl --user daemon-reload && systemctl --user enable --now convd.socket")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from .store import SCHEMA_VERSION, MaintenanceError, lock_database, restore_database

    database: Path = args.db or default_database_path()
    try:
        with lock_database(database, "restore"):
            result = restore_database(args.file, database)
    except (MaintenanceError, OSError) as exc:
        logger.error("cannot restore: %s", exc)
        return 1
    print(f"restored {args.file} into {database} (schema version {result.schema_version})")
    if result.replaced is not None:
        print(f"the previous database is kept as {result.replaced}")
    if result.schema_version < SCHEMA_VERSION:
        print(f"convd will migrate it to schema version {SCHEMA_VERSION} when it starts")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(args.log_level, args.log_format)
    # Whatever convd creates (socket, lock files, database, backups) is for the user only.
    os.umask(0o077)
    if args.command == "restore":
        return _restore(args)
    if args.command == "stop":
        return _stop(args)
    if args.command == "install-units":
        return _install_units(args)
    return _serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
