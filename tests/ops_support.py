"""Helpers for the operations tests: a fake systemd notify socket, the daemon with extra
environment, and running ``convd`` commands."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import DaemonProcess

__all__ = [
    "EnvDaemon",
    "NotifySocket",
    "convd_command",
    "json_log_lines",
    "private_dir",
    "run_convd",
    "wait_for",
]


def convd_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "convd", *map(str, args)]


def run_convd(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``convd ARGS`` to completion; stdout and stderr are captured as text."""
    return subprocess.run(
        convd_command(*args), capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


class EnvDaemon(DaemonProcess):
    """``DaemonProcess`` with extra (or removed: value None) environment variables."""

    def __init__(self, root: Path, *extra_args: str, env: dict[str, str | None]) -> None:
        super().__init__(root, *extra_args)
        self.extra_env = env

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        for name, value in self.extra_env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)


class NotifySocket:
    """A datagram socket standing in for systemd's ``NOTIFY_SOCKET``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        #: Every message received so far, as lists of ``KEY=VALUE`` fields.
        self.messages: list[list[str]] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def receive(self, timeout: float = 15.0) -> list[str]:
        self.sock.settimeout(timeout)
        fields = self.sock.recv(4096).decode().split("\n")
        self.messages.append(fields)
        return fields

    def expect(self, field: str, timeout: float = 15.0) -> list[str]:
        """Receive until a message holds ``field`` (``"READY=1"``); return that message."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {field} within {timeout} s; got {self.messages}")
            try:
                fields = self.receive(remaining)
            except TimeoutError:
                continue
            if field in fields:
                return fields


def json_log_lines(text: str) -> list[dict[str, Any]]:
    """Parse every line of a ``--log-format json`` log; fail on any line that is not JSON."""
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
