"""Per-connection state: who is logged in, and the connection's subscriptions."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec

from convd_schemas import ConvEventParams, Notification, TIMConvEvent

from .. import domain
from .convert import conv_info, deleted_conv

__all__ = ["Session", "Subscription"]

logger = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()


class Subscription:
    """One ``conv.subscribe``: delivers the account's changes as ``conv.event`` lines.

    While a resume replays the changes a client missed, live changes are held back and sent
    after the replay, so the client sees every seq once and in order.
    """

    def __init__(self, subscription_id: int, session: Session, replaying: bool) -> None:
        self.id = subscription_id
        self.token = 0
        self._session = session
        self._held: list[domain.Change] | None = [] if replaying else None
        self.last_seq = 0

    def encode(self, change: domain.Change) -> bytes:
        if change.conversation is None:
            conv_array = [deleted_conv(change.key)]
        else:
            conv_array = [msgspec.to_builtins(conv_info(change.conversation))]
        params = ConvEventParams(
            subscription=self.id,
            seq=change.seq,
            event=TIMConvEvent(int(change.kind)),
            conv_array=conv_array,
            origin=change.origin,
        )
        return _encoder.encode(Notification(jsonrpc="2.0", method="conv.event", params=params))

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
        self._session.push(self.encode(change) + b"\n")

    def release(self) -> None:
        """The replay is done: send what arrived meanwhile and go live."""
        held, self._held = self._held or [], None
        for change in held:
            self.deliver(change)


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
    ) -> None:
        self.origin = origin
        self.account: domain.Account | None = None
        self.subscriptions: dict[int, Subscription] = {}
        self.push = push
        self.send = send
        self.overflow = overflow
        self.outbox_capacity = outbox_capacity
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
