"""Per-connection state: who is logged in, and the connection's subscriptions."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import msgspec

from convd_schemas import (
    ConvEventAdd,
    ConvEventDel,
    ConvEventFinish,
    ConvEventParams,
    ConvEventStart,
    ConvEventUpdate,
    ConvInfo,
    Notification,
)

from .. import domain
from .convert import conv_info, group_event, wire_key

__all__ = ["ChangeEncoder", "Session", "Subscription"]

logger = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()


_SUBSCRIPTION_FIELD = b'"subscription":0'
_EVENT_TYPES: dict[domain.ChangeKind, type[ConvEventAdd] | type[ConvEventUpdate]] = {
    domain.ChangeKind.ADD: ConvEventAdd,
    domain.ChangeKind.UPDATE: ConvEventUpdate,
}


class ChangeEncoder:
    """Turns each committed change into its ``conv.event`` line once, for every subscriber.

    The line is encoded with subscription 0 and cut around that number; a subscription then
    costs one join of three byte strings. The event bus hands the same Change object to every
    subscriber in turn, so a one-entry cache is enough.

    It also remembers the wire form of the last conversations it converted, by identity: the
    reply to the write that made a change reuses the ConvInfo its event was encoded from, so a
    change is converted from the domain's model to the wire's once.
    """

    #: Conversations remembered: a group commit publishes up to 256 changes before the
    #: writers' replies are built.
    _REMEMBERED = 512

    def __init__(self) -> None:
        self._last: domain.Change | None = None
        self._parts = (b"", b"")
        self._infos: OrderedDict[int, tuple[domain.Conversation, ConvInfo]] = OrderedDict()

    def conv_info(self, conversation: domain.Conversation) -> ConvInfo:
        """The conversation's ConvInfo, converted once per (identical) conversation object."""
        found = self._infos.get(id(conversation))
        if found is not None and found[0] is conversation:
            return found[1]
        info = conv_info(conversation)
        # The entry holds the conversation, so its id cannot be reused while remembered.
        self._infos[id(conversation)] = (conversation, info)
        if len(self._infos) > self._REMEMBERED:
            self._infos.popitem(last=False)
        return info

    def parts(self, change: domain.Change) -> tuple[bytes, bytes]:
        """The event line before and after its subscription id."""
        if change is not self._last:
            self._parts = self._encode(change)
            self._last = change
        return self._parts

    def _encode(self, change: domain.Change) -> tuple[bytes, bytes]:
        params: ConvEventParams
        if change.conversation is None:
            params = ConvEventDel(0, change.seq, change.origin, [wire_key(change.key)])
        else:
            event_type = _EVENT_TYPES[change.kind]
            info = self.conv_info(change.conversation)
            params = event_type(0, change.seq, change.origin, [info])
        line = _notification(params)
        # The field comes right after the event tag, before any text of the conversation.
        cut = line.index(_SUBSCRIPTION_FIELD) + len(_SUBSCRIPTION_FIELD) - 1
        return line[:cut], line[cut + 1 :]


def _notification(params: ConvEventParams) -> bytes:
    return _encoder.encode(Notification(jsonrpc="2.0", method="conv.event", params=params)) + b"\n"


class Subscription:
    """One ``conv.subscribe``: delivers the account's changes as ``conv.event`` lines.

    While a resume replays the changes a client missed (or a sync frame sends the list),
    live changes are held back and sent after it, so the client sees every seq once and in
    order.
    """

    def __init__(self, subscription_id: int, session: Session, replaying: bool) -> None:
        self.id = subscription_id
        self._id_bytes = b"%d" % subscription_id
        self.token = 0
        self._session = session
        # Changes, and group changes in their place among them, held back while replaying.
        self._held: list[domain.Change | domain.GroupChange] | None = [] if replaying else None
        self.last_seq = 0

    def encode(self, change: domain.Change) -> bytes:
        """The change's ``conv.event`` line (newline included) for this subscription."""
        head, tail = self._session.encoder.parts(change)
        return head + self._id_bytes + tail

    def deliver(self, change: domain.Change) -> None:
        """The EventBus sink: never blocks; an overflow cuts the connection."""
        if change.seq <= self.last_seq:
            return
        if self._held is not None:
            if len(self._held) >= self._session.outbox_capacity:
                self._session.overflow(f"subscription {self.id} fell behind during resume")
                return
            self._held.append(change)
            return
        self.last_seq = change.seq
        self._session.push(self.encode(change))

    def held(self) -> list[domain.Change]:
        """The changes held back so far, oldest first (a copy; group changes left out)."""
        return [c for c in self._held or () if isinstance(c, domain.Change)]

    def release(self, skip: frozenset[int] | set[int] = frozenset()) -> None:
        """The replay is done: send what arrived meanwhile (but the seqs in ``skip``) and go
        live."""
        held, self._held = self._held or [], None
        for change in held:
            if isinstance(change, domain.GroupChange):
                # Not a change of the sequence: never part of a replay or a frame, never skipped.
                self.deliver_group(change)
            elif change.seq not in skip:
                self.deliver(change)

    def deliver_group(self, change: domain.GroupChange) -> None:
        """The EventBus group sink: a ``conv.group_event``, in order with the changes (held
        with them while replaying). Group changes are few: each is encoded per subscriber."""
        if self._held is not None:
            if len(self._held) >= self._session.outbox_capacity:
                self._session.overflow(f"subscription {self.id} fell behind during resume")
                return
            self._held.append(change)
            return
        params = group_event(change, self.id, self._session.encoder.conv_info)
        line = _encoder.encode(
            Notification(jsonrpc="2.0", method="conv.group_event", params=params)
        )
        self._session.push(line + b"\n")

    # Sync frames (conv.subscribe with sync): not changes, so encoded here, not cached.

    def start_line(self, seq: int, *, full: bool) -> bytes:
        """A sync frame's Start event."""
        return _notification(ConvEventStart(self.id, seq, "", full))

    def page_line(self, seq: int, conversations: list[ConvInfo]) -> bytes:
        """One page of a full sync frame: an Update event carrying the Start's seq."""
        return _notification(ConvEventUpdate(self.id, seq, "", conversations))

    def finish_line(self, seq: int) -> bytes:
        """A sync frame's Finish event."""
        return _notification(ConvEventFinish(self.id, seq, ""))


class Session:
    """The context every handler gets: the connection's identity, account and subscriptions.

    ``push`` (never blocks), ``send`` (waits for room) and ``overflow`` (cuts the connection)
    are provided by the connection that owns the session.
    """

    def __init__(
        self,
        origin: str,
        push: Callable[[bytes], None],
        send: Callable[[bytes], Awaitable[None]],
        overflow: Callable[[str], None],
        outbox_capacity: int,
        encoder: ChangeEncoder | None = None,
    ) -> None:
        self.origin = origin
        self.account: domain.Account | None = None
        self.subscriptions: dict[int, Subscription] = {}
        self.push = push
        self.send = send
        self.overflow = overflow
        self.outbox_capacity = outbox_capacity
        self.encoder = encoder or ChangeEncoder()
        self._next_subscription = 1
        #: Work to run after the current reply has been queued (a resume's replay).
        self.after_reply: list[Callable[[], Awaitable[None]]] = []

    def require_account(self) -> domain.Account:
        if self.account is None:
            raise domain.NotLoggedIn
        return self.account

    def new_subscription(self, replaying: bool) -> Subscription:
        subscription = Subscription(self._next_subscription, self, replaying)
        self._next_subscription += 1
        return subscription
