"""Fan-out of committed changes to the subscribers of each account."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

from .models import Change

__all__ = ["EventBus", "Sink"]

logger = logging.getLogger(__name__)

#: Receives one committed change. It must not block: a sink that cannot keep up drops its
#: subscriber (who resumes from its last seq) instead of delaying the writer.
Sink = Callable[[Change], None]


class EventBus:
    """Delivers every committed change to every sink registered for its account.

    ``publish`` is called from the store's after-commit hooks, which the group-commit writer
    runs on the event loop once a batch has committed, in commit order, before the next batch:
    sinks see changes in commit order and never an uncommitted one.
    """

    def __init__(self) -> None:
        self._sinks: dict[int, dict[int, Sink]] = {}
        self._tokens = itertools.count(1)

    def add(self, account_id: int, sink: Sink) -> int:
        token = next(self._tokens)
        self._sinks.setdefault(account_id, {})[token] = sink
        return token

    def remove(self, account_id: int, token: int) -> None:
        sinks = self._sinks.get(account_id)
        if sinks is not None:
            sinks.pop(token, None)
            if not sinks:
                del self._sinks[account_id]

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
