"""Only the daemon's owner gets in: who is at the other end of a connection.

The kernel records who called connect(): ``SO_PEERCRED`` on Linux, ``getpeereid`` on the
BSDs and macOS (``convd_schemas.peer``). The listener (transport/channel.py) reads it for every
connection before a byte is read, and closes one from any other uid, logging it on one line
with the peer's pid and uid.

Root is *not* let in (unlike ssh-agent). A root process that needs the daemon can act as the
user (``runuser -u USER -- convctl ...``); refusing it keeps one rule with no exception, and a
daemon running as root serves root only. The socket's 0600 mode in a 0700 directory is the
first gate; this check is the second, for when the first is misconfigured.
"""

from __future__ import annotations

from convd_schemas.peer import PeerCredentials, describe_peer, peer_credentials

__all__ = ["PeerCredentials", "describe_peer", "peer_credentials"]
