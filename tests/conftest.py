from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import DaemonProcess, short_tmpdir

# Started with SIGINT ignored (`pytest &` in a script without job control, some CI runners),
# pytest would pass that on to every process it starts, and Python installs no
# KeyboardInterrupt handler where SIGINT is ignored: the tests that Ctrl-C a client would
# wait out their timeouts and fail. A handled signal is reset to the default at exec, so
# handling it here gives the children the usual Ctrl-C.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def anyio_backend() -> str:
    # jsonrpcserver and aiosqlite are asyncio-only.
    return "asyncio"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with short_tmpdir() as path:
        yield path


@pytest.fixture
def durability() -> str | None:
    """The ``daemon`` fixture's ``--durability`` (None: the daemon's default). A test whose
    point is durability parametrizes it, to run in each mode:
    ``@pytest.mark.parametrize("durability", ["full", "everysec"])``."""
    return None


@pytest.fixture
def daemon(short_dir: Path, durability: str | None) -> Iterator[DaemonProcess]:
    """A running ``convd`` on a private socket and database; stopped (and checked) after."""
    args = () if durability is None else ("--durability", durability)
    process = DaemonProcess(short_dir, *args).start()
    try:
        yield process
    finally:
        if process.process is not None and process.process.poll() is None:
            code = process.stop()
            assert code == 0, f"convd exited with {code} on SIGTERM:\n{process.logs()}"
