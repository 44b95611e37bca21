"""The async client: one typed coroutine per method, events, and automatic reconnection.

Usage::

    async with Client() as client:            # $CONVD_SOCKET or the default socket path
        await client.login("alice")
        client.add_event_listener(print)
        await client.subscribe()
        info = await client.conv_set_draft("bob", TIMConvType.kTIMConv_C2C, "hello")

Everything the client runs (the connection's reader and writer, the reconnect supervisor and
the event dispatcher) lives in a task group owned by the ``async with`` block.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import logging
import os
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import msgspec
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from convd_schemas import (
    ConvCancelDraftParams,
    ConvEventAdd,
    ConvEventDel,
    ConvEventParams,
    ConvEventUpdate,
    ConvGetParams,
    ConvInfo,
    ConvKey,
    ConvKeyParams,
    ConvListParams,
    ConvListResult,
    ConvPinParams,
    ConvSetDraftParams,
    ConvSubscribeParams,
    ConvSubscribeResult,
    ConvUnsubscribeParams,
    DaemonBackupParams,
    DaemonBackupResult,
    DaemonStatus,
    Draft,
    EmptyParams,
    EmptyResult,
    SessionLoginParams,
    SessionLoginResult,
    TIMConvEvent,
    TIMConvType,
)
from convd_schemas.limits import DEFAULT_PAGE_SIZE, MAX_GET_CONVS
from convd_schemas.paths import default_socket_path
from convd_schemas.peer import peer_credentials, raw_unix_socket

from ._connection import Connection
from ._framing import DEFAULT_MAX_LINE
from .drafts import text_draft
from .errors import (
    ClientClosed,
    ConvdClientError,
    ConvdError,
    DaemonUnavailable,
    ProtocolError,
    SeqTooOld,
    SubscriptionNotFound,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Client",
    "ConnectionState",
    "ConvEvent",
    "EventListener",
    "Resync",
    "ResyncListener",
    "StateListener",
    "connect",
]

logger = logging.getLogger("convd_client")

T = TypeVar("T")

#: Seconds a call waits for its response unless told otherwise.
DEFAULT_TIMEOUT = 10.0
#: Events waiting for the listeners; when the listeners fall this far behind, the client
#: drops the connection and resumes from the last queued event once reconnected.
_EVENT_QUEUE = 10_000
# A connection that lived this long resets the reconnect backoff.
_STABLE_AFTER = 2.0


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


@dataclass(frozen=True, slots=True)
class ConvEvent:
    """One committed change, as a ``conv.event`` notification delivered it.

    :param seq: the account's change sequence number (strictly increasing)
    :param event: Add, Del or Update
    :param conversations: the conversations as they are after the change (empty for Del)
    :param keys: the id and type of every conversation the event names
    :param conv_array: the event's ``conv_array`` exactly as sent (for Del only
        ``conv_id`` and ``conv_type``)
    :param origin: id of the daemon connection that made the change
    """

    seq: int
    event: TIMConvEvent
    conversations: tuple[ConvInfo, ...]
    keys: tuple[ConvKey, ...]
    conv_array: list[dict[str, Any]]
    origin: str


@dataclass(frozen=True, slots=True)
class Resync:
    """The events missed while disconnected could not be replayed; here is the whole list.

    Sent to resync listeners instead of the missed events when the daemon no longer keeps
    them (error 90003 on resume). ``conversations`` is the complete list after the gap;
    conversations deleted during the gap are simply absent from it. Events after ``seq``
    follow as usual (some may repeat what the list already shows: apply them as upserts).
    """

    seq: int
    conversations: list[ConvInfo]


@dataclass(frozen=True, slots=True)
class _StateChange:
    state: ConnectionState


#: Listener callables may be plain functions or coroutine functions.
EventListener = Callable[[ConvEvent], Awaitable[None] | None]
ResyncListener = Callable[[Resync], Awaitable[None] | None]
StateListener = Callable[[ConnectionState], Awaitable[None] | None]

_Item = ConvEvent | Resync | _StateChange

_CONV_INFO = msgspec.json.Decoder(ConvInfo)
_CONV_INFOS = msgspec.json.Decoder(list[ConvInfo])
_LIST_RESULT = msgspec.json.Decoder(ConvListResult)
_LOGIN_RESULT = msgspec.json.Decoder(SessionLoginResult)
_SUBSCRIBE_RESULT = msgspec.json.Decoder(ConvSubscribeResult)
_STATUS = msgspec.json.Decoder(DaemonStatus)
_BACKUP = msgspec.json.Decoder(DaemonBackupResult)
_EMPTY = msgspec.json.Decoder(EmptyResult)
_OBJECT = msgspec.json.Decoder(dict[str, Any])
_ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
_EVENT = msgspec.json.Decoder(ConvEventParams)


_EVENT_KINDS: dict[type[ConvEventParams], TIMConvEvent] = {
    ConvEventAdd: TIMConvEvent.kTIMConvEvent_Add,
    ConvEventDel: TIMConvEvent.kTIMConvEvent_Del,
    ConvEventUpdate: TIMConvEvent.kTIMConvEvent_Update,
}


def _conv_event(params: ConvEventParams) -> ConvEvent:
    if isinstance(params, ConvEventDel):
        keys = tuple(params.conv_array)
        conversations: tuple[ConvInfo, ...] = ()
    else:
        conversations = tuple(params.conv_array)
        keys = tuple(ConvKey(conv_id=c.conv_id, conv_type=c.conv_type) for c in conversations)
    return ConvEvent(
        seq=params.seq,
        event=_EVENT_KINDS[type(params)],
        conversations=conversations,
        keys=keys,
        conv_array=msgspec.to_builtins(params.conv_array),
        origin=params.origin,
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no socket file there (is convd running?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (convd is not running; the socket file is stale)"
    if isinstance(exc, TimeoutError):
        return "timed out connecting"
    return str(exc) or type(exc).__name__


def _foreign_server(stream: anyio.abc.SocketStream, expected_uid: int) -> str | None:
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


def _key(conv: ConvKey | tuple[str, int]) -> ConvKey:
    if isinstance(conv, ConvKey):
        return conv
    conv_id, conv_type = conv
    return ConvKey(conv_id=conv_id, conv_type=TIMConvType(conv_type))


class Client:
    """An async convd client with automatic reconnection.

    Use it as ``async with Client(...) as client``. Entering connects (and, with
    ``require_connection``, raises :class:`DaemonUnavailable` when nobody listens); leaving
    closes the connection and stops every task the client started.

    While connected, each call sends one request and waits at most ``timeout`` seconds for
    its response. While there is no connection, every call fails at once with
    :class:`DaemonUnavailable`; in the background the client reconnects with exponential
    backoff, logs in again as the last :meth:`login` did and, if events were subscribed,
    resubscribes with ``since_seq`` = the last event it queued, so no event is lost or
    repeated. When the daemon cannot replay that far (90003), the client subscribes afresh
    and sends a :class:`Resync` with the whole list to the resync listeners.

    :param socket_path: the daemon's socket; default ``$CONVD_SOCKET``, else the per-user
        default (``convd_schemas.paths.default_socket_path``)
    :param timeout: default per-call timeout in seconds (each method also takes ``timeout``)
    :param reconnect: reconnect after the connection is lost; when False the client stays
        disconnected and every call fails with DaemonUnavailable
    :param require_connection: when True, entering the client fails with DaemonUnavailable
        if the daemon cannot be reached; when False, it starts disconnected and keeps trying
    :param backoff_initial: first delay between reconnection attempts, in seconds
    :param backoff_max: longest delay between attempts
    :param connect_timeout: seconds one connection attempt may take
    :param max_line: longest response line accepted, in bytes
    :param event_queue: how many events may wait for the listeners; when they fall further
        behind, the client drops the connection and resumes once reconnected

    The client talks only to a daemon run by its own user: a socket served by anyone else
    is refused with :class:`DaemonUnavailable` before a byte is sent.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        reconnect: bool = True,
        require_connection: bool = True,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        connect_timeout: float = 5.0,
        max_line: int = DEFAULT_MAX_LINE,
        event_queue: int = _EVENT_QUEUE,
        _expected_uid: int | None = None,
    ) -> None:
        self._path = Path(socket_path) if socket_path is not None else default_socket_path()
        self._timeout = timeout
        self._reconnect = reconnect
        self._require_connection = require_connection
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_timeout = connect_timeout
        self._max_line = max_line
        if event_queue < 1:
            raise ValueError("event_queue must be at least 1")
        self._event_queue = event_queue
        # Whose daemon to trust: this process's user (overridable only by tests).
        self._expected_uid = os.getuid() if _expected_uid is None else _expected_uid

        self._tg: TaskGroup | None = None
        self._closing = False
        self._conn: Connection | None = None
        self._serving: Connection | None = None
        self._state = ConnectionState.DISCONNECTED
        self._state_changed = anyio.Event()
        self._last_error = "not connected yet"

        # The session the client restores after a reconnect.
        self._login: SessionLoginParams | None = None
        self._account: tuple[int, str] | None = None
        # Events: wanted across reconnects and logins until unsubscribe().
        self._want_events = False
        # Serialises subscribe(), unsubscribe() and login()'s subscribing.
        self._subscribe_lock = anyio.Lock()
        self._accepting = False
        self._subscription: int | None = None
        self._origin: str | None = None
        # The daemon's change history that _last_seq belongs to (sent back when resuming).
        self._history: str | None = None
        self._last_seq: int | None = None
        self._need_resync = False
        self._hold: list[ConvEvent] | None = None
        self._hold_last: int | None = None
        self._overflowed = False

        self._event_listeners: list[EventListener] = []
        self._resync_listeners: list[ResyncListener] = []
        self._state_listeners: list[StateListener] = []
        # Created on entering, so that a client never entered leaves nothing open.
        self._queue_send: MemoryObjectSendStream[_Item] | None = None
        self._queue_receive: MemoryObjectReceiveStream[_Item] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._tg is not None or self._closing:
            raise RuntimeError("a Client can be entered only once")
        stream: anyio.abc.SocketStream | None = None
        if self._require_connection:
            stream = await self._open_stream()  # raises DaemonUnavailable
        send, receive = anyio.create_memory_object_stream[_Item](self._event_queue)
        self._queue_send, self._queue_receive = send, receive
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        try:
            tg.start_soon(self._dispatch_items, receive)
            if stream is not None:
                self._set_state(ConnectionState.RESTORING)
            else:
                self._set_state(ConnectionState.CONNECTING)
            tg.start_soon(self._supervise, stream)
            if stream is not None:
                # Connected already: return once the connection is set up, so that
                # `connected` holds inside the block.
                with anyio.move_on_after(self._connect_timeout):
                    while self._state in (ConnectionState.CONNECTING, ConnectionState.RESTORING):
                        await self._state_changed.wait()
        except BaseException as exc:
            # Not entered after all: stop what was started before letting the error out.
            with anyio.CancelScope(shield=True):
                await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closing = True
        if self._conn is not None:
            self._conn.close(lambda: ClientClosed("the client was closed"))
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            # The body's own exception is not handed to the task group: it propagates as
            # it is, not wrapped in an ExceptionGroup (the client's tasks only stop here).
            await self._tg.__aexit__(None, None, None)
            return None
        finally:
            self._set_state(ConnectionState.CLOSED)
            if self._queue_send is not None and self._queue_receive is not None:
                self._queue_send.close()
                self._queue_receive.close()

    # -- state --------------------------------------------------------------------------------

    @property
    def socket_path(self) -> Path:
        """The socket path the client connects to."""
        return self._path

    @property
    def state(self) -> ConnectionState:
        """The connection's current state."""
        return self._state

    @property
    def connected(self) -> bool:
        """True when calls go through (state CONNECTED)."""
        return self._state is ConnectionState.CONNECTED

    @property
    def user_id(self) -> str | None:
        """The user the client is logged in as (and logs in as again after reconnecting)."""
        return None if self._login is None else self._login.user_id

    @property
    def subscribed(self) -> bool:
        """True while events are wanted (from :meth:`subscribe` until :meth:`unsubscribe`)."""
        return self._want_events

    @property
    def origin(self) -> str | None:
        """This connection's id in the daemon, as events carry it in ``origin``: events whose
        ``origin`` equals it are the echo of this client's own changes. Known once subscribed;
        it changes with every reconnect."""
        return self._origin

    @property
    def last_seq(self) -> int | None:
        """The seq of the last event queued for the listeners (the resume point)."""
        return self._last_seq

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the client is connected and its session restored.

        :raises TimeoutError: not connected within ``timeout`` seconds
        :raises ClientClosed: the client was closed
        """
        with anyio.fail_after(timeout):
            while self._state is not ConnectionState.CONNECTED:
                if self._closing:
                    raise ClientClosed("the client was closed")
                await self._state_changed.wait()

    # -- listeners ----------------------------------------------------------------------------

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every :class:`ConvEvent`, in seq order.

        Listeners run one at a time in the client's dispatcher task (never inside the reader,
        so a slow listener does not stall responses); they may be coroutine functions. An
        exception from a listener is logged and otherwise ignored.
        """
        self._event_listeners.append(listener)

    def remove_event_listener(self, listener: EventListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._event_listeners:
            self._event_listeners.remove(listener)

    def add_resync_listener(self, listener: ResyncListener) -> None:
        """Call ``listener(resync)`` when missed events had to be replaced by the whole list."""
        self._resync_listeners.append(listener)

    def remove_resync_listener(self, listener: ResyncListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._resync_listeners:
            self._resync_listeners.remove(listener)

    def add_state_listener(self, listener: StateListener) -> None:
        """Call ``listener(state)`` on every change of :attr:`state`, in order with events."""
        self._state_listeners.append(listener)

    def remove_state_listener(self, listener: StateListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._state_listeners:
            self._state_listeners.remove(listener)

    # -- session ------------------------------------------------------------------------------

    async def login(
        self, user_id: str, sdk_app_id: int = 0, *, timeout: float | None = None
    ) -> SessionLoginResult:
        """Log in as ``user_id`` (``session.login``); the client logs in again after reconnects.

        Logging in as another account ends the old account's subscription; if events are
        wanted (:meth:`subscribe`), the client subscribes for the new account at once.

        :raises InvalidIdentifier: ``user_id`` is not a valid user id (7003)
        """
        params = SessionLoginParams(user_id=user_id, sdk_app_id=sdk_app_id)
        limit = self._limit(timeout)
        conn = await self._usable(limit)
        result = await self._call_on(conn, "session.login", params, _LOGIN_RESULT, limit)
        account = (result.sdk_app_id, result.user_id)
        if account != self._account:
            self._reset_events()
        self._login = params
        self._account = account
        if self._want_events and self._subscription is None:
            async with self._subscribe_lock:
                if self._want_events and self._subscription is None:
                    await self._subscribe_fresh(conn, limit)
        return result

    async def logout(self, *, timeout: float | None = None) -> None:
        """Log out (``session.logout``); ends the subscription. Never fails for lack of a
        connection: a session ends with its connection anyway."""
        self._login = None
        self._account = None
        self._reset_events()
        conn = self._conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(DaemonUnavailable):
            await self._call_on(conn, "session.logout", EmptyParams(), _EMPTY, self._limit(timeout))

    # -- conversations ------------------------------------------------------------------------

    async def conv_create(
        self, conv_id: str, conv_type: TIMConvType, *, timeout: float | None = None
    ) -> ConvInfo:
        """Create a conversation, or get the existing one unchanged (``conv.create``)."""
        params = ConvKeyParams(conv_id=conv_id, conv_type=conv_type)
        return await self._request("conv.create", params, _CONV_INFO, timeout)

    async def conv_delete(
        self, conv_id: str, conv_type: TIMConvType, *, timeout: float | None = None
    ) -> None:
        """Delete a conversation and its draft (``conv.delete``).

        :raises ConversationNotFound: no such conversation (6004)
        """
        params = ConvKeyParams(conv_id=conv_id, conv_type=conv_type)
        await self._request("conv.delete", params, _EMPTY, timeout)

    async def conv_list(
        self,
        next_seq: int = 0,
        count: int = DEFAULT_PAGE_SIZE,
        *,
        timeout: float | None = None,
    ) -> ConvListResult:
        """One page of the list, pinned first, then most recently activated (``conv.list``).

        :param next_seq: 0 for the first page, then the previous page's
            ``conversation_list_result_next_seq``
        :param count: page size, 1..1000
        """
        params = ConvListParams(next_seq=next_seq, count=count)
        return await self._request("conv.list", params, _LIST_RESULT, timeout)

    async def conv_list_all(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: float | None = None
    ) -> list[ConvInfo]:
        """The whole list, paging through ``conv.list`` (a conversation appears once)."""
        limit = self._limit(timeout)
        conn = await self._usable(limit)
        return await self._list_all_on(conn, page_size, limit)

    async def conv_get(
        self,
        convs: Iterable[ConvKey | tuple[str, int]],
        *,
        timeout: float | None = None,
    ) -> list[ConvInfo]:
        """The named conversations that exist, in the order asked (``conv.get``).

        Any number of keys may be given: they are sent 100 per request.
        """
        keys = [_key(conv) for conv in convs]
        found: list[ConvInfo] = []
        for start in range(0, len(keys), MAX_GET_CONVS):
            params = ConvGetParams(convs=keys[start : start + MAX_GET_CONVS])
            page = await self._request("conv.get", params, _CONV_INFOS, timeout)
            found.extend(page)
        return found

    async def conv_set_draft(
        self,
        conv_id: str,
        conv_type: TIMConvType,
        draft: Draft | str,
        *,
        if_revision: int | None = None,
        timeout: float | None = None,
    ) -> ConvInfo:
        """Set a conversation's draft, creating the conversation if needed (``conv.set_draft``).

        :param draft: a Draft, or a text (stored as V2 stores it, see :func:`text_draft`);
            an empty draft clears
        :param if_revision: write only if the stored ``conv_draft_revision`` still equals this
        :return: the conversation after the change, with its new ``conv_draft_revision``
        :raises RevisionConflict: the revision differs; ``current`` holds the stored state
        """
        params = ConvSetDraftParams(
            conv_id=conv_id,
            conv_type=conv_type,
            draft=text_draft(draft) if isinstance(draft, str) else draft,
            if_revision=msgspec.UNSET if if_revision is None else if_revision,
        )
        return await self._request("conv.set_draft", params, _CONV_INFO, timeout)

    async def conv_cancel_draft(
        self,
        conv_id: str,
        conv_type: TIMConvType,
        *,
        if_revision: int | None = None,
        timeout: float | None = None,
    ) -> ConvInfo:
        """Clear a conversation's draft (``conv.cancel_draft``).

        :param if_revision: clear only if the stored ``conv_draft_revision`` still equals this
        :raises ConversationNotFound: no such conversation (6004)
        :raises RevisionConflict: the revision differs
        """
        params = ConvCancelDraftParams(
            conv_id=conv_id,
            conv_type=conv_type,
            if_revision=msgspec.UNSET if if_revision is None else if_revision,
        )
        return await self._request("conv.cancel_draft", params, _CONV_INFO, timeout)

    async def conv_pin(
        self,
        conv_id: str,
        conv_type: TIMConvType,
        is_pinned: bool = True,
        *,
        timeout: float | None = None,
    ) -> None:
        """Pin or unpin a conversation (``conv.pin``).

        :raises PinLimitExceeded: 50 are pinned already (90002)
        """
        params = ConvPinParams(conv_id=conv_id, conv_type=conv_type, is_pinned=is_pinned)
        await self._request("conv.pin", params, _EMPTY, timeout)

    # -- events -------------------------------------------------------------------------------

    async def subscribe(
        self,
        since_seq: int | None = None,
        *,
        history: str | None = None,
        timeout: float | None = None,
    ) -> ConvSubscribeResult:
        """Deliver the account's events to the event listeners, until :meth:`unsubscribe`.

        The subscription is kept across reconnects (resumed from :attr:`last_seq`) and
        logins (a new account is subscribed afresh). Subscribing again without
        ``since_seq`` while subscribed changes nothing.

        :param since_seq: first replay every change after this seq
        :param history: the ``history`` of the subscription ``since_seq`` came from (by
            default the last one this client saw); the daemon refuses the resume (90003)
            when its database has a different history since, instead of skipping changes
        :raises SeqTooOld: ``since_seq`` can no longer be replayed (90003)
        """
        async with self._subscribe_lock:
            return await self._subscribe(since_seq, history, self._limit(timeout))

    async def _subscribe(
        self, since_seq: int | None, history: str | None, limit: float
    ) -> ConvSubscribeResult:
        conn = await self._usable(limit)
        if self._subscription is not None:
            if since_seq is None:
                return ConvSubscribeResult(
                    subscription=self._subscription,
                    seq=self._last_seq or 0,
                    origin=self._origin or "",
                    history=self._history or "",
                )
            await self._unsubscribe_on(conn, limit)
        if since_seq is None:
            result = await self._subscribe_fresh(conn, limit)
        else:
            if history is not None:
                self._history = history
            result = await self._subscribe_resume(conn, since_seq, limit)
        self._want_events = True
        return result

    async def unsubscribe(self, *, timeout: float | None = None) -> None:
        """Stop delivering events (``conv.unsubscribe``)."""
        async with self._subscribe_lock:
            self._want_events = False
            conn = self._conn
            if conn is not None and not conn.closed and self._subscription is not None:
                with contextlib.suppress(DaemonUnavailable):
                    await self._unsubscribe_on(conn, self._limit(timeout))
            self._reset_events()

    # -- daemon -------------------------------------------------------------------------------

    async def daemon_status(self, *, timeout: float | None = None) -> DaemonStatus:
        """The daemon's version, pid, uptime, connections, paths and size (``daemon.status``)."""
        return await self._request("daemon.status", EmptyParams(), _STATUS, timeout)

    async def daemon_backup(
        self, path: str | os.PathLike[str], *, overwrite: bool = False, timeout: float | None = None
    ) -> DaemonBackupResult:
        """Have the daemon write a consistent copy of its database to ``path`` (``daemon.backup``).

        :param path: where the daemon writes it; made absolute against this process's working
            directory (the daemon does not know it)
        :param overwrite: replace an existing file
        :raises BackupFailed: the file was not written (90005); ``data`` has ``path`` and
            ``errno``
        """
        params = DaemonBackupParams(path=os.path.abspath(path), overwrite=overwrite)
        return await self._request("daemon.backup", params, _BACKUP, timeout)

    async def discover(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The daemon's OpenRPC document (``rpc.discover``)."""
        return await self._request("rpc.discover", EmptyParams(), _OBJECT, timeout)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Call any method with params by name and return its result as plain JSON values.

        Raw: it does not update the client's own session state (a ``session.login`` made
        this way is not restored after a reconnect; use :meth:`login`).
        """
        return await self._request(method, params, _ANY, timeout)

    # -- calls --------------------------------------------------------------------------------

    def _limit(self, timeout: float | None) -> float:
        return self._timeout if timeout is None else timeout

    async def _request(
        self, method: str, params: Any, decoder: msgspec.json.Decoder[T], timeout: float | None
    ) -> T:
        limit = self._limit(timeout)
        conn = await self._usable(limit)
        return await self._call_on(conn, method, params, decoder, limit)

    async def _usable(self, timeout: float) -> Connection:
        # Returns without awaiting when connected, so concurrent calls keep their order.
        if self._closing:
            raise ClientClosed("the client was closed")
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._tg is None:
            raise RuntimeError("use the Client inside `async with`")
        # A connection attempt or session restore is under way: it takes a round trip or
        # two, so wait for its outcome rather than fail a call that would succeed.
        with anyio.move_on_after(timeout):
            while self._state in (ConnectionState.CONNECTING, ConnectionState.RESTORING):
                await self._state_changed.wait()
        if self._closing:
            raise ClientClosed("the client was closed")
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        raise DaemonUnavailable(self._path, self._last_error)

    async def _call_on(
        self,
        conn: Connection,
        method: str,
        params: Any,
        decoder: msgspec.json.Decoder[T],
        timeout: float,
    ) -> T:
        raw = await conn.call(method, params, timeout=timeout)
        try:
            return decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"{method}: unexpected result from convd: {exc}") from exc

    async def _list_all_on(
        self, conn: Connection, page_size: int, timeout: float
    ) -> list[ConvInfo]:
        found: dict[tuple[str, int], ConvInfo] = {}
        next_seq = 0
        while True:
            params = ConvListParams(next_seq=next_seq, count=page_size)
            page = await self._call_on(conn, "conv.list", params, _LIST_RESULT, timeout)
            for conv in page.conversation_list_result_conv_list:
                found.setdefault((conv.conv_id, int(conv.conv_type)), conv)
            if page.conversation_list_result_is_finished:
                return list(found.values())
            next_seq = page.conversation_list_result_next_seq

    # -- subscriptions ------------------------------------------------------------------------

    def _reset_events(self) -> None:
        self._accepting = False
        self._subscription = None
        self._last_seq = None
        self._need_resync = False
        self._hold = None
        self._hold_last = None

    async def _subscribe_fresh(self, conn: Connection, timeout: float) -> ConvSubscribeResult:
        # Events may arrive before the response (the daemon registers the subscription
        # first): accept them from now on, and start the resume point at the reply's seq.
        self._last_seq = None
        self._accepting = True
        try:
            result = await self._call_on(
                conn, "conv.subscribe", ConvSubscribeParams(), _SUBSCRIBE_RESULT, timeout
            )
        except BaseException:
            self._accepting = self._subscription is not None
            raise
        self._subscription = result.subscription
        self._origin = result.origin
        self._history = result.history
        self._last_seq = max(self._last_seq or 0, result.seq)
        return result

    async def _subscribe_resume(
        self, conn: Connection, since_seq: int, timeout: float
    ) -> ConvSubscribeResult:
        previous = self._last_seq
        self._last_seq = since_seq
        self._accepting = True
        try:
            result = await self._call_on(
                conn,
                "conv.subscribe",
                ConvSubscribeParams(
                    since_seq=since_seq,
                    history=msgspec.UNSET if self._history is None else self._history,
                ),
                _SUBSCRIBE_RESULT,
                timeout,
            )
        except BaseException:
            self._accepting = False
            if self._last_seq == since_seq:
                # Nothing was queued from this subscription; events that were stay delivered
                # (rolling back would replay them on the next resume).
                self._last_seq = previous
            raise
        self._subscription = result.subscription
        self._origin = result.origin
        self._history = result.history
        return result

    async def _unsubscribe_on(self, conn: Connection, timeout: float) -> None:
        subscription, self._subscription = self._subscription, None
        self._accepting = False
        if subscription is None:
            return
        with contextlib.suppress(SubscriptionNotFound):
            await self._call_on(
                conn,
                "conv.unsubscribe",
                ConvUnsubscribeParams(subscription=subscription),
                _EMPTY,
                timeout,
            )

    async def _resync(self, conn: Connection) -> None:
        """Subscribe afresh, load the whole list, send it as a Resync, then the held events."""
        self._need_resync = True
        self._hold = []
        self._hold_last = None
        self._accepting = True
        result = await self._call_on(
            conn, "conv.subscribe", ConvSubscribeParams(), _SUBSCRIBE_RESULT, self._timeout
        )
        self._subscription = result.subscription
        self._origin = result.origin
        self._history = result.history
        conversations = await self._list_all_on(conn, DEFAULT_PAGE_SIZE, self._timeout)
        held, self._hold = self._hold, None
        self._hold_last = None
        if not self._emit(Resync(seq=result.seq, conversations=conversations)):
            self._drop_connection()
            return
        self._need_resync = False
        self._last_seq = result.seq
        for event in held:
            self._queue_event(event)

    # -- incoming events ----------------------------------------------------------------------

    def _on_notification(self, method: str, params: msgspec.Raw) -> None:
        if method != "conv.event":
            logger.debug("ignoring the %s notification", method)
            return
        if not self._accepting or self._overflowed:
            return
        try:
            decoded = _EVENT.decode(params)
            event = _conv_event(decoded)
        except msgspec.DecodeError as exc:
            logger.error("dropping a conv.event that does not match the contract: %s", exc)
            return
        if self._subscription is not None and decoded.subscription != self._subscription:
            # From an earlier subscription (its id is unknown only until subscribe returns).
            logger.debug("ignoring an event of subscription %d", decoded.subscription)
            return
        if self._hold is not None:
            if self._hold_last is None or event.seq > self._hold_last:
                if len(self._hold) >= self._event_queue:
                    logger.warning(
                        "%d events arrived while reloading the list; reconnecting to reload "
                        "it again",
                        len(self._hold),
                    )
                    self._drop_connection()
                    return
                self._hold.append(event)
                self._hold_last = event.seq
            return
        self._queue_event(event)

    def _queue_event(self, event: ConvEvent) -> None:
        if self._last_seq is not None and event.seq <= self._last_seq:
            return  # already delivered (a replay overlapping what we had)
        if self._emit(event):
            self._last_seq = event.seq
        else:
            logger.warning(
                "event listeners are %d events behind; reconnecting to resume later",
                self._event_queue,
            )
            self._drop_connection()

    def _drop_connection(self) -> None:
        self._overflowed = True
        # The connection being served: self._conn is set only once its session is restored,
        # and a replay or resync during the restore can overflow too.
        if self._serving is not None:
            self._serving.close()

    def _emit(self, item: _Item) -> bool:
        if self._queue_send is None:
            return False
        try:
            self._queue_send.send_nowait(item)
        except anyio.WouldBlock:
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    async def _dispatch_items(self, queue: MemoryObjectReceiveStream[_Item]) -> None:
        async with queue:
            async for item in queue:
                listeners: list[Callable[[Any], Awaitable[None] | None]]
                argument: Any = item
                if isinstance(item, ConvEvent):
                    listeners = list(self._event_listeners)
                elif isinstance(item, Resync):
                    listeners = list(self._resync_listeners)
                else:
                    listeners = list(self._state_listeners)
                    argument = item.state
                for listener in listeners:
                    try:
                        outcome = listener(argument)
                        if inspect.isawaitable(outcome):
                            await outcome
                    except Exception:
                        logger.exception("a convd_client listener failed")

    # -- connection supervisor ----------------------------------------------------------------

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        changed, self._state_changed = self._state_changed, anyio.Event()
        changed.set()
        self._emit(_StateChange(state))

    async def _open_stream(self) -> anyio.abc.SocketStream:
        try:
            with anyio.fail_after(self._connect_timeout):
                stream = await anyio.connect_unix(self._path)
        except (OSError, TimeoutError) as exc:
            self._last_error = _describe(exc)
            raise DaemonUnavailable(self._path, self._last_error) from exc
        # Not a byte goes out before we know who serves the socket: a path in a shared
        # directory (the /tmp fallback) could have been squatted by another local user.
        problem = _foreign_server(stream, self._expected_uid)
        if problem is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            self._last_error = problem
            logger.error("refusing convd at %s: %s", self._path, problem)
            raise DaemonUnavailable(self._path, problem)
        return stream

    async def _supervise(self, stream: anyio.abc.SocketStream | None) -> None:
        delay = self._backoff_initial
        while True:
            if stream is None:
                self._set_state(ConnectionState.CONNECTING)
                try:
                    stream = await self._open_stream()
                except DaemonUnavailable:
                    self._set_state(ConnectionState.DISCONNECTED)
                    if not self._reconnect:
                        return
                    await anyio.sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, self._backoff_max)
                    continue
            started = anyio.current_time()
            await self._serve(stream)
            stream = None
            self._set_state(ConnectionState.DISCONNECTED)
            if not self._reconnect:
                return
            if anyio.current_time() - started >= _STABLE_AFTER:
                # The first attempt after losing a good connection is immediate (the daemon
                # may only have dropped this connection); later ones back off.
                delay = self._backoff_initial
            else:
                # A connection that failed early (e.g. its session could not be restored)
                # must not turn into a busy loop of reconnects.
                await anyio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self._backoff_max)

    async def _serve(self, stream: anyio.abc.SocketStream) -> None:
        conn = Connection(
            stream,
            on_notification=self._on_notification,
            socket_path=self._path,
            max_line=self._max_line,
        )
        self._overflowed = False
        self._serving = conn
        async with anyio.create_task_group() as tg:
            await tg.start(conn.run)
            self._set_state(ConnectionState.RESTORING)
            try:
                await self._restore(conn)
            except ConvdClientError as exc:
                logger.warning("could not restore the session on %s: %s", self._path, exc)
                conn.close()
            if not conn.closed:
                self._conn = conn
                self._set_state(ConnectionState.CONNECTED)
                logger.info("connected to convd at %s", self._path)
            await conn.wait_closed()
        self._conn = None
        self._serving = None
        self._subscription = None
        self._accepting = False
        self._hold = None
        self._hold_last = None
        if not self._closing:
            self._last_error = "the connection was lost; reconnecting"
            logger.info("lost the connection to convd at %s", self._path)

    async def _restore(self, conn: Connection) -> None:
        if self._login is None:
            return
        try:
            result = await self._call_on(
                conn, "session.login", self._login, _LOGIN_RESULT, self._timeout
            )
        except ConvdError as exc:
            logger.error("logging in again as %r failed: %s", self._login.user_id, exc)
            self._login = None
            self._account = None
            self._reset_events()
            return
        account = (result.sdk_app_id, result.user_id)
        if account != self._account:
            self._reset_events()
            self._account = account
        if not self._want_events:
            return
        if self._last_seq is not None and not self._need_resync:
            try:
                await self._subscribe_resume(conn, self._last_seq, self._timeout)
                return
            except SeqTooOld as exc:
                logger.warning("cannot resume events: %s; reloading the list", exc.message)
        await self._resync(conn)


def connect(socket_path: str | os.PathLike[str] | None = None, **options: Any) -> Client:
    """A :class:`Client` for ``async with connect() as client:`` (same arguments)."""
    return Client(socket_path, **options)
