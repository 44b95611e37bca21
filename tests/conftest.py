from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import DaemonProcess, short_tmpdir


@pytest.fixture
def anyio_backend() -> str:
    # jsonrpcserver and aiosqlite are asyncio-only.
    return "asyncio"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with short_tmpdir() as path:
        yield path


@pytest.fixture
def daemon(short_dir: Path) -> Iterator[DaemonProcess]:
    """A running ``convd`` on a private socket and database; stopped (and checked) after."""
    process = DaemonProcess(short_dir).start()
    try:
        yield process
    finally:
        if process.process is not None and process.process.poll() is None:
            code = process.stop()
            assert code == 0, f"convd exited with {code} on SIGTERM:\n{process.logs()}"
