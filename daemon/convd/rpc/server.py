"""Accepts connections and runs each in its own task, isolated from the others."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskStatus

from convd_schemas import DaemonStatus, StoreStatus, __version__

from .. import domain
from .channel import Channel, ChannelListener
from .connection import MAX_OUTBOUND_BYTES, Connection
from .dispatcher import Dispatcher
from .handlers import Methods
from .session import ChangeEncoder

__all__ = ["RpcServer"]

logger = logging.getLogger(__name__)

#: Connections served at once unless the composition root says otherwise (it fits them to
#: the process's open-file limit).
DEFAULT_MAX_CONNECTIONS = 1000


class RpcServer:
    """Serves the contract on any listener of byte streams.

    ``stop()`` stops accepting and lets every connection finish its request in progress;
    ``serve`` returns once they are all closed, or after ``grace`` seconds. A connection past
    ``max_connections`` open at once is closed as soon as it is accepted, so that one client
    cannot use up the daemon's file descriptors (or memory) and lock everyone else out.
    """

    def __init__(
        self,
        service: domain.ConversationService,
        openrpc: dict[str, Any] | Callable[[], dict[str, Any]],
        *,
        socket_path: Path,
        database_path: Path,
        store_status: Callable[[], StoreStatus] | None = None,
        outbox_size: int = 1024,
        max_outbound: int = MAX_OUTBOUND_BYTES,
        grace: float = 10.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self._service = service
        self._methods = Methods(service, self.status, openrpc)
        self._dispatcher = Dispatcher(self._methods.table(), Methods.writes())
        self._encoder = ChangeEncoder()
        self._socket_path = socket_path
        self._database_path = database_path
        self._store_status = store_status
        self._outbox_size = outbox_size
        self._max_outbound = max_outbound
        self._grace = grace
        self._max_connections = max_connections
        self._refusing = False  # logged once per run of refused connections
        self._ids = itertools.count(1)
        self._connections: set[Connection] = set()
        self._accept_scope = anyio.CancelScope()
        self._all_closed = anyio.Event()
        self._stopping = False
        self._started = time.monotonic()

    async def status(self) -> DaemonStatus:
        return DaemonStatus(
            version=__version__,
            pid=os.getpid(),
            uptime_seconds=round(time.monotonic() - self._started, 3),
            connections=len(self._connections),
            socket_path=str(self._socket_path),
            database_path=str(self._database_path),
            conversations=await self._service.count_conversations(),
            store=self._store_status() if self._store_status is not None else msgspec.UNSET,
        )

    async def serve(
        self,
        listener: ChannelListener,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async with anyio.create_task_group() as connections:
            with self._accept_scope:
                task_status.started()
                await listener.serve(self._handle, task_group=connections)
            # Close the listening socket now, not when the last connection is done: a client
            # that connects during the shutdown is refused at once instead of waiting in the
            # backlog. (A socket systemd passed stays open in systemd for the next start.)
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            with anyio.move_on_after(self._grace) as grace:
                await self._all_closed.wait()
            if grace.cancelled_caught:
                logger.warning(
                    "%d connection(s) did not finish within %.0f s; closing them",
                    len(self._connections),
                    self._grace,
                )
                # Dropped, not flushed: a client that reads nothing would otherwise hold the
                # stop for its channel's flush timeout on top of the grace.
                for connection in list(self._connections):
                    connection.abort()
            connections.cancel_scope.cancel()

    def stop(self) -> None:
        self._stopping = True
        self._accept_scope.cancel()
        for connection in list(self._connections):
            connection.stop()
        if not self._connections:
            self._all_closed.set()

    async def _handle(self, channel: Channel) -> None:
        if len(self._connections) >= self._max_connections:
            if not self._refusing:  # once per run of refusals: a client retrying in a loop
                self._refusing = True
                logger.warning(
                    "%d connections are open, the most convd serves at once: closing new ones "
                    "until some end",
                    len(self._connections),
                )
            channel.abort()
            return
        if self._refusing:
            self._refusing = False
            logger.info("accepting connections again")
        connection = Connection(
            channel,
            self._dispatcher,
            f"c{next(self._ids)}",
            outbox_size=self._outbox_size,
            max_outbound=self._max_outbound,
            encoder=self._encoder,
        )
        self._connections.add(connection)
        peer = channel.peer
        logger.info("connection %s opened%s", connection.origin, f" ({peer})" if peer else "")
        try:
            if self._stopping:
                channel.abort()
                return
            await connection.run()
        except Exception:
            # One connection's failure must never reach the task group of the others.
            logger.exception("connection %s failed", connection.origin)
        finally:
            self._methods.end_subscriptions(connection.session)
            self._connections.discard(connection)
            logger.info("connection %s closed", connection.origin)
            if self._stopping and not self._connections:
                self._all_closed.set()
