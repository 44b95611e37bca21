"""A blocking client for code that is not async.

:class:`BlockingClient` runs an async :class:`~convd_client.Client` on an event loop in a
helper thread (anyio's blocking portal) and offers the same methods as plain functions.
Listeners run on a third thread, the client's callback thread, one at a time and in order,
so a listener may itself call the client's methods.

Usage::

    with BlockingClient() as client:
        client.login("alice")
        client.conv_set_draft("bob", TIMConvType.kTIMConv_C2C, "hello")
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import threading
import typing
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._loop import quiet_cancelled_read_race
from ._threads import CallbackThread, bounded_stop_wait
from .client import Client, ConnectionState, ConvEvent, GroupEvent, Resync
from .errors import ClientClosed

__all__ = ["BlockingClient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

#: Listener calls handed to the callback thread but not yet finished, at most.
_RELAY_WINDOW = 64
#: How long closing waits for the calls in flight to end (closing the connection fails them
#: at once: this bounds a call that ignores that; at exit, the exit's own bound applies).
_CALLS_END_TIMEOUT = 10.0


def _blocking(
    method: Callable[Concatenate[Client, P], Awaitable[R]],
) -> Callable[Concatenate[BlockingClient, P], R]:
    """The blocking form of a :class:`Client` coroutine: same parameters, same result.

    Derived rather than written out, so that BlockingClient cannot drift from Client.
    """
    name = method.__name__

    def wrapper(self: BlockingClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        bound: Callable[P, Awaitable[R]] = getattr(self._client, name)
        return self._run(partial(bound, *args, **kwargs))

    wrapper.__name__ = name
    wrapper.__qualname__ = f"BlockingClient.{name}"
    wrapper.__module__ = __name__
    wrapper.__doc__ = method.__doc__
    # Evaluated here, where Client's module resolves them (this module does not import every
    # name they use). An async def's declared return is what awaiting it gives: the
    # wrapper's own.
    wrapper.__annotations__ = typing.get_type_hints(method)
    wrapper.__signature__ = inspect.signature(method, eval_str=True)  # type: ignore[attr-defined]
    return wrapper


class BlockingClient:
    """The :class:`~convd_client.Client` API as blocking methods.

    Use it as ``with BlockingClient(...) as client`` (or call :meth:`open` and
    :meth:`close`). It takes the same arguments as :class:`~convd_client.Client`; each method
    blocks until the call's response (or its failure) and raises the same errors.

    Calls may be made from any thread except the client's own event-loop thread, including
    from listeners (which run on the callback thread).

    :param socket_path: the daemon's socket (default ``$CONVD_SOCKET``, else the default path)
    :param options: any keyword argument of :class:`~convd_client.Client`
    """

    def __init__(self, socket_path: str | os.PathLike[str] | None = None, **options: Any) -> None:
        self._client = Client(socket_path, **options)
        self._callbacks = CallbackThread("convd-callbacks")
        self._portal: BlockingPortal | None = None
        self._stack: ExitStack | None = None
        self._opened = False
        # The portal's loop while calls are taken (see _run), its thread, and the calls in
        # flight (their futures), which closing waits for before it stops the loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._calls: set[concurrent.futures.Future[Any]] = set()
        self._calls_changed = threading.Condition()
        # (kind, listener, relay) in the order added; listeners are matched with ``==`` as
        # Client matches them (a bound method is a new object on every attribute access).
        self._relays: list[
            tuple[str, Callable[[Any], object], Callable[[Any], Awaitable[None]]]
        ] = []
        # Bounds what the listeners' relays have handed to the callback thread (made on the
        # event loop, where it is used).
        self._window: anyio.Semaphore | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> Self:
        """Start the event loop and the callback thread, and connect.

        :raises DaemonUnavailable: the daemon cannot be reached (with ``require_connection``)
        """
        if self._stack is not None:
            raise RuntimeError("the BlockingClient is open already")
        if self._opened:
            # Its Client and callback thread live once, as a Client does.
            raise RuntimeError("a BlockingClient can be opened only once: make a new one")
        self._opened = True
        stack = ExitStack()
        try:
            # Closed in reverse: the client first (its calls fail and their callbacks are
            # posted), then the loop (once its tasks have finished), then the callback thread
            # (after running what was posted).
            self._callbacks.start()
            stack.callback(self._callbacks.stop)
            self._portal = stack.enter_context(
                start_blocking_portal(
                    backend="asyncio", backend_options=_loop_options(), name="convd-loop"
                )
            )
            # The portal's loop is the library's own: keep anyio's harmless cancelled-read
            # report (at close) off the application's stderr.
            self._portal.call(_quiet_loop)
            loop, self._loop_thread = self._portal.call(_loop_and_thread)
            # Closed before the loop stops, after the client: the calls in flight fail then.
            stack.callback(self._wait_for_calls, _CALLS_END_TIMEOUT)
            stack.enter_context(self._portal.wrap_async_context_manager(self._client))
        except BaseException:
            self._portal = None
            stack.close()
            raise
        self._stack = stack
        with self._calls_changed:
            self._loop = loop
        return self

    def close(self) -> None:
        """Close the connection, stop the loop, then run the callbacks still queued.

        A call in flight on another thread fails with ClientClosed; a call made after this
        began raises it at once.
        """
        stack, self._stack = self._stack, None
        with self._calls_changed:
            self._loop = None
        self._portal = None
        if stack is not None:
            stack.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _run(self, fn: Callable[[], Awaitable[T]]) -> T:
        # A call crosses to the loop and back: two wake-ups of one thread by another. The
        # portal's call (BlockingPortal.call) takes three: it first waits until the loop has
        # started the call's task in the portal's task group, then for the task. ~100 us of
        # a conv.set_draft round trip on a 2-vCPU VM (BlockingClient / raw socket client,
        # everysec: x1.46-1.68 -> x1.33-1.41). The call runs as a task of its own. It is
        # scheduled under the lock that close() takes to refuse new calls, so every call
        # close() does not refuse is on the loop before close() waits for the calls' tasks
        # to end (_wait_for_calls), which it does before the loop stops.
        with self._calls_changed:
            loop = self._loop
            if loop is None:
                raise ClientClosed("the BlockingClient is not open")
            if threading.get_ident() == self._loop_thread:
                raise RuntimeError("a BlockingClient cannot be called from its own event loop")
            call = _awaited(fn)
            try:
                future = asyncio.run_coroutine_threadsafe(call, loop)
            except RuntimeError as exc:  # the loop is closed
                call.close()
                raise ClientClosed("the BlockingClient was closed") from exc
            self._calls.add(future)
        future.add_done_callback(self._call_ended)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise ClientClosed("the BlockingClient was closed") from None
        except BaseException:
            future.cancel()  # the caller gave up (KeyboardInterrupt): so does the call
            raise

    def _call_ended(self, future: concurrent.futures.Future[Any]) -> None:
        with self._calls_changed:
            self._calls.discard(future)
            self._calls_changed.notify_all()

    def _wait_for_calls(self, timeout: float) -> None:
        # On the calls' tasks, not on the threads that made them: close() may run on one of
        # those threads (a signal handler's), whose call ends only after close() returns.
        timeout = bounded_stop_wait(timeout)
        with self._calls_changed:
            if not self._calls_changed.wait_for(lambda: not self._calls, timeout):
                logger.warning(
                    "%d BlockingClient call(s) still running %.1f s after close: the loop stops "
                    "under them",
                    len(self._calls),
                    timeout,
                )

    def submit(self, fn: Callable[[Client], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Start ``fn(async_client)`` on the event loop without waiting for it.

        Calls submitted from one thread are sent in the order submitted.

        :return: a future with the coroutine's result or exception
        :raises ClientClosed: the client is not open
        """
        portal = self._portal
        if portal is None:
            raise ClientClosed("the BlockingClient is not open")
        try:
            return portal.start_task_soon(fn, self._client)
        except RuntimeError as exc:
            raise ClientClosed("the BlockingClient was closed") from exc

    def post(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` on the callback thread, after the callbacks already queued.

        :return: False when the client is closed and ``fn`` will not run
        """
        return self._callbacks.post(fn, *args)

    @property
    def callback_thread_id(self) -> int | None:
        """Thread identifier of the callback thread (where listeners run)."""
        return self._callbacks.ident

    # -- state --------------------------------------------------------------------------------

    @property
    def socket_path(self) -> Path:
        """The socket path the client connects to."""
        return self._client.socket_path

    @property
    def state(self) -> ConnectionState:
        """The connection's current state."""
        return self._client.state

    @property
    def connected(self) -> bool:
        """True when calls go through."""
        return self._client.connected

    @property
    def user_id(self) -> str | None:
        """The user the client is logged in as."""
        return self._client.user_id

    @property
    def last_seq(self) -> int | None:
        """The seq of the last event queued for the listeners."""
        return self._client.last_seq

    @property
    def subscribed(self) -> bool:
        """True while events are wanted (from :meth:`subscribe` until :meth:`unsubscribe`)."""
        return self._client.subscribed

    @property
    def origin(self) -> str | None:
        """This client's connection id in the daemon, as events carry it in ``origin``."""
        return self._client.origin

    # -- listeners ----------------------------------------------------------------------------

    def _relay(
        self, kind: str, listener: Callable[[Any], object]
    ) -> Callable[[Any], Awaitable[None]]:
        async def relay(item: Any) -> None:
            # At most _RELAY_WINDOW items wait on the callback thread: beyond that the
            # client's dispatcher waits here, so a slow listener fills the client's bounded
            # event queue and its overflow path (drop the connection, resume later) applies.
            if self._window is None:
                self._window = anyio.Semaphore(_RELAY_WINDOW)
            window = self._window
            loop = asyncio.get_running_loop()
            await window.acquire()

            def run() -> None:
                try:
                    listener(item)
                finally:
                    with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                        loop.call_soon_threadsafe(window.release)

            if not self._callbacks.post(run):
                window.release()

        self._relays.append((kind, listener, relay))
        return relay

    def _unrelay(
        self, kind: str, listener: Callable[[Any], object]
    ) -> Callable[[Any], Awaitable[None]] | None:
        for index, (k, known, relay) in enumerate(self._relays):
            if k == kind and known == listener:
                del self._relays[index]
                return relay
        return None

    def add_event_listener(self, listener: Callable[[ConvEvent], object]) -> None:
        """Call ``listener(event)`` on the callback thread for every event, in seq order."""
        self._client.add_event_listener(self._relay("event", listener))

    def remove_event_listener(self, listener: Callable[[ConvEvent], object]) -> None:
        """Stop calling ``listener``."""
        relay = self._unrelay("event", listener)
        if relay is not None:
            self._client.remove_event_listener(relay)

    def add_group_event_listener(self, listener: Callable[[GroupEvent], object]) -> None:
        """Call ``listener(event)`` on the callback thread for every change of the
        conversation groups, in order with the conversation events."""
        self._client.add_group_event_listener(self._relay("group", listener))

    def remove_group_event_listener(self, listener: Callable[[GroupEvent], object]) -> None:
        """Stop calling ``listener``."""
        relay = self._unrelay("group", listener)
        if relay is not None:
            self._client.remove_group_event_listener(relay)

    def add_resync_listener(self, listener: Callable[[Resync], object]) -> None:
        """Call ``listener(resync)`` on the callback thread when the list had to be reloaded."""
        self._client.add_resync_listener(self._relay("resync", listener))

    def remove_resync_listener(self, listener: Callable[[Resync], object]) -> None:
        """Stop calling ``listener``."""
        relay = self._unrelay("resync", listener)
        if relay is not None:
            self._client.remove_resync_listener(relay)

    def add_state_listener(self, listener: Callable[[ConnectionState], object]) -> None:
        """Call ``listener(state)`` on the callback thread on every connection state change."""
        self._client.add_state_listener(self._relay("state", listener))

    def remove_state_listener(self, listener: Callable[[ConnectionState], object]) -> None:
        """Stop calling ``listener``."""
        relay = self._unrelay("state", listener)
        if relay is not None:
            self._client.remove_state_listener(relay)

    # -- methods: one blocking wrapper per coroutine of Client, derived from it ---------------

    wait_connected = _blocking(Client.wait_connected)
    login = _blocking(Client.login)
    logout = _blocking(Client.logout)
    conv_create = _blocking(Client.conv_create)
    conv_delete = _blocking(Client.conv_delete)
    conv_list = _blocking(Client.conv_list)
    conv_list_all = _blocking(Client.conv_list_all)
    conv_get = _blocking(Client.conv_get)
    conv_set_draft = _blocking(Client.conv_set_draft)
    conv_cancel_draft = _blocking(Client.conv_cancel_draft)
    conv_pin = _blocking(Client.conv_pin)
    conv_delete_many = _blocking(Client.conv_delete_many)
    conv_set_custom_data = _blocking(Client.conv_set_custom_data)
    conv_draft_history = _blocking(Client.conv_draft_history)
    conv_restore_draft = _blocking(Client.conv_restore_draft)
    conv_mark = _blocking(Client.conv_mark)
    conv_list_by_filter = _blocking(Client.conv_list_by_filter)
    conv_group_create = _blocking(Client.conv_group_create)
    conv_group_list = _blocking(Client.conv_group_list)
    conv_group_delete = _blocking(Client.conv_group_delete)
    conv_group_rename = _blocking(Client.conv_group_rename)
    conv_group_add = _blocking(Client.conv_group_add)
    conv_group_remove = _blocking(Client.conv_group_remove)
    subscribe = _blocking(Client.subscribe)
    unsubscribe = _blocking(Client.unsubscribe)
    daemon_status = _blocking(Client.daemon_status)
    daemon_backup = _blocking(Client.daemon_backup)
    discover = _blocking(Client.discover)
    call = _blocking(Client.call)


def _loop_options() -> dict[str, bool]:
    # Every call crosses to the portal's loop and back; uvloop (convd[fast]) makes the wake-up
    # of that loop cheaper. The calls behave the same on asyncio's loop.
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


async def _quiet_loop() -> None:
    quiet_cancelled_read_race()


async def _loop_and_thread() -> tuple[asyncio.AbstractEventLoop, int]:
    return asyncio.get_running_loop(), threading.get_ident()


async def _awaited(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()
