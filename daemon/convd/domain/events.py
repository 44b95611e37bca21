"""Fan-out of committed changes to the subscribers of each account."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

from .models import Change, GroupChange

__all__ = ["EventBus", "GroupSink", "Sink"]

logger = logging.getLogger(__name__)

#: Receives one committed change. It must not block: a sink that cannot keep up drops its
#: subscriber (who resumes from its last seq) instead of delaying the writer.
Sink = Callable[[Change], None]
#: Receives one committed change of the account's conversation groups; must not block either.
GroupSink = Callable[[GroupChange], None]


class EventBus:
    """Delivers every committed change to every sink registered for its account.

    ``publish`` is called from the store's after-commit hooks, which the group-commit writer
    runs on the event loop once a batch has committed, in commit order, before the next batch:
    sinks see changes in commit order and never an uncommitted one.
    """

    def __init__(self) -> None:
        self._sinks: dict[int, dict[int, Sink]] = {}
        self._group_sinks: dict[int, dict[int, GroupSink]] = {}
        self._tokens = itertools.count(1)

    def add(self, account_id: int, sink: Sink, group_sink: GroupSink | None = None) -> int:
        token = next(self._tokens)
        self._sinks.setdefault(account_id, {})[token] = sink
        if group_sink is not None:
            self._group_sinks.setdefault(account_id, {})[token] = group_sink
        return token

    def remove(self, account_id: int, token: int) -> None:
        sinks = self._sinks.get(account_id)
        if sinks is not None:
            sinks.pop(token, None)
            if not sinks:
                del self._sinks[account_id]
        group_sinks = self._group_sinks.get(account_id)
        if group_sinks is not None:
            group_sinks.pop(token, None)
            if not group_sinks:
                del self._group_sinks[account_id]

    def subscriber_count(self, account_id: int) -> int:
        return len(self._sinks.get(account_id, ()))

    def publish(self, account_id: int, change: Change) -> None:
        for token, sink in list(self._sinks.get(account_id, {}).items()):
            try:
                sink(change)
            except Exception:
                # One broken subscriber must not keep the change from the others.
                logger.exception("subscriber %d failed; dropping it", token)
                self.remove(account_id, token)

    def publish_group(self, account_id: int, change: GroupChange) -> None:
        """Deliver a change of the account's conversation groups, like :meth:`publish`."""
        for token, sink in list(self._group_sinks.get(account_id, {}).items()):
            try:
                sink(change)
            except Exception:
                logger.exception("subscriber %d failed; dropping it", token)
                self.remove(account_id, token)
