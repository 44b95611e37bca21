"""A subscriber that stops reading its socket, then resumes and catches up.

Usage: ``stalled_subscriber.py USER COUNT``. Speaks the wire protocol (NDJSON JSON-RPC) over a
raw Unix socket, because it must truly stop reading: a ``Client`` reads its socket in its own
task whatever its listeners do.

1. Connects to ``$CONVD_SOCKET`` with a small receive buffer, logs in, subscribes, emits
   ``ready`` (with the subscription's ``seq`` and the connection's ``origin``); then blocks on
   stdin, reading nothing from the socket.
2. On ``{"cmd": "resume"}`` it reads what reached it before the daemon cut it off, up to the
   end of the connection (``cut`` true; a connection still open after 3 s of silence is
   reported as ``cut`` false). A last line without its newline (cut mid-write) is dropped.
3. Connects again, logs in, subscribes with ``since_seq`` = the last seq it processed and reads
   events until it has seq COUNT (or 20 s passed).

Emits ``{"kind": "done", "cut": ..., "end": "EOF" | "reset" | "open", "first": [seqs read on
the first connection], "second": [seqs read after resubscribing], "resume": the resume's
result or error}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from typing import Any

from _proc import Commands, emit, start_watchdog


class Wire:
    """One connection to convd: requests out, responses and notifications in."""

    def __init__(self, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(os.environ["CONVD_SOCKET"])
        self.buffer = b""
        self.next_id = 1
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.sock.close()

    def read_message(self) -> dict[str, Any] | None:
        """The next complete line, parsed; None at the end of the connection."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None  # EOF: a partial last line (cut mid-write) is dropped
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a request; return its whole response (notifications meanwhile are kept)."""
        request_id = self.next_id
        self.next_id += 1
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            message = self.read_message()
            if message is None:
                raise EOFError(f"{method}: the connection ended")
            if "id" not in message:
                self.events.append(message["params"])
                continue
            assert message["id"] == request_id, message
            return message


def main() -> int:
    start_watchdog()
    user, count = sys.argv[1], int(sys.argv[2])
    commands = Commands()

    # A small receive buffer, so that the daemon's queue for us fills quickly.
    first = Wire(rcvbuf=4096)
    assert "result" in first.call("session.login", {"user_id": user})
    subscribed = first.call("conv.subscribe", {})
    emit("ready", seq=subscribed["result"]["seq"], origin=subscribed["result"]["origin"])

    # Stalled: wait for the test's word, reading nothing from the socket meanwhile.
    command = commands.get(timeout=40)
    if command is None or command.get("cmd") != "resume":
        emit("fatal", error=f"expected resume, got {command}")
        return 1

    first.sock.settimeout(3)
    end = "open"
    try:
        while (message := first.read_message()) is not None:
            first.events.append(message["params"])
        end = "EOF"
    except ConnectionResetError:
        end = "reset"
    except TimeoutError:
        end = "open"
    first.close()
    first_seqs = [event["seq"] for event in first.events]
    last_seq = first_seqs[-1] if first_seqs else subscribed["result"]["seq"]

    second = Wire()
    assert "result" in second.call("session.login", {"user_id": user})
    resume = second.call("conv.subscribe", {"since_seq": last_seq})
    deadline = time.monotonic() + 20
    if "result" in resume:
        with contextlib.suppress(TimeoutError):  # reported by what is missing
            while (second.events[-1]["seq"] if second.events else last_seq) < count:
                if time.monotonic() > deadline or (message := second.read_message()) is None:
                    break
                second.events.append(message["params"])
    second.close()
    emit(
        "done",
        cut=end != "open",
        end=end,
        first=first_seqs,
        second=[event["seq"] for event in second.events],
        resume=resume.get("result", resume.get("error")),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
