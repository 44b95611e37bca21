"""The async client: one typed coroutine per method, events, and automatic reconnection.

Usage::

    async with Client() as client:            # $CONVD_SOCKET or the default socket path
        await client.login("alice")
        client.add_event_listener(print)
        await client.subscribe()
        info = await client.conv_set_draft("bob", TIMConvType.kTIMConv_C2C, "hello")

:class:`Client` is a thin typed facade over three parts, each with one job:
``_supervisor.Supervisor`` (connecting, the uid check, backoff, the connection state),
``_feed.ChangeFeed`` (subscribe, resume, resync, listeners) and ``_rpc`` (each method's
``MethodSpec`` from the contract and its result decoder). The client itself keeps only the
session it logs in again with. Everything the client runs (the connection's reader and
writer, the supervisor and the event dispatcher) lives in a task group owned by the
``async with`` block.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import msgspec
from anyio.abc import ByteStream, TaskGroup

from convd_schemas import (
    ConvCancelDraftParams,
    ConvDeleteManyParams,
    ConvDraftHistoryParams,
    ConvDraftHistoryResult,
    ConvGetParams,
    ConvGroupAddParams,
    ConvGroupCreateParams,
    ConvGroupDeleteParams,
    ConvGroupRemoveParams,
    ConvGroupRenameParams,
    ConvInfo,
    ConvKey,
    ConvKeyParams,
    ConvListByFilterParams,
    ConvListFilter,
    ConvListParams,
    ConvListResult,
    ConvMarkParams,
    ConvOperationResult,
    ConvPinParams,
    ConvRestoreDraftParams,
    ConvSetCustomDataParams,
    ConvSetDraftParams,
    ConvSubscribeResult,
    DaemonBackupParams,
    DaemonBackupResult,
    DaemonStatus,
    Draft,
    EmptyParams,
    SessionLoginParams,
    SessionLoginResult,
    TIMConvType,
)
from convd_schemas.limits import DEFAULT_DRAFT_HISTORY, DEFAULT_PAGE_SIZE, MAX_GET_CONVS
from convd_schemas.paths import default_socket_path

from . import _rpc
from ._connection import Connection
from ._feed import (
    ChangeFeed,
    ConvEvent,
    EventListener,
    GroupEvent,
    GroupEventListener,
    Resync,
    ResyncListener,
    StateListener,
)
from ._framing import DEFAULT_MAX_LINE
from ._pipe import default_pipe_connector
from ._rpc import Rpc
from ._supervisor import ConnectionState, Connector, Supervisor, UnixConnector
from .drafts import text_draft
from .errors import ConvdError, DaemonUnavailable

__all__ = [
    "DEFAULT_TIMEOUT",
    "Client",
    "ConnectionState",
    "Connector",
    "ConvEvent",
    "EventListener",
    "GroupEvent",
    "GroupEventListener",
    "Resync",
    "ResyncListener",
    "StateListener",
    "connect",
]

logger = logging.getLogger("convd_client")

P = TypeVar("P", bound=msgspec.Struct)
R = TypeVar("R")

#: Seconds a call waits for its response unless told otherwise.
DEFAULT_TIMEOUT = 10.0
#: Events waiting for the listeners; when the listeners fall this far behind, the client
#: drops the connection and resumes from the last queued event once reconnected.
_EVENT_QUEUE = 10_000


def checked_seconds(name: str, value: object) -> float:
    """``value`` as a float, when it is a finite number of seconds above 0.

    :raises ValueError: it is not (NaN, an infinity, 0 or less, not a number); a NaN
        timeout would otherwise fail every call later, far from the mistake
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    raise ValueError(f"{name} must be a finite number of seconds above 0, not {value!r}")


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
    :param timeout: default per-call timeout in seconds (each method also takes ``timeout``);
        like ``connect_timeout``, a finite number above 0 (else ValueError)
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
    :param connector: opens the byte stream to the daemon instead of the socket (an async
        callable taking no arguments; it may raise ``OSError``). It replaces the socket
        connect *and* its uid check: use it for streams you trust (tests use in-memory ones)

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
        connector: Connector | None = None,
        _expected_uid: int | None = None,
    ) -> None:
        timeout = checked_seconds("timeout", timeout)
        connect_timeout = checked_seconds("connect_timeout", connect_timeout)
        if sys.platform == "win32" and connector is None:
            # Windows (issue 9 section 4): the daemon's named pipe, not a Unix socket.
            pipe = default_pipe_connector(socket_path)
            connector, path = pipe, Path(pipe.name)
        else:
            path = Path(socket_path) if socket_path is not None else default_socket_path()
        self._timeout = timeout
        self._require_connection = require_connection
        if connector is None:
            # Whose daemon to trust: this process's user (overridable only by tests).
            uid = os.getuid() if _expected_uid is None else _expected_uid
            connector = UnixConnector(path, uid)
        self._feed = ChangeFeed(event_queue=event_queue, drop=self._drop_connection)
        self._supervisor = Supervisor(
            path,
            connector,
            restore=self._restore,
            on_notification=self._feed.on_notification,
            on_state=self._feed.emit_state,
            on_lost=self._feed.connection_lost,
            reconnect=reconnect,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            connect_timeout=connect_timeout,
            max_line=max_line,
        )
        self._tg: TaskGroup | None = None
        # The session the client restores after a reconnect.
        self._login: SessionLoginParams | None = None
        self._account: tuple[int, str] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        supervisor = self._supervisor
        if self._tg is not None or supervisor.closing:
            raise RuntimeError("a Client can be entered only once")
        stream: ByteStream | None = None
        if self._require_connection:
            stream = await supervisor.open()  # raises DaemonUnavailable
        queue = self._feed.open()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        try:
            tg.start_soon(self._feed.dispatch, queue)
            if stream is not None:
                supervisor.set_state(ConnectionState.RESTORING)
            else:
                supervisor.set_state(ConnectionState.CONNECTING)
            tg.start_soon(supervisor.run, stream)
            if stream is not None:
                # Connected already: return once the connection is set up, so that
                # `connected` holds inside the block.
                await supervisor.wait_settled(supervisor.connect_timeout)
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
        self._supervisor.close()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            # The body's own exception is not handed to the task group: it propagates as
            # it is, not wrapped in an ExceptionGroup (the client's tasks only stop here).
            await self._tg.__aexit__(None, None, None)
            return None
        finally:
            self._supervisor.set_state(ConnectionState.CLOSED)
            self._feed.close()

    # -- state --------------------------------------------------------------------------------

    @property
    def socket_path(self) -> Path:
        """The socket path the client connects to."""
        return self._supervisor.path

    @property
    def state(self) -> ConnectionState:
        """The connection's current state."""
        return self._supervisor.state

    @property
    def connected(self) -> bool:
        """True when calls go through (state CONNECTED)."""
        return self._supervisor.state is ConnectionState.CONNECTED

    @property
    def user_id(self) -> str | None:
        """The user the client is logged in as (and logs in as again after reconnecting)."""
        return None if self._login is None else self._login.user_id

    @property
    def subscribed(self) -> bool:
        """True while events are wanted (from :meth:`subscribe` until :meth:`unsubscribe`)."""
        return self._feed.wanted

    @property
    def origin(self) -> str | None:
        """This connection's id in the daemon, as events carry it in ``origin``: events whose
        ``origin`` equals it are the echo of this client's own changes. Known once subscribed;
        it changes with every reconnect."""
        return self._feed.origin

    @property
    def last_seq(self) -> int | None:
        """The seq of the last event queued for the listeners (the resume point)."""
        return self._feed.last_seq

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the client is connected and its session restored.

        :raises TimeoutError: not connected within ``timeout`` seconds
        :raises ClientClosed: the client was closed
        """
        await self._supervisor.wait_connected(timeout)

    # -- listeners ----------------------------------------------------------------------------

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every :class:`ConvEvent`, in seq order.

        Listeners run one at a time in the client's dispatcher task (never inside the reader,
        so a slow listener does not stall responses); they may be coroutine functions. An
        exception from a listener is logged and otherwise ignored.
        """
        self._feed.add_listener(ConvEvent, listener)

    def remove_event_listener(self, listener: EventListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        self._feed.remove_listener(ConvEvent, listener)

    def add_group_event_listener(self, listener: GroupEventListener) -> None:
        """Call ``listener(event)`` for every :class:`GroupEvent` (a change of the account's
        conversation groups), in order with the conversation events; same rules as
        :meth:`add_event_listener`. Group events are live only: after a reconnect, re-list
        the groups (:meth:`conv_group_list`) rather than expect the missed ones."""
        self._feed.add_listener(GroupEvent, listener)

    def remove_group_event_listener(self, listener: GroupEventListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        self._feed.remove_listener(GroupEvent, listener)

    def add_resync_listener(self, listener: ResyncListener) -> None:
        """Call ``listener(resync)`` when missed events had to be replaced by the whole list."""
        self._feed.add_listener(Resync, listener)

    def remove_resync_listener(self, listener: ResyncListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        self._feed.remove_listener(Resync, listener)

    def add_state_listener(self, listener: StateListener) -> None:
        """Call ``listener(state)`` on every change of :attr:`state`, in order with events."""
        self._feed.add_listener(ConnectionState, listener)

    def remove_state_listener(self, listener: StateListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        self._feed.remove_listener(ConnectionState, listener)

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
        conn = await self._supervisor.usable(limit)
        result = await _rpc.call_on(conn, _rpc.SESSION_LOGIN, params, limit)
        account = (result.sdk_app_id, result.user_id)
        if account != self._account:
            self._feed.reset()
        self._login = params
        self._account = account
        feed = self._feed
        if feed.wanted and feed.subscription is None:
            async with feed.lock:
                if feed.wanted and feed.subscription is None:
                    await feed.subscribe_fresh(conn, limit)
        return result

    async def logout(self, *, timeout: float | None = None) -> None:
        """Log out (``session.logout``); ends the subscription. Never fails for lack of a
        connection: a session ends with its connection anyway."""
        self._login = None
        self._account = None
        self._feed.reset()
        conn = self._supervisor.current
        if conn is None or conn.closed:
            return
        with contextlib.suppress(DaemonUnavailable):
            await _rpc.call_on(conn, _rpc.SESSION_LOGOUT, EmptyParams(), self._limit(timeout))

    # -- conversations ------------------------------------------------------------------------

    async def conv_create(
        self, conv_id: str, conv_type: TIMConvType, *, timeout: float | None = None
    ) -> ConvInfo:
        """Create a conversation, or get the existing one unchanged (``conv.create``)."""
        params = ConvKeyParams(conv_id=conv_id, conv_type=conv_type)
        return await self._request(_rpc.CONV_CREATE, params, timeout)

    async def conv_delete(
        self, conv_id: str, conv_type: TIMConvType, *, timeout: float | None = None
    ) -> None:
        """Delete a conversation and its draft (``conv.delete``).

        :raises ConversationNotFound: no such conversation (6004)
        """
        params = ConvKeyParams(conv_id=conv_id, conv_type=conv_type)
        await self._request(_rpc.CONV_DELETE, params, timeout)

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
        return await self._request(_rpc.CONV_LIST, params, timeout)

    async def conv_list_all(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: float | None = None
    ) -> list[ConvInfo]:
        """The whole list, paging through ``conv.list`` (a conversation appears once).

        A conversation that moves up while the pages are read (activated or pinned by another
        client) is listed all the same: the top of the list is read again after the last
        page (see ``_rpc.list_all_on`` for what that does and does not promise).
        """
        limit = self._limit(timeout)
        conn = await self._supervisor.usable(limit)
        return await _rpc.list_all_on(conn, page_size, limit)

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
            page = await self._request(_rpc.CONV_GET, params, timeout)
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
        return await self._request(_rpc.CONV_SET_DRAFT, params, timeout)

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
        return await self._request(_rpc.CONV_CANCEL_DRAFT, params, timeout)

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
        await self._request(_rpc.CONV_PIN, params, timeout)

    async def conv_delete_many(
        self,
        convs: Iterable[ConvKey | tuple[str, int]],
        *,
        timeout: float | None = None,
    ) -> list[ConvOperationResult]:
        """Delete up to 100 conversations and their drafts at once (``conv.delete_many``).

        One transaction, a Del event per conversation deleted, and a result per conversation
        (a repeated one once): ``result_code`` 0, or 6004 when it does not exist.

        :raises InvalidParameters: no conversation, or more than 100 (6017)
        :raises InvalidIdentifier: an invalid id (7003, 8501); nothing is deleted
        """
        params = ConvDeleteManyParams(convs=[_key(conv) for conv in convs])
        return await self._request(_rpc.CONV_DELETE_MANY, params, timeout)

    async def conv_set_custom_data(
        self,
        convs: Iterable[ConvKey | tuple[str, int]],
        custom_data: str,
        *,
        timeout: float | None = None,
    ) -> list[ConvOperationResult]:
        """Set the custom data of up to 100 conversations (``conv.set_custom_data``).

        One transaction, an Update event per conversation whose data changed (its place in
        the list and its draft revision stay), and a result per conversation: 0, or 6004 when
        it does not exist (it is not created).

        :param custom_data: at most 256 bytes of UTF-8; ``""`` removes it
        :raises InvalidParameters: no conversation, or data over 256 bytes (6017)
        :raises ConvdError: more than 100 conversations (code 51006)
        """
        params = ConvSetCustomDataParams(
            convs=[_key(conv) for conv in convs], custom_data=custom_data
        )
        return await self._request(_rpc.CONV_SET_CUSTOM_DATA, params, timeout)

    async def conv_draft_history(
        self,
        conv_id: str,
        conv_type: TIMConvType,
        count: int = DEFAULT_DRAFT_HISTORY,
        *,
        timeout: float | None = None,
    ) -> ConvDraftHistoryResult:
        """A conversation's earlier drafts, newest first, and its current revision
        (``conv.draft_history``, convd extension).

        :param count: at most this many versions, 1..1000
        :raises ConversationNotFound: no such conversation (6004)
        """
        params = ConvDraftHistoryParams(conv_id=conv_id, conv_type=conv_type, count=count)
        return await self._request(_rpc.CONV_DRAFT_HISTORY, params, timeout)

    async def conv_restore_draft(
        self,
        conv_id: str,
        conv_type: TIMConvType,
        revision: int,
        *,
        if_revision: int | None = None,
        timeout: float | None = None,
    ) -> ConvInfo:
        """Make the earlier draft ``revision`` the current one again (``conv.restore_draft``,
        convd extension); the draft it replaces is kept in the history.

        :param revision: the ``revision`` of a version from :meth:`conv_draft_history`
        :param if_revision: restore only if the stored ``conv_draft_revision`` still equals this
        :return: the conversation after the change, with its new ``conv_draft_revision``
        :raises DraftVersionNotFound: the history holds no such version (90006)
        :raises ConversationNotFound: no such conversation (6004)
        :raises RevisionConflict: the revision differs; ``current`` holds the stored state
        """
        params = ConvRestoreDraftParams(
            conv_id=conv_id,
            conv_type=conv_type,
            revision=revision,
            if_revision=msgspec.UNSET if if_revision is None else if_revision,
        )
        return await self._request(_rpc.CONV_RESTORE_DRAFT, params, timeout)

    async def conv_mark(
        self,
        convs: Iterable[ConvKey | tuple[str, int]],
        mark_type: int,
        enable_mark: bool = True,
        *,
        timeout: float | None = None,
    ) -> list[ConvOperationResult]:
        """Set (or with ``enable_mark`` False, clear) one mark on conversations (``conv.mark``).

        :param mark_type: Star 0x1, Unread 0x2, Fold 0x4, Hide 0x8 (TIMConversationMarkType),
            or a custom mark ``1 << n``, 32 <= n < 64
        :return: one result per conversation (code 6004 for one that does not exist)
        :raises InvalidParameters: not one mark, or no conversation (6017)
        :raises ConvdError: more than 100 conversations (51006)
        """
        params = ConvMarkParams(
            convs=[_key(conv) for conv in convs], mark_type=mark_type, enable_mark=enable_mark
        )
        return await self._request(_rpc.CONV_MARK, params, timeout)

    async def conv_list_by_filter(
        self,
        filter: ConvListFilter | None = None,
        next_seq: int = 0,
        count: int = DEFAULT_PAGE_SIZE,
        *,
        timeout: float | None = None,
    ) -> ConvListResult:
        """One page of the conversations matching ``filter`` (``conv.list_by_filter``), in
        list order, paged as :meth:`conv_list`."""
        params = ConvListByFilterParams(
            next_seq=next_seq, count=count, filter=filter or ConvListFilter()
        )
        return await self._request(_rpc.CONV_LIST_BY_FILTER, params, timeout)

    async def conv_group_create(
        self,
        group_name: str,
        convs: Iterable[ConvKey | tuple[str, int]] = (),
        *,
        timeout: float | None = None,
    ) -> list[ConvOperationResult]:
        """Create a conversation group holding ``convs`` (``conv.group_create``).

        :raises ConvdError: 20 groups exist (51010), the name is over 32 bytes (51011) or
            taken (6017)
        """
        params = ConvGroupCreateParams(group_name=group_name, convs=[_key(c) for c in convs])
        return await self._request(_rpc.CONV_GROUP_CREATE, params, timeout)

    async def conv_group_list(self, *, timeout: float | None = None) -> list[str]:
        """The account's conversation group names, oldest first (``conv.group_list``)."""
        return await self._request(_rpc.CONV_GROUP_LIST, EmptyParams(), timeout)

    async def conv_group_delete(self, group_name: str, *, timeout: float | None = None) -> None:
        """Delete a conversation group; its conversations stay (``conv.group_delete``).

        :raises ConvdError: no such group (51009)
        """
        params = ConvGroupDeleteParams(group_name=group_name)
        await self._request(_rpc.CONV_GROUP_DELETE, params, timeout)

    async def conv_group_rename(
        self, old_name: str, new_name: str, *, timeout: float | None = None
    ) -> None:
        """Rename a conversation group (``conv.group_rename``).

        :raises ConvdError: no such group (51009), the new name is taken (6017)
        """
        params = ConvGroupRenameParams(old_name=old_name, new_name=new_name)
        await self._request(_rpc.CONV_GROUP_RENAME, params, timeout)

    async def conv_group_add(
        self,
        group_name: str,
        convs: Iterable[ConvKey | tuple[str, int]],
        *,
        timeout: float | None = None,
    ) -> list[ConvOperationResult]:
        """Add conversations to a conversation group (``conv.group_add``)."""
        params = ConvGroupAddParams(group_name=group_name, convs=[_key(c) for c in convs])
        return await self._request(_rpc.CONV_GROUP_ADD, params, timeout)

    async def conv_group_remove(
        self,
        group_name: str,
        convs: Iterable[ConvKey | tuple[str, int]],
        *,
        timeout: float | None = None,
    ) -> list[ConvOperationResult]:
        """Remove conversations from a conversation group (``conv.group_remove``)."""
        params = ConvGroupRemoveParams(group_name=group_name, convs=[_key(c) for c in convs])
        return await self._request(_rpc.CONV_GROUP_REMOVE, params, timeout)

    # -- events -------------------------------------------------------------------------------

    async def subscribe(
        self,
        since_seq: int | None = None,
        *,
        history: str | None = None,
        sync: bool = False,
        timeout: float | None = None,
    ) -> ConvSubscribeResult:
        """Deliver the account's events to the event listeners, until :meth:`unsubscribe`.

        The subscription is kept across reconnects (resumed from :attr:`last_seq`) and
        logins (a new account is subscribed afresh). Subscribing again without
        ``since_seq`` while subscribed changes nothing.

        With ``sync``, the events of every subscription made from now on (this one, and
        those after each reconnect and login) begin with a sync frame, as the SDK frames its
        server sync: a Start event, then either the whole current list as Update events
        (a fresh subscription: this one, a login, or a reconnect whose resume was refused
        with 90003) or the changes missed while away (a resumed one), then a Finish event,
        then the live events. After a whole list, the conversations the listeners had been
        told about (by earlier events) that it no longer has arrive as one Del event just
        before Finish: nothing deleted while the client was away goes unreported. A frame
        cut by a lost connection is completed on the next one, without a second Start.
        Resync listeners are not called for such a subscription.

        :param since_seq: first replay every change after this seq
        :param history: the ``history`` of the subscription ``since_seq`` came from (by
            default the last one this client saw); the daemon refuses the resume (90003)
            when its database has a different history since, instead of skipping changes
        :param sync: frame the start of the events (see above)
        :raises SeqTooOld: ``since_seq`` can no longer be replayed (90003)
        """
        limit = self._limit(timeout)
        async with self._feed.lock:
            conn = await self._supervisor.usable(limit)
            return await self._feed.subscribe(conn, since_seq, history, limit, sync)

    async def unsubscribe(self, *, timeout: float | None = None) -> None:
        """Stop delivering events (``conv.unsubscribe``)."""
        async with self._feed.lock:
            await self._feed.unsubscribe(self._supervisor.current, self._limit(timeout))

    # -- daemon -------------------------------------------------------------------------------

    async def daemon_status(self, *, timeout: float | None = None) -> DaemonStatus:
        """The daemon's version, pid, uptime, connections, paths and size (``daemon.status``)."""
        return await self._request(_rpc.DAEMON_STATUS, EmptyParams(), timeout)

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
        return await self._request(_rpc.DAEMON_BACKUP, params, timeout)

    async def discover(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The daemon's OpenRPC document (``rpc.discover``)."""
        return await self._request(_rpc.RPC_DISCOVER, EmptyParams(), timeout)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Call any method with params by name and return its result as plain JSON values.

        Raw: it does not update the client's own session state (a ``session.login`` made
        this way is not restored after a reconnect; use :meth:`login`).
        """
        limit = self._limit(timeout)
        conn = await self._supervisor.usable(limit)
        return await _rpc.call_any(conn, method, params, limit)

    # -- plumbing -----------------------------------------------------------------------------

    def _limit(self, timeout: float | None) -> float:
        return self._timeout if timeout is None else checked_seconds("timeout", timeout)

    async def _request(self, rpc: Rpc[P, R], params: P, timeout: float | None) -> R:
        limit = self._limit(timeout)
        conn = await self._supervisor.usable(limit)
        return await _rpc.call_on(conn, rpc, params, limit)

    def _drop_connection(self) -> None:
        self._supervisor.drop()

    async def _restore(self, conn: Connection) -> None:
        """On every new connection: log in again as the last :meth:`login`, then resubscribe."""
        self._feed.connection_started()
        if self._login is None:
            return
        try:
            result = await _rpc.call_on(conn, _rpc.SESSION_LOGIN, self._login, self._timeout)
        except ConvdError as exc:
            logger.error("logging in again as %r failed: %s", self._login.user_id, exc)
            self._login = None
            self._account = None
            self._feed.reset()
            return
        account = (result.sdk_app_id, result.user_id)
        if account != self._account:
            self._feed.reset()
            self._account = account
        await self._feed.restore(conn, self._timeout)


def connect(socket_path: str | os.PathLike[str] | None = None, **options: Any) -> Client:
    """A :class:`Client` for ``async with connect() as client:`` (same arguments)."""
    return Client(socket_path, **options)
