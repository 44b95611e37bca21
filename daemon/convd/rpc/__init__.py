"""JSON-RPC: the dispatcher (the only user of jsonrpcserver), methods, connections, server."""

from __future__ import annotations

from .server import RpcServer

__all__ = ["RpcServer"]
