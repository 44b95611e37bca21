"""The ``convd`` command: runs the daemon in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import anyio

from convd_schemas import __version__

from .app import run_daemon
from .config import Config
from .store import DatabaseError
from .transport import AlreadyRunning, UnsafePath

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convd",
        description="Serve IM conversations and drafts over JSON-RPC 2.0 on a Unix socket.",
    )
    parser.add_argument("--version", action="version", version=f"convd {__version__}")
    parser.add_argument(
        "--socket",
        type=Path,
        help="socket path (default: $CONVD_SOCKET, else $XDG_RUNTIME_DIR/convd/convd.sock)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        help="database path (default: $CONVD_DB, else $XDG_DATA_HOME/convd/convd.db)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log to stderr (default: info)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiosqlite logs every statement at DEBUG: far too much even for --log-level debug.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.root.level))
    config = Config.resolve(args.socket, args.db)
    try:
        anyio.run(run_daemon, config, backend="asyncio")
    except (AlreadyRunning, UnsafePath, DatabaseError) as exc:
        logging.getLogger("convd").error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
