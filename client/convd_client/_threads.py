"""The dedicated thread that runs a client's callbacks (the SDK's "logic thread")."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["CallbackThread"]

logger = logging.getLogger("convd_client")

_STOP = object()


class CallbackThread:
    """Runs posted callables one at a time, in the order posted, on its own thread.

    A callable that raises is logged and does not stop the thread. After :meth:`stop`,
    what was already posted still runs; later posts are dropped.
    """

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def ident(self) -> int | None:
        """The thread's identifier (None before it starts)."""
        return self._thread.ident

    def is_current(self) -> bool:
        """True when called from this thread."""
        return threading.current_thread() is self._thread

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def post(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` on the thread, after what was posted before.

        :return: False when the thread is stopping and ``fn`` will not run
        """
        with self._lock:
            if self._stopped:
                return False
            self._queue.put((fn, args))
            return True

    def stop(self, timeout: float | None = 10.0) -> None:
        """Run what is queued, then end the thread; waits for it unless called from it."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._queue.put(_STOP)
        if not self.is_current() and self._thread.ident is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:
                logger.exception("a convd_client callback raised")
