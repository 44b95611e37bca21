"""Only the daemon's owner gets in: every accepted connection's uid is checked (SO_PEERCRED).

The real test runs a client as ``nobody`` against a running daemon. The socket is 0600 in a
0700 directory, so nobody could not even reach it: after the daemon has started (and checked
its directory), the test opens the path up (directories 0711, socket 0666), which is exactly
the misconfiguration the uid check exists for. The client drops to nobody in its own process
*before* connect(), since the kernel records the credentials at connect time.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from typing import Any

import anyio
import pytest

from convd.transport import UnixChannelListener, peer_credentials
from ops_support import wait_for
from support import DaemonProcess, short_tmpdir

NOBODY = 65534

_CLIENT_AS_NOBODY = textwrap.dedent(
    """
    import json, os, socket, sys
    os.setgroups([])
    os.setgid({uid})
    os.setuid({uid})
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(sys.argv[1])
    reply = b""
    try:
        sock.sendall(b'{{"jsonrpc":"2.0","id":1,"method":"daemon.status"}}\\n')
        while chunk := sock.recv(65536):
            reply += chunk
        outcome = "eof"
    except ConnectionResetError:
        outcome = "reset"
    except BrokenPipeError:
        outcome = "broken pipe"
    print(json.dumps({{"uid": os.getuid(), "pid": os.getpid(), "outcome": outcome,
                      "reply": reply.decode(errors="replace")}}))
    """
).format(uid=NOBODY)


def test_peer_credentials_name_the_connecting_process() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        peer = peer_credentials(a)
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert str(peer) == f"pid {os.getpid()} uid {os.getuid()} gid {os.getgid()}"


async def _serve_once(owner_uid: int) -> tuple[list[Any], bytes]:
    """Serve one connection through the daemon's UnixChannelListener; return the channels the
    handler got and what the client read."""
    handled: list[Any] = []
    with short_tmpdir() as directory:
        path = directory / "s.sock"
        listener = UnixChannelListener(
            await anyio.create_unix_listener(path), max_line=1024, uid=owner_uid
        )

        async def handler(channel: Any) -> None:
            handled.append(channel)
            channel.send(b"welcome\n")
            channel.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler, tg)
            async with await anyio.connect_unix(path) as client:
                received = b""
                try:
                    while chunk := await client.receive():
                        received += chunk
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
            tg.cancel_scope.cancel()
        await listener.aclose()
    return handled, received


@pytest.mark.anyio
async def test_listener_hands_over_the_owners_connections() -> None:
    handled, received = await _serve_once(os.getuid())
    assert len(handled) == 1
    assert received == b"welcome\n"


@pytest.mark.anyio
async def test_listener_closes_and_logs_another_uids_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = os.getuid() + 1
    with caplog.at_level(logging.WARNING, logger="convd.transport.channel"):
        handled, received = await _serve_once(other)
    assert handled == []
    assert received == b""
    [record] = [r for r in caplog.records if "refused" in r.getMessage()]
    assert record.getMessage() == (
        f"refused connection from pid {os.getpid()} uid {os.getuid()} gid {os.getgid()}: "
        f"only uid {other} may use this daemon"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="running a client as nobody needs root")
def test_a_client_running_as_nobody_is_refused_while_the_owner_keeps_working(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as owner:
        owner.call("conv.create", {"conv_id": "bob", "conv_type": 1})
        # Open the path to everyone, to reach the daemon's own check.
        os.chmod(daemon.root, 0o711)
        os.chmod(daemon.socket.parent, 0o711)
        os.chmod(daemon.socket, 0o666)
        result = subprocess.run(
            [sys.executable, "-I", "-c", _CLIENT_AS_NOBODY, str(daemon.socket)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        intruder = json.loads(result.stdout)
        assert intruder["uid"] == NOBODY
        # Closed without a byte of reply.
        assert intruder["reply"] == ""
        assert intruder["outcome"] in ("eof", "reset", "broken pipe")

        # The owner's open connection, and new ones, are unaffected.
        page = owner.call("conv.list")
        assert [c["conv_id"] for c in page["conversation_list_result_conv_list"]] == ["bob"]
    with daemon.client() as again:
        assert again.call("conv.get", {"convs": [{"conv_id": "bob", "conv_type": 1}]})

    line = wait_for(
        lambda: next((x for x in daemon.logs().splitlines() if "refused connection" in x), None),
        what="the refusal in the log",
    )
    assert f"refused connection from pid {intruder['pid']} uid {NOBODY} gid {NOBODY}" in line
    assert f"only uid {os.getuid()} may use this daemon" in line
    assert "WARNING convd.transport." in line
    # The refused peer never became a connection: its uid shows up on that one line only.
    assert [x for x in daemon.logs().splitlines() if f"uid {NOBODY}" in x] == [line]


def test_owner_connections_are_logged_with_their_credentials(daemon: DaemonProcess) -> None:
    with daemon.client(None) as client:
        assert client.call("daemon.status")["connections"] >= 1
    pid = os.getpid()
    opened = wait_for(
        lambda: [x for x in daemon.logs().splitlines() if f"(pid {pid} uid" in x],
        what="the opened line",
    )
    assert f"uid {os.getuid()} gid {os.getgid()})" in opened[-1]
