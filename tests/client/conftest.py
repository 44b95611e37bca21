"""Fixtures for the client library's tests: one daemon shared by the whole session (each test
logs in as its own user, so tests do not see each other's conversations), and the SDK faces'
singletons torn down after every test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from support import DaemonProcess, short_tmpdir

_users = itertools.count(1)


@pytest.fixture(scope="session")
def shared_daemon() -> Iterator[DaemonProcess]:
    """A running convd shared by the tests that do not restart it."""
    with short_tmpdir() as root:
        process = DaemonProcess(root).start()
        try:
            yield process
        finally:
            if process.process is not None and process.process.poll() is None:
                code = process.stop()
                assert code == 0, f"convd exited with {code} on SIGTERM:\n{process.logs()}"


@pytest.fixture
def user() -> str:
    """A user id no other test uses."""
    return f"user-{next(_users)}"


@pytest.fixture
def other_user() -> str:
    """A second user id no other test uses."""
    return f"user-{next(_users)}"
