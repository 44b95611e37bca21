"""Keeping a connection to the daemon: connecting, the uid check, backoff and the state.

:class:`Supervisor` knows nothing about logins or events. It opens a byte stream with its
``connector`` (by default :class:`UnixConnector`: the Unix socket, refused unless the daemon
runs as this user), serves one :class:`~convd_client._connection.Connection` over it, runs the
``restore`` hook on it (log in again, resubscribe) before calls may use it, and reconnects
with exponential backoff when it ends. Tests pass a connector that returns in-memory streams.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from anyio.abc import ByteStream

from convd_schemas.peer import peer_credentials, raw_unix_socket

from ._connection import Connection, NotificationHandler
from ._unix_stream import connect_unix_stream
from .errors import ClientClosed, ConvdClientError, DaemonUnavailable

__all__ = ["ConnectionState", "Connector", "Supervisor", "UnixConnector"]

logger = logging.getLogger("convd_client")

#: Opens one byte stream to the daemon. It may raise OSError or TimeoutError (described in
#: DaemonUnavailable), or DaemonUnavailable itself (e.g. a server that must not be trusted).
Connector = Callable[[], Awaitable[ByteStream]]

# A connection that lived this long resets the reconnect backoff.
STABLE_AFTER = 2.0


class ConnectionState(enum.Enum):
    """Where the client's connection to the daemon stands."""

    #: Opening the socket.
    CONNECTING = "connecting"
    #: Connected; logging in again and resubscribing before calls go through.
    RESTORING = "restoring"
    #: Connected and ready: calls go through.
    CONNECTED = "connected"
    #: No connection; calls fail at once with DaemonUnavailable while it retries.
    DISCONNECTED = "disconnected"
    #: The client was closed.
    CLOSED = "closed"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no socket file there (is convd running?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (convd is not running; the socket file is stale)"
    if isinstance(exc, TimeoutError):
        return "timed out connecting"
    return str(exc) or type(exc).__name__


def _foreign_server(stream: ByteStream, expected_uid: int) -> str | None:
    """Why the server behind ``stream`` must not be trusted, or None if it runs as us."""
    raw = raw_unix_socket(stream)
    if raw is None:
        return "refusing to talk to it: cannot tell who serves the socket (not a Unix socket)"
    try:
        uid = peer_credentials(raw).uid
    except OSError as exc:
        return f"refusing to talk to it: cannot tell who serves the socket ({exc})"
    if uid != expected_uid:
        return (
            f"refusing to talk to it: the socket is served by uid {uid}, not by this user "
            f"(expected uid {expected_uid}); another user may have put it there"
        )
    return None


class UnixConnector:
    """The default connector: the daemon's Unix socket, served by ``expected_uid`` only."""

    def __init__(self, path: Path, expected_uid: int) -> None:
        self.path = path
        self.expected_uid = expected_uid

    async def __call__(self) -> ByteStream:
        stream = await connect_unix_stream(self.path)
        # Not a byte goes out before we know who serves the socket: a path in a shared
        # directory (the /tmp fallback) could have been squatted by another local user.
        problem = _foreign_server(stream, self.expected_uid)
        if problem is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            logger.error("refusing convd at %s: %s", self.path, problem)
            raise DaemonUnavailable(self.path, problem)
        return stream


class Supervisor:
    """Connects, serves one connection at a time, reconnects with backoff; owns the state.

    :param path: the daemon's socket (named in errors and logs)
    :param connector: opens a byte stream to the daemon
    :param restore: run on every new connection before it is used (log in again, resubscribe);
        a :class:`ConvdClientError` from it closes that connection
    :param on_notification: receives the daemon's notifications (from the reader task)
    :param on_state: told of every state change, in order
    :param on_lost: called after a connection ended, before the next is opened
    """

    def __init__(
        self,
        path: Path,
        connector: Connector,
        *,
        restore: Callable[[Connection], Awaitable[None]],
        on_notification: NotificationHandler,
        on_state: Callable[[ConnectionState], None],
        on_lost: Callable[[], None],
        reconnect: bool = True,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        connect_timeout: float = 5.0,
        max_line: int,
    ) -> None:
        self.path = path
        self._connector = connector
        self._restore = restore
        self._on_notification = on_notification
        self._on_state = on_state
        self._on_lost = on_lost
        self._reconnect = reconnect
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self._max_line = max_line
        # Waits between attempts (tests wrap it to see the backoff).
        self._sleep: Callable[[float], Awaitable[None]] = anyio.sleep

        self._state = ConnectionState.DISCONNECTED
        self._state_changed = anyio.Event()
        self.last_error = "not connected yet"
        self.closing = False
        # The connection calls go to: set once its session is restored.
        self.current: Connection | None = None
        # The connection being served (also while it is being restored).
        self._serving: Connection | None = None

    # -- state --------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection's current state."""
        return self._state

    def set_state(self, state: ConnectionState) -> None:
        """Change the state, waking its waiters and telling ``on_state``."""
        if state is self._state:
            return
        self._state = state
        changed, self._state_changed = self._state_changed, anyio.Event()
        changed.set()
        self._on_state(state)

    async def wait_settled(self, timeout: float | None) -> None:
        """Wait (at most ``timeout``) while a connection attempt or restore is under way."""
        with anyio.move_on_after(timeout):
            while self._state in (ConnectionState.CONNECTING, ConnectionState.RESTORING):
                await self._state_changed.wait()

    async def wait_connected(self, timeout: float | None) -> None:
        """Wait until CONNECTED.

        :raises TimeoutError: not within ``timeout`` seconds
        :raises ClientClosed: closed meanwhile
        """
        with anyio.fail_after(timeout):
            while self._state is not ConnectionState.CONNECTED:
                if self.closing:
                    raise ClientClosed("the client was closed")
                await self._state_changed.wait()

    async def usable(self, timeout: float) -> Connection:
        """The ready connection; waits for an attempt or restore under way, else fails.

        Returns without awaiting when connected, so concurrent calls keep their order.

        :raises DaemonUnavailable: no connection (the last error says why)
        :raises ClientClosed: the client was closed
        """
        if self.closing:
            raise ClientClosed("the client was closed")
        conn = self.current
        if conn is not None and not conn.closed:
            return conn
        # An attempt or a session restore takes a round trip or two: wait for its outcome
        # rather than fail a call that would succeed.
        await self.wait_settled(timeout)
        if self.closing:
            raise ClientClosed("the client was closed")
        conn = self.current
        if conn is not None and not conn.closed:
            return conn
        raise DaemonUnavailable(self.path, self.last_error)

    # -- control ------------------------------------------------------------------------------

    def drop(self) -> None:
        """Close the connection being served (also during its restore); reconnect follows."""
        if self._serving is not None:
            self._serving.close()

    def close(self) -> None:
        """Stop for good: the connection's pending calls fail with ClientClosed."""
        self.closing = True
        if self.current is not None:
            self.current.close(lambda: ClientClosed("the client was closed"))

    # -- running ------------------------------------------------------------------------------

    async def open(self) -> ByteStream:
        """Open one stream with the connector, within the connect timeout.

        :raises DaemonUnavailable: it failed (``last_error`` says why)
        """
        try:
            with anyio.fail_after(self.connect_timeout):
                return await self._connector()
        except DaemonUnavailable as exc:
            self.last_error = exc.reason
            raise
        except (OSError, TimeoutError) as exc:
            self.last_error = _describe(exc)
            raise DaemonUnavailable(self.path, self.last_error) from exc

    async def run(self, stream: ByteStream | None) -> None:
        """Serve ``stream`` (or connect first), then reconnect until closed or cancelled."""
        delay = self._backoff_initial
        while True:
            if stream is None:
                self.set_state(ConnectionState.CONNECTING)
                try:
                    stream = await self.open()
                except DaemonUnavailable:
                    self.set_state(ConnectionState.DISCONNECTED)
                    if not self._reconnect:
                        return
                    await self._sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, self._backoff_max)
                    continue
            started = anyio.current_time()
            await self._serve(stream)
            stream = None
            self.set_state(ConnectionState.DISCONNECTED)
            if not self._reconnect:
                return
            if anyio.current_time() - started >= STABLE_AFTER:
                # The first attempt after losing a good connection is immediate (the daemon
                # may only have dropped this connection); later ones back off.
                delay = self._backoff_initial
            else:
                # A connection that failed early (e.g. its session could not be restored)
                # must not turn into a busy loop of reconnects.
                await self._sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self._backoff_max)

    async def _serve(self, stream: ByteStream) -> None:
        conn = Connection(
            stream,
            on_notification=self._on_notification,
            socket_path=self.path,
            max_line=self._max_line,
        )
        self._serving = conn
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(conn.run)
                self.set_state(ConnectionState.RESTORING)
                try:
                    await self._restore(conn)
                except ConvdClientError as exc:
                    logger.warning("could not restore the session on %s: %s", self.path, exc)
                    conn.close()
                if not conn.closed:
                    self.current = conn
                    self.set_state(ConnectionState.CONNECTED)
                    logger.info("connected to convd at %s", self.path)
                await conn.wait_closed()
        finally:
            self.current = None
            self._serving = None
            self._on_lost()
        if not self.closing:
            self.last_error = "the connection was lost; reconnecting"
            logger.info("lost the connection to convd at %s", self.path)
