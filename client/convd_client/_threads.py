"""The dedicated thread that runs a client's callbacks (the SDK's "logic thread"), and what
happens when a callback raises.

The thread is a daemon thread: it never keeps a process alive after its main thread ended.

A callback that raises is reported through :func:`report_callback_error`. By default that logs
the traceback (logger ``convd_client``, which prints it on stderr when logging is not
configured) and then interrupts the main thread as Ctrl-C would (SIGINT to the main thread,
so it gets ``KeyboardInterrupt`` unless the program handles SIGINT itself), once per callback
thread: a main thread waiting for something only that callback would have done is not stuck
forever. :func:`set_callback_error_handler` replaces that default (e.g. to log and carry on).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "CallbackErrorHandler",
    "CallbackThread",
    "bounded_stop_wait",
    "limit_stop_waits",
    "report_callback_error",
    "set_callback_error_handler",
]

logger = logging.getLogger("convd_client")

_STOP = object()

#: ``handler(exc)``: told about every exception a callback raised.
CallbackErrorHandler = Callable[[BaseException], object]

_handler: CallbackErrorHandler | None = None

#: When set (at exit), the longest :meth:`CallbackThread.stop` waits for its thread.
_stop_wait_limit: float | None = None


def limit_stop_waits(seconds: float | None) -> None:
    """From now on, :meth:`CallbackThread.stop` waits at most ``seconds`` (None: no limit).

    Used at exit, where a callback blocked forever must not hold the process up (and where
    Python 3.12+ no longer starts threads that could do the waiting instead).
    """
    global _stop_wait_limit
    _stop_wait_limit = seconds


def bounded_stop_wait(seconds: float) -> float:
    """``seconds``, or less once exit has limited how long stopping waits
    (:func:`limit_stop_waits`)."""
    limit = _stop_wait_limit
    return seconds if limit is None else min(seconds, limit)


def set_callback_error_handler(handler: CallbackErrorHandler | None) -> None:
    """Choose what happens when a callback (listener, SDK callback) raises.

    ``handler(exc)`` runs on the thread the callback ran on, instead of the default (log the
    traceback, then interrupt the main thread as Ctrl-C would, once per SDK instance). None
    restores the default. An exception the handler raises is logged.
    """
    global _handler
    _handler = handler


def report_callback_error(exc: BaseException, what: str = "a convd_client callback raised") -> None:
    """Report an exception a callback raised: the handler set, or the default (see module)."""
    handler = _handler
    if handler is not None:
        try:
            handler(exc)
        except BaseException:
            logger.exception("the convd_client callback error handler raised")
        return
    state = getattr(_states, "state", None)
    if state is None:
        state = _states.state = _ThreadState()
    interrupt = not state.interrupted and _can_interrupt_main()
    if interrupt:
        state.interrupted = True
        what += "; interrupting the main thread (see convd_client.set_callback_error_handler)"
    logger.error("%s", what, exc_info=exc)
    if interrupt:
        main = threading.main_thread()
        assert main.ident is not None
        # A real signal (not _thread.interrupt_main, which only sets a flag): it also wakes a
        # main thread blocked in a wait such as threading.Event.wait().
        signal.pthread_kill(main.ident, signal.SIGINT)


class _ThreadState:
    """Per thread: whether a callback error on it has interrupted the main thread already."""

    interrupted = False


_states = threading.local()


def _can_interrupt_main() -> bool:
    """True if the main thread runs and Python handles SIGINT there (not ignored, not the
    OS default, which would kill the process)."""
    main = threading.main_thread()
    if main is threading.current_thread() or not main.is_alive() or main.ident is None:
        return False
    return callable(signal.getsignal(signal.SIGINT))


class CallbackThread:
    """Runs posted callables one at a time, in the order posted, on its own (daemon) thread.

    A callable that raises is reported (:func:`report_callback_error`) and does not stop the
    thread. After :meth:`stop`, what was already posted still runs; later posts are dropped.
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
        limit = _stop_wait_limit
        if limit is not None:
            timeout = limit if timeout is None else min(timeout, limit)
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
            except BaseException as exc:  # SystemExit too: it must not end this thread silently
                report_callback_error(exc)
