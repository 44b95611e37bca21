"""The composition root: wires store, domain, rpc and transport, and runs until a signal."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import SocketListener

from convd_schemas import StoreStatus, __version__
from convd_schemas.limits import MAX_LINE_BYTES
from convd_schemas.openrpc import build_openrpc

from .allocator import keep_big_blocks
from .config import Config
from .domain import ConversationService, EventBus
from .placement import SharedCpu, name_thread
from .rpc import ConvListing, RpcServer
from .rpc.channel import ChannelListener
from .rpc.dispatcher import load as load_dispatcher
from .rpc.server import DEFAULT_MAX_CONNECTIONS
from .store import StartedCheck, lock_database, open_store
from .transport import (
    InheritedSocket,
    Notifier,
    UnixChannelListener,
    check_listening_unix_socket,
    ensure_private_dir,
    inherited_unix_listener,
    listen_fds,
    pick_listen_fd,
)
from .transport.unix import claim_socket_path, listen_on_claimed_path, socket_lock_path

if TYPE_CHECKING:
    from convd_schemas.winpipe import PipeSystem

    from .transport.pipe import NamedPipeChannelListener

__all__ = ["FD_NAME", "run_daemon"]

logger = logging.getLogger(__name__)

#: ``FileDescriptorName=`` of the socket in systemd/convd.socket.
FD_NAME = "convd"


class _ListenerPlan:
    """Where convd will listen, checked (and the path claimed) before anything else is made."""

    def __init__(
        self,
        inherited: InheritedSocket | None,
        path: Path,
        origin: str,
        pipe: NamedPipeChannelListener | None = None,
    ) -> None:
        self.inherited = inherited
        self.path = path
        self.origin = origin
        self.pipe = pipe  # Windows: the named pipe, its first instance already created


class _AcceptFailures:
    """The event loop's exception handler, quieter about one error: asyncio logs a traceback
    for each accept() that fails for want of a descriptor (EMFILE), up to a hundred per
    wake-up while the listening socket stays readable; a line a minute says as much."""

    _MESSAGE = "socket.accept() out of system resource"
    _EVERY = 60.0

    def __init__(self) -> None:
        self._logged_at: float | None = None
        self._unlogged = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self._MESSAGE:
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if self._logged_at is not None and now - self._logged_at < self._EVERY:
            self._unlogged += 1
            return
        logger.error(
            "cannot accept connections: %s (%d more since the last such line); convd retries",
            context.get("exception"),
            self._unlogged,
        )
        self._logged_at, self._unlogged = now, 0


#: File descriptors kept for the daemon's own use when connections are fitted to the
#: open-file limit: the database's files and connections, locks, the event loop, a backup.
_RESERVED_FDS = 64


def _connections_allowed() -> int:
    """As many connections at once as the open-file limit leaves room for, at most
    DEFAULT_MAX_CONNECTIONS. The soft limit is raised towards that first, where the hard
    limit and the sandbox allow (convd's systemd unit refuses setrlimit: EPERM)."""
    try:
        import resource
    except ImportError:  # Windows: the named pipe's instances are bounded by the pipe
        return DEFAULT_MAX_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = DEFAULT_MAX_CONNECTIONS + _RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (OSError, ValueError):
            pass
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNECTIONS
    return max(1, min(DEFAULT_MAX_CONNECTIONS, soft - _RESERVED_FDS))


def _plan_listener(
    config: Config, passed: list[InheritedSocket], stack: ExitStack
) -> _ListenerPlan:
    """The socket systemd passed, if any (checked); else claim the path convd will bind."""
    if not passed:
        if config.runtime_dir_fallback:
            logger.warning(
                "XDG_RUNTIME_DIR is not set; using the private directory %s instead",
                config.socket_path.parent,
            )
        stack.enter_context(claim_socket_path(config.socket_path, config.role))
        return _ListenerPlan(None, config.socket_path, "bound by convd")
    inherited = pick_listen_fd(passed, FD_NAME)
    for other in passed:
        if other is not inherited:
            logger.warning("ignoring passed socket fd %d (%s)", other.fd, other.name)
            os.close(other.fd)
    path = check_listening_unix_socket(inherited.fd)
    if path.startswith("/"):
        ensure_private_dir(Path(path).parent)
    return _ListenerPlan(
        inherited,
        Path(path) if path else config.socket_path,
        f"passed by systemd as fd {inherited.fd} ({inherited.name})",
    )


# -- Windows (issue 9 section 4): the named pipe instead of the Unix socket ------------------
# Not run on Windows yet: convd.app does not import there (the store's lock file needs fcntl)
# and run_daemon waits for POSIX signals. The rest of the daemon is POSIX-only today.


def _plan_pipe(config: Config, stack: ExitStack, system: PipeSystem | None = None) -> _ListenerPlan:
    """The named pipe ``--socket``/``$CONVD_SOCKET`` names, else the user's own
    (``winpipe.pipe_name``); its first instance is created now, so that a second convd is
    refused before anything else is opened."""
    # Imported here: Linux never needs them, and they cost start-up time.
    from convd_schemas.winpipe import PIPE_PREFIX, check_pipe_name, pipe_name, win32_pipes

    from .transport.pipe import NamedPipeChannelListener

    system = system if system is not None else win32_pipes()
    requested = str(config.socket_path)
    if requested.startswith(PIPE_PREFIX):
        name = check_pipe_name(requested)
    else:
        name = pipe_name(system.current_user_sid())
    pipe = NamedPipeChannelListener(name, max_line=MAX_LINE_BYTES, system=system)
    stack.callback(pipe.close)
    return _ListenerPlan(None, Path(name), "named pipe, this user and SYSTEM only", pipe)


@asynccontextmanager
async def _open_channels(plan: _ListenerPlan) -> AsyncIterator[ChannelListener]:
    if plan.pipe is not None:
        yield plan.pipe
        return
    async with _open_listener(plan) as listener:
        yield UnixChannelListener(listener, max_line=MAX_LINE_BYTES, uid=os.getuid())


# -- end of the Windows part ------------------------------------------------------------------


@asynccontextmanager
async def _open_listener(plan: _ListenerPlan) -> AsyncIterator[SocketListener]:
    if plan.inherited is None:
        async with listen_on_claimed_path(plan.path) as listener:
            yield listener
        return
    async with inherited_unix_listener(plan.inherited.fd, str(plan.path)) as listener:
        yield listener


async def _watchdog(notifier: Notifier, interval: float) -> None:
    # The loop runs only while the event loop does: a wedged daemon misses its pings.
    while True:
        notifier.notify("WATCHDOG=1")
        await anyio.sleep(interval)


def _load_and_freeze() -> None:
    """Load the dispatcher's library, then move every object alive by then (modules, the
    contract, jsonrpcserver and the jsonschema it imports: tens of thousands) out of the
    garbage collector's generations. They live as long as the daemon anyway, and every full
    collection walked them all: a page of 1,000 conversations allocates enough to trigger
    collections, and each one cost milliseconds. Last, malloc keeps the big blocks such
    pages need (convd.allocator): off the start-up path too, ctypes is a slow import."""
    load_dispatcher()
    gc.freeze()
    keep_big_blocks()


async def run_daemon(config: Config, check: StartedCheck | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, finish in-flight requests, close
    the database and (if convd bound it) remove the socket file.

    ``check``: the database's check, already started (see ``store.StartedCheck``); its
    verdict is taken in order, after the socket and the lock.

    Under systemd: takes the listening socket from ``LISTEN_FDS``, sends ``READY=1`` once the
    database is open and the listener accepts, ``STOPPING=1`` on the way out, and
    ``WATCHDOG=1`` every half ``WATCHDOG_USEC``.
    """
    asyncio.get_running_loop().set_exception_handler(_AcceptFailures())
    notifier = Notifier.from_environ()
    # Read (and unset) LISTEN_* first, before anything could spawn a child that inherits them.
    passed = listen_fds()
    with (
        anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals,
        ExitStack() as claims,
    ):
        # Everything that can refuse comes before anything is created, cheapest first: the
        # socket (its directory, and another convd serving it), then the database's directory
        # and lock, then the file itself (checked read-only inside open_store). A refused
        # convd leaves no database behind, and never touches one it does not own.
        if sys.platform == "win32":  # Windows (issue 9 section 4): the named pipe
            plan = _plan_pipe(config, claims)
        else:
            plan = _plan_listener(config, passed, claims)
        claims.enter_context(lock_database(config.database_path, config.role))
        shared_cpu = SharedCpu.for_this_thread() if config.same_cpu else None
        # A backup must not replace them: clients could no longer reach this daemon.
        daemon_files: dict[Path, str] = {}
        if sys.platform != "win32":
            daemon_files[plan.path] = "the daemon's socket"
            if plan.inherited is None:  # (a socket systemd passed has no lock of ours)
                daemon_files[socket_lock_path(plan.path)] = "the daemon's socket lock file"
        async with (
            open_store(
                config.database_path,
                listing=ConvListing(),
                durability=config.durability,
                kept_changes=config.kept_changes,
                kept_seconds=config.kept_seconds,
                draft_history=config.draft_history,
                draft_history_seconds=config.draft_history_seconds,
                check=check,
                writer_thread_start=partial(name_thread, "convd-writer"),
                writer_pacing=shared_cpu,
                worker_thread_start=None if shared_cpu is None else shared_cpu.free_this_thread,
                daemon_files=daemon_files,
            ) as store,
            _open_channels(plan) as channels,
        ):
            socket_path, origin = plan.path, plan.origin
            stats = store.stats
            server = RpcServer(
                ConversationService(store, EventBus()),
                build_openrpc,
                socket_path=socket_path,
                database_path=config.database_path,
                store_status=lambda: StoreStatus(
                    durability=store.durability,
                    writes=stats.writes,
                    write_batches=stats.write_batches,
                    writer_thread_hops=stats.writer_thread_hops,
                    reader_thread_hops=stats.reader_thread_hops,
                    wal_restarts=stats.wal_restarts,
                ),
                max_connections=_connections_allowed(),
            )
            logger.info(
                "convd %s started (pid %d): serving %s (%s), database %s (durability %s), "
                "event loop %s",
                __version__,
                os.getpid(),
                socket_path,
                origin,
                config.database_path,
                config.durability,
                type(asyncio.get_running_loop()).__module__.split(".")[0],
            )
            async with anyio.create_task_group() as background:
                async with anyio.create_task_group() as tg:
                    await tg.start(server.serve, channels)
                    notifier.notify("READY=1", f"STATUS=serving {socket_path}")
                    # Accepting already; the dispatcher's library loads meanwhile.
                    background.start_soon(anyio.to_thread.run_sync, _load_and_freeze)
                    interval = Notifier.watchdog_interval()
                    if interval is not None and notifier.enabled:
                        logger.debug("pinging the systemd watchdog every %.3g s", interval)
                        background.start_soon(_watchdog, notifier, interval)
                    async for signum in signals:
                        logger.info("received %s; stopping", signal.Signals(signum).name)
                        break
                    notifier.notify("STOPPING=1", "STATUS=stopping")
                    server.stop()
                background.cancel_scope.cancel()
    logger.info(
        "convd %s stopped: socket %s, database %s",
        __version__,
        socket_path,
        config.database_path,
    )
