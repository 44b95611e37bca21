"""Only the daemon's owner gets in: a listener that checks every peer's uid on accept.

The kernel records who called connect(): ``SO_PEERCRED`` on Linux, ``getpeereid`` on the
BSDs and macOS. A connection from any other uid is closed before a byte is read, and logged
on one line with the peer's pid and uid.

Root is *not* let in (unlike ssh-agent). A root process that needs the daemon can act as the
user (``runuser -u USER -- convctl ...``); refusing it keeps one rule with no exception, and a
daemon running as root serves root only. The socket's 0600 mode in a 0700 directory is the
first gate; this check is the second, for when the first is misconfigured.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio.abc import Listener, SocketListener, SocketStream
from anyio.abc import TaskGroup as AbstractTaskGroup

from convd_schemas.peer import PeerCredentials, describe_peer, peer_credentials, raw_unix_socket

__all__ = ["PeerCheckedListener", "PeerCredentials", "describe_peer", "peer_credentials"]

logger = logging.getLogger(__name__)

# accept() failures that say "not now" rather than "broken": wait a little and go on.
_TRANSIENT_ACCEPT_ERRORS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED, errno.EPROTO}
)
_ACCEPT_BACKOFF = 0.1


class PeerCheckedListener(Listener[SocketStream]):
    """Wraps a Unix-socket listener; hands the handler only connections from ``uid``."""

    def __init__(self, listener: SocketListener, uid: int | None = None) -> None:
        self._listener = listener
        self._uid = os.getuid() if uid is None else uid

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._listener.extra_attributes

    async def aclose(self) -> None:
        await self._listener.aclose()

    async def serve(
        self,
        handler: Callable[[SocketStream], Any],
        task_group: AbstractTaskGroup | None = None,
    ) -> None:
        async with AsyncExitStack() as stack:
            if task_group is None:
                task_group = await stack.enter_async_context(anyio.create_task_group())
            while True:
                try:
                    stream = await self._listener.accept()
                except OSError as exc:
                    if exc.errno not in _TRANSIENT_ACCEPT_ERRORS:
                        raise
                    logger.error("cannot accept a connection: %s; retrying", exc)
                    await anyio.sleep(_ACCEPT_BACKOFF)
                    continue
                if self._admit(stream):
                    task_group.start_soon(handler, stream)
                else:
                    with anyio.CancelScope(shield=True):
                        await stream.aclose()

    def _admit(self, stream: SocketStream) -> bool:
        raw = raw_unix_socket(stream)
        if raw is None:
            logger.warning("refused connection: not a Unix socket, so its owner is unknown")
            return False
        try:
            peer = peer_credentials(raw)
        except OSError as exc:
            logger.warning("refused connection: cannot read the peer's credentials: %s", exc)
            return False
        if peer.uid != self._uid:
            logger.warning(
                "refused connection from %s: only uid %d may use this daemon", peer, self._uid
            )
            return False
        return True
