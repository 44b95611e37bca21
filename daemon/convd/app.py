"""The composition root: wires store, domain, rpc and transport, and runs until a signal."""

from __future__ import annotations

import logging
import signal

import anyio

from convd_schemas import __version__
from convd_schemas.openrpc import build_openrpc

from .config import Config
from .domain import ConversationService, EventBus
from .rpc import RpcServer
from .store import open_store
from .transport import bind_unix_listener

__all__ = ["run_daemon"]

logger = logging.getLogger(__name__)


async def run_daemon(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, finish in-flight requests, close
    the database and remove the socket file."""
    if config.runtime_dir_fallback:
        logger.warning(
            "XDG_RUNTIME_DIR is not set; using the private directory %s instead",
            config.socket_path.parent,
        )
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_store(config.database_path) as store:
            service = ConversationService(store, EventBus())
            server = RpcServer(
                service,
                build_openrpc(),
                socket_path=config.socket_path,
                database_path=config.database_path,
            )
            async with bind_unix_listener(config.socket_path) as listener:
                logger.info(
                    "convd %s serving %s (database %s)",
                    __version__,
                    config.socket_path,
                    config.database_path,
                )
                async with anyio.create_task_group() as tg:
                    await tg.start(server.serve, listener)
                    async for signum in signals:
                        logger.info("received %s; stopping", signal.Signals(signum).name)
                        break
                    server.stop()
        logger.info("convd stopped")
