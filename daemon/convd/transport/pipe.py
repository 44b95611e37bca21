"""The daemon's listener on Windows: the named pipe ``\\\\.\\pipe\\convd-<user SID>``.

The counterpart of :class:`~convd.transport.channel.UnixChannelListener`, seen by the rpc
layer only as a ``ChannelListener`` handing out ``Channel`` objects (each a
:class:`~convd.transport.channel.StreamChannel` over a
:class:`~convd_schemas.winpipe.PipeStream`). Who gets in:

* the pipe's DACL lets in only the owner and LocalSystem (``winpipe.pipe_sddl``), and remote
  clients are rejected by the kernel (``PIPE_REJECT_REMOTE_CLIENTS``);
* its first instance is created with ``FILE_FLAG_FIRST_PIPE_INSTANCE`` when the listener is
  made, so a second daemon (or anyone who took the name first) makes this one refuse to start;
* every accepted client's process is looked up (``GetNamedPipeClientProcessId``, then its
  token's user SID) and anyone but the owner is logged and disconnected before a byte is read.

The Win32 calls are behind ``winpipe.PipeSystem``; everything in this module runs in the Linux
test suite against a fake of it (tests/unit/test_pipe_listener.py). It has not run on Windows
on the machine it was written on; the Windows CI job runs it against real pipes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.lowlevel import checkpoint

from convd_schemas.winpipe import (
    ERROR_ACCESS_DENIED,
    PipeStream,
    PipeSystem,
    ServerPipe,
    describe_pipe_peer,
    pipe_sddl,
    refuse_client,
    win32_pipes,
)

from .channel import DEFAULT_HIGH_WATER, StreamChannel

__all__ = ["NamedPipeChannelListener", "PipeInUse"]

logger = logging.getLogger(__name__)

# After the handler returns, what it queued (its last replies) may take this long to be
# taken by the client before the pipe is cut.
_FLUSH_GRACE = 5.0
# Waits between attempts when a new pipe instance cannot be created.
_RETRY_FIRST = 0.05
_RETRY_MAX = 2.0


class PipeInUse(Exception):
    """The pipe's name is taken: another convd serves it, or another process created it."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"the named pipe {name} already exists: another convd is serving it, or another "
            "process created it first; convd will not share it"
        )
        self.name = name


class NamedPipeChannelListener:
    """Serves the named pipe ``name`` as channels; only ``owner_sid``'s processes get in.

    Creating it creates the pipe's first instance (raising :class:`PipeInUse` if the name
    exists), so that a second daemon is refused before it opens anything else.

    :param name: the pipe (``winpipe.default_pipe_name``)
    :param max_line: the channels' line limit
    :param owner_sid: who may connect (default: this process's user)
    :param system: the Win32 calls (default: the real ones; Windows only)
    :param high_water: the channels' outbound high-water mark
    """

    def __init__(
        self,
        name: str,
        *,
        max_line: int,
        owner_sid: str | None = None,
        system: PipeSystem | None = None,
        high_water: int = DEFAULT_HIGH_WATER,
    ) -> None:
        self._system = system if system is not None else win32_pipes()
        self.name = name
        self.owner_sid = owner_sid if owner_sid is not None else self._system.current_user_sid()
        self._sddl = pipe_sddl(self.owner_sid)
        self._max_line = max_line
        self._high_water = high_water
        self._closed = False
        try:
            first = self._system.create_server_pipe(name, self._sddl, first=True)
        except OSError as exc:
            if getattr(exc, "winerror", None) == ERROR_ACCESS_DENIED:
                raise PipeInUse(name) from exc
            raise
        # The instance waiting for the next client; there is one from here until aclose(),
        # so a client never finds the name missing while convd runs.
        self._listening: ServerPipe | None = first

    async def serve(self, handler: Callable[[Any], Awaitable[None]], task_group: TaskGroup) -> None:
        """Accept clients until cancelled or closed; each admitted one runs ``handler`` in
        ``task_group`` with its channel."""
        while not self._closed:
            pipe = self._listening
            if pipe is None:
                pipe = self._listening = await self._new_instance()
                if pipe is None:
                    return
            try:
                await pipe.wait_for_client()
            except OSError as exc:
                self._listening = None
                pipe.close()
                if self._closed:
                    return
                # A client that connected and left before it was accepted (ERROR_NO_DATA).
                logger.debug("pipe instance of %s failed before use: %s", self.name, exc)
                continue
            # Another instance listens before this client is looked at.
            self._listening = None
            if self._closed:
                pipe.close()
                return
            self._listening = await self._new_instance()
            peer = self._admit(pipe)
            if peer is None:
                pipe.close()
                continue
            pid, sid = peer
            stream = PipeStream(pipe, peer_pid=pid, peer_sid=sid)
            task_group.start_soon(self._run_handler, handler, stream, describe_pipe_peer(pid, sid))

    async def aclose(self) -> None:
        """Stop accepting: the listening instance is closed, so new clients find no pipe."""
        self.close()
        await checkpoint()

    def close(self) -> None:
        """``aclose`` without waiting (for an ExitStack); idempotent."""
        self._closed = True
        pipe, self._listening = self._listening, None
        if pipe is not None:
            pipe.close()

    async def _new_instance(self) -> ServerPipe | None:
        # A failure here must not end serve(): every client would be cut (finding 12). Retry
        # with backoff, as long as the listener is open.
        delay = _RETRY_FIRST
        while not self._closed:
            try:
                return self._system.create_server_pipe(self.name, self._sddl, first=False)
            except OSError as exc:
                logger.error(
                    "cannot create an instance of %s (retrying in %.2g s): %s",
                    self.name,
                    delay,
                    exc,
                )
            await anyio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)
        return None

    def _admit(self, pipe: ServerPipe) -> tuple[int, str] | None:
        """The client's (pid, SID) if it may use this daemon; else None (logged)."""
        pid: int | None = None
        try:
            pid = pipe.client_pid()
            sid = self._system.process_user_sid(pid)
        except OSError as exc:
            # The process may already have exited: without its SID, nobody is let in.
            who = "a client" if pid is None else f"pid {pid}"
            logger.warning("refused connection from %s: cannot tell who it runs as: %s", who, exc)
            return None
        reason = refuse_client(sid, self.owner_sid)
        if reason is not None:
            logger.warning("refused connection from %s: %s", describe_pipe_peer(pid, sid), reason)
            return None
        return pid, sid

    async def _run_handler(
        self, handler: Callable[[Any], Awaitable[None]], stream: PipeStream, peer: str
    ) -> None:
        channel = StreamChannel(stream, self._max_line, self._high_water)
        channel.peer = peer
        async with anyio.create_task_group() as tg:
            tg.start_soon(channel.write_queued)
            try:
                await handler(channel)
            finally:
                # Unlike the socket channel, whose close() hands its bytes to the OS at once,
                # this one sends from a task: give what the handler queued before closing a
                # bounded time to go out, then cut the pipe.
                channel.close()
                tg.cancel_scope.deadline = anyio.current_time() + _FLUSH_GRACE
