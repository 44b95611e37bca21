"""The client talks only to a daemon run by its own user (a socket path could be squatted)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from convd_client import Client, DaemonUnavailable
from support import DaemonProcess

pytestmark = pytest.mark.anyio

# Drops to the given uid/gid, listens on the socket, then reports every byte a client sent.
_SQUATTER = r"""
import os, socket, sys
path, uid, gid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(5)
print("ready", flush=True)
server.settimeout(20)
conn, _ = server.accept()
conn.settimeout(20)
received = b""
while True:
    chunk = conn.recv(65536)
    if not chunk:
        break
    received += chunk
print(f"received {len(received)} {received!r}", flush=True)
"""


def test_refuses_a_daemon_run_by_another_user(short_dir: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to run the fake daemon as another user")
    nobody = pwd.getpwnam("nobody")
    short_dir.chmod(0o711)  # traversable, so the other user can bind inside
    run = short_dir / "run"
    run.mkdir()
    os.chown(run, nobody.pw_uid, nobody.pw_gid)
    socket_path = run / "convd.sock"
    squatter = subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-c",
            _SQUATTER,
            str(socket_path),
            str(nobody.pw_uid),
            str(nobody.pw_gid),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert squatter.stdout is not None
        assert squatter.stdout.readline().strip() == "ready"
        assert socket_path.stat().st_uid == nobody.pw_uid

        async def connect() -> None:
            async with Client(socket_path, reconnect=False):
                pass

        with pytest.raises(DaemonUnavailable) as caught:
            anyio.run(connect, backend="asyncio")
        message = str(caught.value)
        assert str(socket_path) in message
        assert f"uid {nobody.pw_uid}" in message
        assert f"expected uid {os.getuid()}" in message
        out, _ = squatter.communicate(timeout=20)
    finally:
        if squatter.poll() is None:
            squatter.kill()
            squatter.wait()
        if squatter.stdout is not None:
            squatter.stdout.close()
    assert out.strip() == "received 0 b''"


async def test_keeps_refusing_while_reconnecting(shared_daemon: DaemonProcess) -> None:
    # The real daemon runs as this user; a client expecting someone else refuses it too, also
    # when it starts disconnected and keeps retrying.
    async with Client(
        shared_daemon.socket,
        require_connection=False,
        backoff_max=0.05,
        _expected_uid=os.getuid() + 1,
    ) as client:
        with pytest.raises(DaemonUnavailable, match=rf"served by uid {os.getuid()}\b"):
            await client.daemon_status()
        assert not client.connected
