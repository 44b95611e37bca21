"""The real convd daemon as the benchmark runs it, and a minimal raw NDJSON client for it.

The client is what issue 7 prescribes for measuring the daemon: stdlib ``json`` + ``socket``,
sequential request/response, one connection per process, so the daemon is what is measured.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import BenchError

STARTUP_TIMEOUT = 20.0
SOCKET_TIMEOUT = 30.0
C2C = 1  # conv_type of a one-to-one conversation

# The draft: exactly 200 bytes of UTF-8 (Chinese, accented Latin and ASCII), varied by a
# counter so that every write changes something (an unchanged draft is not written).
_PREFIX_BYTES = len(b"0000000000 ")
_PATTERN = "草稿 draft ünïcödé 你好 ✓ "


def _tail(size: int) -> str:
    out = ""
    for ch in _PATTERN * 20:
        if len((out + ch).encode()) > size:
            break
        out += ch
    return out + "x" * (size - len(out.encode()))


_TAIL = _tail(200 - _PREFIX_BYTES)


def draft_text(counter: int) -> str:
    """A 200-byte UTF-8 text that differs for every counter below 10**10."""
    return f"{counter % 10**10:010d} {_TAIL}"


assert len(draft_text(123).encode()) == 200


def conv_ids(prefix: str, count: int = 100) -> list[str]:
    return [f"{prefix}-{k}" for k in range(count)]


def set_draft_params(conv_id: str, text: str) -> dict[str, Any]:
    """``conv.set_draft``'s params; an empty ``text`` sends an empty draft (no elements)."""
    if not text:
        return {"conv_id": conv_id, "conv_type": C2C, "draft": {"draft_msg": {}}}
    return {
        "conv_id": conv_id,
        "conv_type": C2C,
        "draft": {
            "draft_msg": {"message_elem_array": [{"elem_type": 0, "text_elem_content": text}]}
        },
    }


class RpcError(Exception):
    def __init__(self, error: Any) -> None:
        super().__init__(str(error))
        self.error = error


def _dumps(message: Any) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class RawClient:
    """One connection; sequential request/response; notifications are kept aside."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(SOCKET_TIMEOUT)
        self.sock.connect(path)
        self.buf = bytearray()
        self._chunk = bytearray(262144)
        self.next_id = 1
        self.notifications: list[bytes] = []

    def close(self) -> None:
        self.sock.close()

    def read_line(self) -> bytes:
        # Big replies (a list page of 1,000 is ~500 KB) are received into one reused chunk,
        # gathered in one buffer and copied out once: a fresh 256 KB bytes per recv and an
        # extra copy per slice cost more than the daemon's own work on such a page (new
        # memory is page-faulted in on first touch).
        buf = self.buf
        searched = 0
        while True:
            index = buf.find(b"\n", searched)
            if index >= 0:
                line = bytes(memoryview(buf)[:index])
                del buf[: index + 1]
                return line
            searched = len(buf)
            received = self.sock.recv_into(self._chunk)
            if not received:
                raise ConnectionError("convd closed the connection")
            buf += memoryview(self._chunk)[:received]

    def _read_reply(self) -> Any:
        while True:
            line = self.read_line()
            message = json.loads(line)
            if isinstance(message, dict) and "method" in message and "id" not in message:
                self.notifications.append(line)
                continue
            return message

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One request; its result, or RpcError."""
        request_id = self.next_id
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.sock.sendall(_dumps(message))
        reply = self._read_reply()
        if reply.get("id") != request_id:
            if "error" in reply:
                raise RpcError(reply["error"])
            raise BenchError(f"expected a reply to id {request_id}, got {str(reply)[:200]}")
        if "error" in reply:
            raise RpcError(reply["error"])
        return reply["result"]

    def batch(self, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """One JSON-RPC batch; the replies in request order (each a result or an error)."""
        first = self.next_id
        self.next_id += len(calls)
        messages = [
            {"jsonrpc": "2.0", "id": first + k, "method": method, "params": params}
            for k, (method, params) in enumerate(calls)
        ]
        self.sock.sendall(_dumps(messages))
        replies = self._read_reply()
        if not isinstance(replies, list) or len(replies) != len(calls):
            raise BenchError(f"a batch of {len(calls)} got {str(replies)[:200]}")
        replies.sort(key=lambda r: r.get("id") or 0)
        return replies

    def set_draft(self, conv_id: str, text: str) -> Any:
        return self.call("conv.set_draft", set_draft_params(conv_id, text))


def login(path: str, user: str) -> RawClient:
    client = RawClient(path)
    client.call("session.login", {"user_id": user})
    return client


def set_draft_op(
    path: str, user: str, index: int
) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(op, close): op(counter) is one acknowledged ``conv.set_draft`` on this client's 100 ids;
    an error reply raises RpcError (counted by the caller)."""
    client = login(path, user)
    ids = conv_ids(f"w{index}")

    def op(counter: int) -> None:
        client.set_draft(ids[counter % 100], draft_text(counter))

    return op, client.close


# -- the daemon ----------------------------------------------------------------------------------


STORE_COUNTERS = ("writes", "write_batches", "writer_thread_hops", "reader_thread_hops")


class Daemon:
    """``python -m convd`` on a socket and database under ``root``."""

    def __init__(self, root: Path, durability: str = "full", db: Path | None = None) -> None:
        self.root = root
        self.durability = durability
        root.mkdir(parents=True, exist_ok=True)
        self.socket = root / "run" / "convd.sock"
        self.db = db if db is not None else root / "data" / "convd.db"
        self.log = root / "convd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"convd {self.durability}"

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "convd", "--socket", str(self.socket)]
        command += ["--db", str(self.db), "--log-level", "info"]
        if self.durability != "full":  # full is the default: start it as a user would
            command.append(f"--durability={self.durability}")
        return command

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("CONVD_SOCKET", "CONVD_DB"):
            env.pop(name, None)
        env["XDG_RUNTIME_DIR"] = str(self.root)
        env["XDG_DATA_HOME"] = str(self.root / "xdg-data")
        return env

    def spawn(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, env=self.env())

    def start(self) -> None:
        self.spawn()
        self.wait_accepting(STARTUP_TIMEOUT)

    def wait_accepting(self, timeout: float, poll_s: float = 0.02) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"convd exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(str(self.socket))
                return
            except OSError:
                time.sleep(poll_s)
        raise BenchError(f"convd did not start within {timeout} s:\n{self.logs()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise BenchError(f"convd died with exit code {self.proc.returncode}:\n{self.logs()}")

    def stop(self) -> int:
        """SIGTERM and wait; BenchError if it had died already or does not exit."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise BenchError(f"convd had already exited with {self.proc.returncode}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise BenchError("convd did not exit within 20 s of SIGTERM; killed") from None

    def ensure_stopped(self) -> None:
        """On an error path: make sure the process is gone (SIGTERM, then SIGKILL)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def complaints(self) -> list[str]:
        return [
            line
            for line in self.logs().splitlines()
            if " WARNING " in line or " ERROR " in line or "Traceback" in line
        ]

    def status(self) -> dict[str, Any]:
        client = RawClient(str(self.socket))
        try:
            result: dict[str, Any] = client.call("daemon.status")
            return result
        finally:
            client.close()

    def store_counters(self) -> dict[str, int] | None:
        """The ``store`` counters of ``daemon.status``; None when this build has none."""
        store = self.status().get("store")
        if not isinstance(store, dict):
            return None
        counters = {name: store.get(name) for name in STORE_COUNTERS}
        if not all(isinstance(value, int) for value in counters.values()):
            return None
        return counters  # type: ignore[return-value]


class Hops:
    """Deltas of the store counters around measured windows (None fields: not reported)."""

    def __init__(self) -> None:
        self.totals: dict[str, int] | None = dict.fromkeys(STORE_COUNTERS, 0)

    def add(self, before: dict[str, int] | None, after: dict[str, int] | None) -> None:
        if before is None or after is None or self.totals is None:
            self.totals = None
            return
        for name in STORE_COUNTERS:
            self.totals[name] += after[name] - before[name]

    def per_write(self, name: str) -> float | None:
        if self.totals is None or not self.totals["writes"]:
            return None
        return self.totals[name] / self.totals["writes"]

    def summary(self) -> dict[str, float | None]:
        return {
            "writes": None if self.totals is None else float(self.totals["writes"]),
            "writes_per_batch": (
                None
                if self.totals is None or not self.totals["write_batches"]
                else self.totals["writes"] / self.totals["write_batches"]
            ),
            "writer_hops_per_write": self.per_write("writer_thread_hops"),
            "reader_hops_per_write": self.per_write("reader_thread_hops"),
        }
