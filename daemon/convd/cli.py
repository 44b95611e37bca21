"""The ``convd`` command: ``convd [serve]`` runs the daemon in the foreground, ``convd restore
FILE`` installs a backup while the daemon is stopped."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import anyio

from convd_schemas import __version__

from .app import run_daemon
from .config import Config, default_database_path
from .logs import configure_logging
from .store import SCHEMA_VERSION, DatabaseError, MaintenanceError, lock_database, restore_database
from .transport import ActivationError, AlreadyRunning, UnsafePath

__all__ = ["main"]

logger = logging.getLogger("convd")

_COMMANDS = ("serve", "restore")
# Startup failures the user can fix: one line naming the problem, exit status 1.
_EXPECTED = (AlreadyRunning, UnsafePath, DatabaseError, MaintenanceError, ActivationError)


def _add_options(parser: argparse.ArgumentParser, *, serve: bool, sub: bool) -> None:
    # On a subcommand, options default to SUPPRESS so that ones given before the command
    # (``convd --db X restore F``) are not reset by the subcommand's defaults.
    def default(value: object) -> object:
        return argparse.SUPPRESS if sub else value

    if serve:
        parser.add_argument(
            "--socket",
            type=Path,
            default=default(None),
            metavar="PATH",
            help="socket path (default: $CONVD_SOCKET, else $XDG_RUNTIME_DIR/convd/convd.sock); "
            "ignored when systemd passes the listening socket",
        )
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
    restore = commands.add_parser(
        "restore",
        help="replace the database with a backup (stop the daemon first)",
        description="Check FILE (a `daemon.backup` / `convctl backup` copy): its integrity and "
        "schema version. Then keep the current database beside it as "
        "<db>.replaced-<timestamp> and install a copy of FILE (mode 0600). Refuses while a "
        "convd is using the database: stop it first "
        "(systemctl --user stop convd.socket convd.service).",
    )
    restore.add_argument("file", type=Path, metavar="FILE", help="the backup to restore")
    _add_options(restore, serve=False, sub=True)
    return parser


def _root_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _backend_options() -> dict[str, bool]:
    # uvloop (the optional extra convd[fast]) when installed: a faster event loop under the
    # same asyncio API; convd runs the same without it.
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def _serve(args: argparse.Namespace) -> int:
    config = Config.resolve(args.socket, args.db, durability=args.durability)
    try:
        anyio.run(run_daemon, config, backend="asyncio", backend_options=_backend_options())
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:  # every exit path is logged, in the chosen format
        cause = _root_cause(exc)
        if isinstance(cause, KeyboardInterrupt):
            return 0
        if isinstance(cause, _EXPECTED):
            logger.error("cannot start: %s", cause)
        else:
            logger.critical("convd failed", exc_info=cause)
        return 1
    return 0


def _restore(args: argparse.Namespace) -> int:
    database: Path = args.db or default_database_path()
    try:
        with lock_database(database):
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
    return _serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
