"""The composition root: wires store, domain, rpc and transport, and runs until a signal."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from anyio.abc import SocketListener

from convd_schemas import StoreStatus, __version__
from convd_schemas.limits import MAX_LINE_BYTES
from convd_schemas.openrpc import build_openrpc

from .config import Config
from .domain import ConversationService, EventBus
from .rpc import RpcServer
from .rpc.dispatcher import load as load_dispatcher
from .store import lock_database, open_store
from .transport import (
    InheritedSocket,
    Notifier,
    UnixChannelListener,
    bind_unix_listener,
    check_listening_unix_socket,
    inherited_unix_listener,
    listen_fds,
    pick_listen_fd,
)

__all__ = ["FD_NAME", "run_daemon"]

logger = logging.getLogger(__name__)

#: ``FileDescriptorName=`` of the socket in systemd/convd.socket.
FD_NAME = "convd"


@asynccontextmanager
async def _open_listener(
    config: Config, passed: list[InheritedSocket]
) -> AsyncIterator[tuple[SocketListener, Path, str]]:
    """The socket systemd passed, if any; else one convd binds (and later removes) itself."""
    if not passed:
        if config.runtime_dir_fallback:
            logger.warning(
                "XDG_RUNTIME_DIR is not set; using the private directory %s instead",
                config.socket_path.parent,
            )
        async with bind_unix_listener(config.socket_path) as listener:
            yield listener, config.socket_path, "bound by convd"
        return
    inherited = pick_listen_fd(passed, FD_NAME)
    for other in passed:
        if other is not inherited:
            logger.warning("ignoring passed socket fd %d (%s)", other.fd, other.name)
            os.close(other.fd)
    path = check_listening_unix_socket(inherited.fd)
    async with inherited_unix_listener(inherited.fd, path) as listener:
        yield (
            listener,
            Path(path) if path else config.socket_path,
            f"passed by systemd as fd {inherited.fd} ({inherited.name})",
        )


async def _watchdog(notifier: Notifier, interval: float) -> None:
    # The loop runs only while the event loop does: a wedged daemon misses its pings.
    while True:
        notifier.notify("WATCHDOG=1")
        await anyio.sleep(interval)


async def run_daemon(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, finish in-flight requests, close
    the database and (if convd bound it) remove the socket file.

    Under systemd: takes the listening socket from ``LISTEN_FDS``, sends ``READY=1`` once the
    database is open and the listener accepts, ``STOPPING=1`` on the way out, and
    ``WATCHDOG=1`` every half ``WATCHDOG_USEC``.
    """
    notifier = Notifier.from_environ()
    # Read (and unset) LISTEN_* first, before anything could spawn a child that inherits them.
    passed = listen_fds()
    with (
        anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals,
        lock_database(config.database_path),
    ):
        async with (
            open_store(config.database_path, durability=config.durability) as store,
            _open_listener(config, passed) as (listener, socket_path, origin),
        ):
            stats = store.stats
            server = RpcServer(
                ConversationService(store, EventBus()),
                build_openrpc(),
                socket_path=socket_path,
                database_path=config.database_path,
                store_status=lambda: StoreStatus(
                    durability=store.durability,
                    writes=stats.writes,
                    write_batches=stats.write_batches,
                    writer_thread_hops=stats.writer_thread_hops,
                    reader_thread_hops=stats.reader_thread_hops,
                ),
            )
            logger.info(
                "convd %s started (pid %d): serving %s (%s), database %s",
                __version__,
                os.getpid(),
                socket_path,
                origin,
                config.database_path,
            )
            async with anyio.create_task_group() as background:
                async with anyio.create_task_group() as tg:
                    channels = UnixChannelListener(
                        listener, max_line=MAX_LINE_BYTES, uid=os.getuid()
                    )
                    await tg.start(server.serve, channels)
                    notifier.notify("READY=1", f"STATUS=serving {socket_path}")
                    # Accepting already; the dispatcher's library loads meanwhile.
                    background.start_soon(anyio.to_thread.run_sync, load_dispatcher)
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
