"""convd, the daemon: conversations and drafts over JSON-RPC 2.0 on a Unix socket.

Layers, imported one way: ``transport`` (bytes, framing, listeners) -> ``rpc`` (JSON-RPC,
connections; the only user of jsonrpcserver) -> ``domain`` (conversations, drafts, events)
<- ``store`` (SQL). ``app`` is the composition root; ``cli`` the ``convd`` command.
"""

from __future__ import annotations

from convd_schemas import __version__

__all__ = ["__version__"]
