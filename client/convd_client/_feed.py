"""The change feed: subscribe, resume or resync, and deliver events to the listeners.

:class:`ChangeFeed` owns everything about ``conv.event``: whether events are wanted, the
subscription on the current connection, the resume point (``last_seq`` and ``history``), the
hold buffer used while the list is reloaded, the sync frames (Start / Finish) and what the
listeners were told (a reloaded list's missing conversations are reported as Del), and the
bounded queue that a dispatcher task drains into the listeners (connection state changes
travel through the same queue, so listeners see them in order with events). It makes calls
on the connection it is given and never connects by itself; when it must start over
(listeners too slow, too much held) it asks for the connection to be dropped through
``drop``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from convd_schemas import (
    ConvEventAdd,
    ConvEventDel,
    ConvEventParams,
    ConvEventUpdate,
    ConvInfo,
    ConvKey,
    ConvSubscribeParams,
    ConvSubscribeResult,
    ConvUnsubscribeParams,
    TIMConvEvent,
    TIMConvType,
)
from convd_schemas.limits import DEFAULT_PAGE_SIZE
from convd_schemas.methods import (
    ConvEventFinish,
    ConvEventStart,
    ConvGroupEventConversationsDeleted,
    ConvGroupEventNameChanged,
    ConvGroupEventParams,
)

from . import _rpc
from ._connection import Connection
from ._rpc import Rpc
from ._supervisor import ConnectionState
from .errors import DaemonUnavailable, SeqTooOld, SubscriptionNotFound

__all__ = [
    "ChangeFeed",
    "ConvEvent",
    "EventListener",
    "GroupEvent",
    "GroupEventListener",
    "Resync",
    "ResyncListener",
    "StateListener",
]

logger = logging.getLogger("convd_client")

P = TypeVar("P", bound=msgspec.Struct)
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ConvEvent:
    """One committed change, as a ``conv.event`` notification delivered it, or a sync
    frame's Start / Finish (subscriptions with ``sync``).

    Inside a frame of the whole list (after a Start), Update events carry the list's pages
    and the Start's ``seq``; conversations the listeners were told about earlier and that
    the list no longer has arrive as one Del (``origin`` ``""``) just before Finish.

    :param seq: the account's change sequence number (strictly increasing, except inside a
        sync frame of the whole list, whose events all carry its Start's seq)
    :param event: Add, Del, Update, Start or Finish
    :param conversations: the conversations as they are after the change (empty for Del,
        Start and Finish)
    :param keys: the id and type of every conversation the event names
    :param conv_array: the event's ``conv_array`` exactly as sent (for Del only
        ``conv_id`` and ``conv_type``; empty for Start and Finish)
    :param origin: id of the daemon connection that made the change (``""`` for frame
        events)
    :param full: for a Start, True when the frame holds the whole list (every login, and
        a reload when the missed changes could not be replayed, as after a restore of the
        daemon's database) rather than the changes missed; False for every other event
    """

    seq: int
    event: TIMConvEvent
    conversations: tuple[ConvInfo, ...]
    keys: tuple[ConvKey, ...]
    conv_array: list[dict[str, Any]]
    origin: str
    full: bool = False


@dataclass(frozen=True, slots=True)
class GroupEvent:
    """A change of the account's conversation groups (a ``conv.group_event`` notification).

    Group events are live only: the daemon does not replay them on resume, so after a
    reconnect (or a sync frame's Finish) re-list the groups to learn what changed meanwhile.
    The conversations a group event names also got Update events before it (their
    ``conv_conversation_group_array`` changed).

    :param kind: ``"created"``, ``"deleted"``, ``"name_changed"``, ``"conversations_added"``
        or ``"conversations_deleted"``
    :param group_name: the group (for ``name_changed``: its new name)
    :param conversations: the conversations created with it, added to or removed from it
    :param old_name: for ``name_changed``, the old name; otherwise ``""``
    :param reason: for ``conversations_deleted``: 0, a call removed them
    :param seq: the account's change seq when it was committed (not a change of its own)
    :param origin: id of the daemon connection that made the change
    """

    kind: str
    group_name: str
    conversations: tuple[ConvInfo, ...]
    old_name: str
    reason: int
    seq: int
    origin: str


@dataclass(frozen=True, slots=True)
class Resync:
    """The events missed while disconnected could not be replayed; here is the whole list.

    Sent to resync listeners instead of the missed events when the daemon no longer keeps
    them (error 90003 on resume), for subscriptions without ``sync`` (with ``sync``, the
    reload arrives as a sync frame of the whole list to the event listeners instead).
    ``conversations`` is the complete list after the gap; conversations deleted during the
    gap are simply absent from it. Events after ``seq`` follow as usual (some may repeat
    what the list already shows: apply them as upserts).
    """

    seq: int
    conversations: list[ConvInfo]


@dataclass(frozen=True, slots=True)
class _StateChange:
    state: ConnectionState


_Key = tuple[str, int]


@dataclass(slots=True)
class _Frame:
    """A sync frame between its Start and its Finish."""

    full: bool
    seq: int
    #: A full frame's conversations so far.
    keys: set[_Key]


#: Listener callables may be plain functions or coroutine functions.
EventListener = Callable[[ConvEvent], Awaitable[None] | None]
ResyncListener = Callable[[Resync], Awaitable[None] | None]
GroupEventListener = Callable[[GroupEvent], Awaitable[None] | None]
StateListener = Callable[[ConnectionState], Awaitable[None] | None]

_Item = ConvEvent | Resync | _StateChange | GroupEvent

_EVENT = msgspec.json.Decoder(ConvEventParams)
_GROUP_EVENT = msgspec.json.Decoder(ConvGroupEventParams)

_EVENT_KINDS: dict[type[ConvEventParams], TIMConvEvent] = {
    ConvEventAdd: TIMConvEvent.kTIMConvEvent_Add,
    ConvEventDel: TIMConvEvent.kTIMConvEvent_Del,
    ConvEventUpdate: TIMConvEvent.kTIMConvEvent_Update,
}


def conv_event(params: ConvEventParams) -> ConvEvent:
    """The :class:`ConvEvent` a decoded ``conv.event`` stands for."""
    if isinstance(params, ConvEventStart | ConvEventFinish):
        kind = (
            TIMConvEvent.kTIMConvEvent_Start
            if isinstance(params, ConvEventStart)
            else TIMConvEvent.kTIMConvEvent_Finish
        )
        full = isinstance(params, ConvEventStart) and params.full
        return ConvEvent(params.seq, kind, (), (), [], params.origin, full)
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


class ChangeFeed:
    """Subscription state, resume and resync, and listener dispatch for one client.

    :param event_queue: how many items may wait for the listeners (and how many events may
        be held during a reload) before the connection is dropped to resume later
    :param drop: closes the connection being served (the client then reconnects)
    """

    def __init__(self, *, event_queue: int, drop: Callable[[], None]) -> None:
        if event_queue < 1:
            raise ValueError("event_queue must be at least 1")
        self._event_queue = event_queue
        self._drop = drop
        #: Serialises subscribe(), unsubscribe() and a login's subscribing.
        self.lock = anyio.Lock()
        # Events: wanted across reconnects and logins until unsubscribe().
        self.wanted = False
        # Sync frames wanted (conv.subscribe's `sync`) on every subscribe.
        self.sync = False
        # The open sync frame; it stays open across a lost connection (the next frame
        # continues it without a second Start).
        self._frame: _Frame | None = None
        # With sync: the conversations the event listeners know about.
        self._told: set[_Key] = set()
        self._accepting = False
        self._subscription: int | None = None
        self.origin: str | None = None
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
        self._group_listeners: list[GroupEventListener] = []
        # Created by open(), so that a feed never opened leaves nothing open.
        self._queue_send: MemoryObjectSendStream[_Item] | None = None
        self._queue_receive: MemoryObjectReceiveStream[_Item] | None = None

    # -- queue and listeners ------------------------------------------------------------------

    def open(self) -> MemoryObjectReceiveStream[_Item]:
        """Create the queue; run :meth:`dispatch` on what this returns."""
        send, receive = anyio.create_memory_object_stream[_Item](self._event_queue)
        self._queue_send, self._queue_receive = send, receive
        return receive

    def close(self) -> None:
        """Close the queue: nothing more is delivered."""
        if self._queue_send is not None and self._queue_receive is not None:
            self._queue_send.close()
            self._queue_receive.close()

    async def dispatch(self, queue: MemoryObjectReceiveStream[_Item]) -> None:
        """Hand every queued item to its listeners, one at a time, until the queue closes."""
        async with queue:
            async for item in queue:
                listeners: list[Callable[[Any], Awaitable[None] | None]]
                argument: Any = item
                if isinstance(item, ConvEvent):
                    listeners = list(self._event_listeners)
                elif isinstance(item, Resync):
                    listeners = list(self._resync_listeners)
                elif isinstance(item, GroupEvent):
                    listeners = list(self._group_listeners)
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

    def emit_state(self, state: ConnectionState) -> None:
        """Queue a state change for the state listeners."""
        self._emit(_StateChange(state))

    def add_listener(self, kind: type[Any], listener: Callable[[Any], Any]) -> None:
        """Add a listener of ConvEvent, Resync or ConnectionState items."""
        self._listeners(kind).append(listener)

    def remove_listener(self, kind: type[Any], listener: Callable[[Any], Any]) -> None:
        """Remove a listener; unknown ones are ignored."""
        listeners = self._listeners(kind)
        if listener in listeners:
            listeners.remove(listener)

    def _listeners(self, kind: type[Any]) -> list[Callable[[Any], Any]]:
        if kind is ConvEvent:
            return self._event_listeners
        if kind is Resync:
            return self._resync_listeners
        if kind is ConnectionState:
            return self._state_listeners
        if kind is GroupEvent:
            return self._group_listeners
        raise TypeError(f"no listeners of {kind!r}")

    def _emit(self, item: _Item) -> bool:
        if self._queue_send is None:
            return False
        try:
            self._queue_send.send_nowait(item)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    # -- state --------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int | None:
        """The seq of the last event queued for the listeners (the resume point)."""
        return self._last_seq

    @property
    def subscription(self) -> int | None:
        """The subscription on the current connection, if any."""
        return self._subscription

    def reset(self) -> None:
        """Forget the subscription and the resume point (logout, another account)."""
        self._accepting = False
        self._subscription = None
        self._last_seq = None
        self._need_resync = False
        self._hold = None
        self._hold_last = None

    def connection_lost(self) -> None:
        """The connection ended: its subscription with it (the resume point stays)."""
        self._subscription = None
        self._accepting = False
        self._hold = None
        self._hold_last = None

    def connection_started(self) -> None:
        """A new connection: events are taken again (after an overflow dropped the last)."""
        self._overflowed = False

    def _drop_connection(self) -> None:
        self._overflowed = True
        self._drop()

    # -- calls --------------------------------------------------------------------------------

    # Every call the feed makes goes through these two (tests wrap them).

    async def _call_on(self, conn: Connection, rpc: Rpc[P, R], params: P, timeout: float) -> R:
        return await _rpc.call_on(conn, rpc, params, timeout)

    async def _list_all_on(
        self, conn: Connection, page_size: int, timeout: float
    ) -> list[ConvInfo]:
        return await _rpc.list_all_on(conn, page_size, timeout)

    async def subscribe(
        self,
        conn: Connection,
        since_seq: int | None,
        history: str | None,
        timeout: float,
        sync: bool = False,
    ) -> ConvSubscribeResult:
        """Subscribe on ``conn`` (hold :attr:`lock`); resume after ``since_seq`` if given.

        With ``sync``, this and every later subscribe (reconnects, logins) asks the daemon
        for a sync frame. Without ``since_seq`` while subscribed, returns the live
        subscription unchanged (``sync`` too is left as it was).
        """
        if self._subscription is not None:
            if since_seq is None:
                return ConvSubscribeResult(
                    subscription=self._subscription,
                    seq=self._last_seq or 0,
                    origin=self.origin or "",
                    history=self._history or "",
                )
            await self._unsubscribe_on(conn, timeout)
        previous, self.sync = self.sync, sync
        try:
            if since_seq is None:
                result = await self.subscribe_fresh(conn, timeout)
            else:
                if history is not None:
                    self._history = history
                result = await self._subscribe_resume(conn, since_seq, timeout)
        except BaseException:
            if not self.wanted:
                self.sync = previous
            raise
        self.wanted = True
        return result

    async def unsubscribe(self, conn: Connection | None, timeout: float) -> None:
        """Stop wanting events; end the subscription on ``conn`` if there is one (hold lock)."""
        self.wanted = False
        self.sync = False
        self._frame = None
        self._told.clear()
        if conn is not None and not conn.closed and self._subscription is not None:
            with contextlib.suppress(DaemonUnavailable):
                await self._unsubscribe_on(conn, timeout)
        self.reset()

    async def subscribe_fresh(self, conn: Connection, timeout: float) -> ConvSubscribeResult:
        """Subscribe without ``since_seq``; the resume point starts at the reply's seq.

        With :attr:`sync`, the daemon sends the whole list in a sync frame first.
        """
        # Events may arrive before the response (the daemon registers the subscription
        # first): accept them from now on.
        self._last_seq = None
        self._accepting = True
        params = ConvSubscribeParams(sync=self.sync)
        try:
            result = await self._call_on(conn, _rpc.CONV_SUBSCRIBE, params, timeout)
        except BaseException:
            self._accepting = self._subscription is not None
            raise
        self._took(result)
        self._last_seq = max(self._last_seq or 0, result.seq)
        return result

    async def _subscribe_resume(
        self, conn: Connection, since_seq: int, timeout: float
    ) -> ConvSubscribeResult:
        previous = self._last_seq
        self._last_seq = since_seq
        self._accepting = True
        params = ConvSubscribeParams(
            since_seq=since_seq,
            history=msgspec.UNSET if self._history is None else self._history,
            sync=self.sync,
        )
        try:
            result = await self._call_on(conn, _rpc.CONV_SUBSCRIBE, params, timeout)
        except BaseException:
            self._accepting = False
            if self._last_seq == since_seq:
                # Nothing was queued from this subscription; events that were stay delivered
                # (rolling back would replay them on the next resume).
                self._last_seq = previous
            raise
        self._took(result)
        return result

    def _took(self, result: ConvSubscribeResult) -> None:
        self._subscription = result.subscription
        self.origin = result.origin
        self._history = result.history

    async def _unsubscribe_on(self, conn: Connection, timeout: float) -> None:
        subscription, self._subscription = self._subscription, None
        self._accepting = False
        if subscription is None:
            return
        with contextlib.suppress(SubscriptionNotFound):
            params = ConvUnsubscribeParams(subscription=subscription)
            await self._call_on(conn, _rpc.CONV_UNSUBSCRIBE, params, timeout)

    async def restore(self, conn: Connection, timeout: float) -> None:
        """On a new connection: resume from :attr:`last_seq`, or resync when that fails.

        With :attr:`sync` the daemon frames either: the replay of a resume, or the whole
        list of a fresh subscription (after which what the listeners knew and the list no
        longer has is reported as Del).
        """
        if not self.wanted:
            return
        if self._last_seq is not None and not self._need_resync:
            try:
                await self._subscribe_resume(conn, self._last_seq, timeout)
                return
            except SeqTooOld as exc:
                logger.warning("cannot resume events: %s; reloading the list", exc.message)
        if self.sync:
            self._need_resync = True
            await self.subscribe_fresh(conn, timeout)
        else:
            await self._resync(conn, timeout)

    async def _resync(self, conn: Connection, timeout: float) -> None:
        """Subscribe afresh, load the whole list, send it as a Resync, then the held events."""
        self._need_resync = True
        self._hold = []
        self._hold_last = None
        self._accepting = True
        result = await self._call_on(conn, _rpc.CONV_SUBSCRIBE, ConvSubscribeParams(), timeout)
        self._took(result)
        conversations = await self._list_all_on(conn, DEFAULT_PAGE_SIZE, timeout)
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

    def on_notification(self, method: str, params: msgspec.Raw) -> None:
        """Take one notification from the connection's reader (must not block)."""
        if method == "conv.group_event":
            self._on_group_event(params)
            return
        if method != "conv.event":
            logger.debug("ignoring the %s notification", method)
            return
        if not self._accepting or self._overflowed:
            return
        try:
            decoded = _EVENT.decode(params)
            event = conv_event(decoded)
        except msgspec.DecodeError as exc:
            logger.error("dropping a conv.event that does not match the contract: %s", exc)
            return
        if self._subscription is not None and decoded.subscription != self._subscription:
            # From an earlier subscription (its id is unknown only until subscribe returns).
            logger.debug("ignoring an event of subscription %d", decoded.subscription)
            return
        if isinstance(decoded, ConvEventStart):
            self._frame_start(decoded, event)
            return
        if isinstance(decoded, ConvEventFinish):
            self._frame_finish(event)
            return
        frame = self._frame
        if frame is not None and frame.full:
            # A page of the list: it carries the Start's seq, not a change's.
            keys = [(k.conv_id, int(k.conv_type)) for k in event.keys]
            if self._deliver(event):
                frame.keys.update(keys)
                self._told.update(keys)
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

    def _on_group_event(self, params: msgspec.Raw) -> None:
        """A change of the conversation groups: to the group listeners, in order with the
        events around it (live only: never held, replayed or reloaded)."""
        if not self._accepting or self._overflowed:
            return
        try:
            decoded = _GROUP_EVENT.decode(params)
        except msgspec.DecodeError as exc:
            logger.error("dropping a conv.group_event that does not match the contract: %s", exc)
            return
        if self._subscription is not None and decoded.subscription != self._subscription:
            return
        tag = type(decoded).__struct_config__.tag
        event = GroupEvent(
            kind=str(tag),
            group_name=decoded.group_name,
            conversations=tuple(getattr(decoded, "conv_array", ())),
            old_name=decoded.old_name if isinstance(decoded, ConvGroupEventNameChanged) else "",
            reason=decoded.reason if isinstance(decoded, ConvGroupEventConversationsDeleted) else 0,
            seq=decoded.seq,
            origin=decoded.origin,
        )
        if not self._emit(event):
            self._drop_connection()

    def _queue_event(self, event: ConvEvent) -> None:
        if self._last_seq is not None and event.seq <= self._last_seq:
            return  # already delivered (a replay overlapping what we had)
        if self._deliver(event):
            self._last_seq = event.seq
            if self.sync:
                keys = [(k.conv_id, int(k.conv_type)) for k in event.keys]
                if event.event is TIMConvEvent.kTIMConvEvent_Del:
                    self._told.difference_update(keys)
                else:
                    self._told.update(keys)

    def _deliver(self, event: ConvEvent) -> bool:
        """Queue ``event`` for the listeners; when they are too far behind, drop the
        connection (to resume later) and return False."""
        if self._emit(event):
            return True
        logger.warning(
            "event listeners are %d events behind; reconnecting to resume later",
            self._event_queue,
        )
        self._drop_connection()
        return False

    def _frame_start(self, start: ConvEventStart, event: ConvEvent) -> None:
        if start.full:
            # Until its Finish, only a reload of the whole list can complete this frame.
            self._need_resync = True
        # A frame cut by a lost connection is continued by this one: one Start in all.
        if self._frame is None and not self._deliver(event):
            return
        self._frame = _Frame(full=start.full, seq=start.seq, keys=set())

    def _frame_finish(self, event: ConvEvent) -> None:
        frame = self._frame
        if frame is None:
            return  # its Start could not be queued: the connection is being dropped
        if frame.full:
            # What the listeners were told and the list no longer has was deleted meanwhile.
            gone = sorted(self._told - frame.keys)
            if gone:
                deleted = [ConvKey(conv_id=i, conv_type=TIMConvType(t)) for i, t in gone]
                report = ConvEvent(
                    seq=frame.seq,
                    event=TIMConvEvent.kTIMConvEvent_Del,
                    conversations=(),
                    keys=tuple(deleted),
                    conv_array=msgspec.to_builtins(deleted),
                    origin="",
                )
                if not self._deliver(report):
                    return
            self._told = set(frame.keys)
        if not self._deliver(event):
            return
        self._frame = None
        if frame.full:
            self._need_resync = False
        self._last_seq = max(self._last_seq or 0, event.seq)
