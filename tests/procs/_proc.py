"""What the helper programs of tests/integration/test_sharing.py share.

Each helper is a separate OS process started as ``python tests/procs/<name>.py ...`` with
``$CONVD_SOCKET`` in its environment. It talks to the test over its standard streams:

* out: one JSON object per stdout line, each with a ``kind`` (``ready``, ``event``,
  ``result``, ...), written by :func:`emit` (thread-safe: SDK callbacks run on other threads);
* in: one JSON object per stdin line, each with a ``cmd``, read by :class:`Commands`.

A helper never outlives its test: :func:`start_watchdog` ends the process after
:data:`LIFETIME` seconds whatever it is doing, and a closed stdin (the test went away) ends
the command loop.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from typing import Any

__all__ = ["LIFETIME", "Commands", "Reply", "emit", "start_watchdog", "wait_until"]

#: Seconds after which a helper exits on its own (below the suite's 60 s per-test timeout).
LIFETIME = 50.0

_out_lock = threading.Lock()


def emit(kind: str, **fields: Any) -> None:
    """Write one JSON line ``{"kind": kind, ...fields}`` to stdout and flush it."""
    line = json.dumps({"kind": kind, **fields}) + "\n"
    with _out_lock:
        try:
            sys.stdout.write(line)
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            os._exit(0)  # the test is gone: nobody is listening any more


def start_watchdog(seconds: float = LIFETIME) -> None:
    """End the process (exit code 70) after ``seconds``, however stuck it is."""

    def expire() -> None:
        sys.stderr.write(f"{sys.argv[0]}: still running after {seconds} s, exiting\n")
        sys.stderr.flush()
        os._exit(70)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


class Commands:
    """The test's commands: one JSON object per stdin line, read on a helper thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name="commands", daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            if line.strip():
                self._queue.put(json.loads(line))
        self._queue.put(None)  # stdin closed

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next command; None once stdin is closed (or nothing came within ``timeout``)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def __iter__(self) -> Commands:
        return self

    def __next__(self) -> dict[str, Any]:
        command = self.get()
        if command is None or command.get("cmd") == "quit":
            raise StopIteration
        return command


def wait_until(at: float) -> None:
    """Sleep until the wall-clock time ``at`` (``time.time()``), spinning for the last 2 ms."""
    while True:
        left = at - time.time()
        if left <= 0:
            return
        if left > 0.002:
            time.sleep(left - 0.002)


class Reply:
    """Catches the one callback of an SDK call, from either face, on the SDK's logic thread.

    As a V2 callback it has ``onSuccess([value])``, ``onError(code, desc)`` and convd's
    ``onDraftConflict(code, desc, current)``; as a C ``TIMCommCallback`` it is callable as
    ``(code, desc, json_params, user_data)``. :meth:`wait` returns what arrived as a dict
    with ``code`` (0 for success) and ``desc``, plus ``value`` / ``current`` / ``json``.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()

    def onSuccess(self, value: Any = None) -> None:
        self._queue.put({"code": 0, "desc": "", "value": value})

    def onError(self, code: int, desc: str) -> None:
        self._queue.put({"code": code, "desc": desc})

    def onDraftConflict(self, code: int, desc: str, current: Any) -> None:
        self._queue.put({"code": code, "desc": desc, "current": current})

    def __call__(self, code: int, desc: str, json_params: str, user_data: Any) -> None:
        self._queue.put(
            {"code": code, "desc": desc, "json": json.loads(json_params) if json_params else None}
        )

    def wait(self, timeout: float = 20.0) -> dict[str, Any]:
        """The callback's outcome; ``code`` -1000 if none came within ``timeout``."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return {"code": -1000, "desc": f"no callback within {timeout} s"}
