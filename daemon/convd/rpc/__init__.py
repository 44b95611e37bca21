"""JSON-RPC: the dispatcher (the only user of jsonrpcserver), methods, connections, server."""

from __future__ import annotations

from .convert import ConvListing
from .server import RpcServer

__all__ = ["ConvListing", "RpcServer"]
