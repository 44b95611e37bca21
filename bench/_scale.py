"""A big account (issue 10, section 3): start-up time, populating through the daemon, and what
each method costs as the account grows.

Populating goes THROUGH the daemon: JSON-RPC batches of 100 ``conv.set_draft`` on one connection
(half of them with a 200-byte draft, half with an empty one, which creates the conversation
without a draft), so the populate rate shows whether a batch's entries share a commit.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import BenchError, median, percentile, thread_cpu_ns, us
from _convd import C2C, Daemon, RawClient, RpcError, draft_text, login, set_draft_params

SCALE_USER = "big"
BATCH = 100


def scale_id(k: int) -> str:
    return f"s{k}"


# -- start-up ------------------------------------------------------------------------------------


@dataclass
class StartSample:
    accept_ms: float  # spawn -> the socket accepts a connection
    status_ms: float  # spawn -> daemon.status answered on that connection
    exit_ms: float  # SIGTERM -> process exit


def time_start(root: Path, db: Path, durability: str) -> StartSample:
    """Spawn ``python -m convd``, poll its socket every 1 ms, ask daemon.status, SIGTERM it."""
    daemon = Daemon(root, durability, db=db)
    try:
        t0 = time.monotonic_ns()
        daemon.spawn()
        daemon.wait_accepting(30.0, poll_s=0.001)
        t1 = time.monotonic_ns()
        daemon.status()
        t2 = time.monotonic_ns()
        t3 = time.monotonic_ns()
        code = daemon.stop()
        t4 = time.monotonic_ns()
    finally:
        daemon.ensure_stopped()
    if code != 0:
        raise BenchError(f"convd exited with {code} on SIGTERM:\n{daemon.logs()}")
    if daemon.complaints():
        raise BenchError("convd logged warnings or errors:\n" + "\n".join(daemon.complaints()))
    return StartSample((t1 - t0) / 1e6, (t2 - t0) / 1e6, (t4 - t3) / 1e6)


@dataclass
class StartRow:
    database: str
    starts: int
    accept_ms: float
    accept_min_ms: float
    accept_max_ms: float
    status_ms: float
    exit_ms: float


#: What every start-up pays before convd's own code runs: the interpreter and the libraries the
#: daemon cannot start without (the start-up's peer: convd's own cost is the difference).
FLOOR_IMPORTS = "import asyncio, sqlite3, logging, argparse, pathlib, anyio, msgspec, aiosqlite"


def compile_bytecode() -> None:
    """Write the ``.pyc`` files of convd's packages, as ``pip install .`` does.

    An editable install under PYTHONDONTWRITEBYTECODE (CI's and this machine's environment)
    never writes them, and start-up would then be timed compiling every module from source.
    """
    import compileall

    import convd
    import convd_schemas

    for package in (convd, convd_schemas):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1)


def measure_floor(starts: int) -> StartRow:
    """Median wall time of ``python -c FLOOR_IMPORTS`` (spawn to exit)."""
    samples = []
    for _ in range(starts):
        t0 = time.monotonic_ns()
        subprocess.run([sys.executable, "-c", FLOOR_IMPORTS], check=True)
        samples.append((time.monotonic_ns() - t0) / 1e6)
    return StartRow(
        database="peer: python importing asyncio, sqlite3, anyio, msgspec, aiosqlite (no convd)",
        starts=starts,
        accept_ms=median(samples),
        accept_min_ms=min(samples),
        accept_max_ms=max(samples),
        status_ms=float("nan"),
        exit_ms=float("nan"),
    )


def measure_starts(
    workdir: Path,
    label: str,
    db: Path | None,
    starts: int,
    durability: str,
    *,
    checked: bool = False,
) -> StartRow:
    """Median of ``starts`` starts on ``db`` (None: a new database every time). ``checked``:
    without the stamp of the last clean stop, so that each start runs the whole quick_check
    (as after a crash, a change by anything else, or once a day); otherwise each start finds
    the stamp the clean stop before it left (a restart)."""
    samples = []
    for k in range(starts):
        root = workdir / f"start-{label.replace(' ', '-')}-{k}"
        path = db if db is not None else root / "data" / "convd.db"
        if checked:
            path.with_name(path.name + ".checked").unlink(missing_ok=True)
        samples.append(time_start(root, path, durability))
        shutil.rmtree(root, ignore_errors=True)
    accepts = [s.accept_ms for s in samples]
    return StartRow(
        database=label,
        starts=starts,
        accept_ms=median(accepts),
        accept_min_ms=min(accepts),
        accept_max_ms=max(accepts),
        status_ms=median(s.status_ms for s in samples),
        exit_ms=median(s.exit_ms for s in samples),
    )


# -- populating ----------------------------------------------------------------------------------


@dataclass
class PopulateResult:
    conversations: int
    seconds: float
    errors: int

    @property
    def rate(self) -> float:
        return self.conversations / self.seconds if self.seconds else float("nan")


def populate(client: RawClient, start: int, stop: int) -> PopulateResult:
    """Conversations ``s<start>`` .. ``s<stop-1>``: even ones with a draft, odd ones without."""
    errors = 0
    t0 = time.monotonic()
    for first in range(start, stop, BATCH):
        calls = [
            ("conv.set_draft", set_draft_params(scale_id(k), draft_text(k) if k % 2 == 0 else ""))
            for k in range(first, min(first + BATCH, stop))
        ]
        errors += sum(1 for reply in client.batch(calls) if "error" in reply)
    return PopulateResult(stop - start, time.monotonic() - t0, errors)


def settle(pid: int, *, timeout: float = 20.0) -> float:
    """Wait until process ``pid`` is idle (under a tenth of a CPU for two 100 ms spans in a
    row, at most ``timeout`` seconds), then for the OS to write out what it has written; how
    long it took. After a populate, the daemon copies the WAL back into the database for a
    while (a checkpoint of up to ~100 MB at 100,000): timed calls during that measured the
    copy, not their own cost (daemon.status, which reads one row, ran x1.3-1.7 slower at
    100,000 than at 100)."""

    def cpu() -> float:
        try:
            return sum(thread_cpu_ns(pid).values()) / 1e9
        except OSError:
            return 0.0  # not Linux, or gone: nothing to wait for

    start = time.monotonic()
    quiet = 0
    before = cpu()
    while quiet < 2 and time.monotonic() - start < timeout:
        time.sleep(0.1)
        now = cpu()
        quiet = quiet + 1 if now - before < 0.01 else 0
        before = now
    # ... and the OS has written those ~100 MB out: its write-back otherwise ran during the
    # timed calls (every method, reads too, ran slower at 100,000 in such runs).
    if hasattr(os, "sync"):
        os.sync()
    return time.monotonic() - start


# -- per-method latency --------------------------------------------------------------------------

METHODS = (
    "conv.set_draft",
    "conv.get (100 random ids)",
    "conv.list (first page of 100)",
    "conv.list (deep page of 100)",
    "conv.list (whole account, pages of 1,000)",
    "conv.pin",
    "conv.pin (unpin)",
    "daemon.status",
    "conv.create",
    "conv.delete",
)


@dataclass
class MethodTimes:
    size: int
    samples: dict[str, list[int]] = field(default_factory=dict)
    deep_position: int = 0

    def time(self, method: str, call: Callable[[], Any]) -> Any:
        t0 = time.monotonic_ns()
        result = call()
        self.samples.setdefault(method, []).append(time.monotonic_ns() - t0)
        return result

    def p50_us(self, method: str) -> float:
        values = sorted(self.samples.get(method, []))
        return us(percentile(values, 50))

    def p99_us(self, method: str) -> float:
        values = sorted(self.samples.get(method, []))
        return us(percentile(values, 99))


def _deep_cursor(client: RawClient, size: int) -> tuple[int, int]:
    """(next_seq, position) about 90 % down the list (but with a whole page of 100 after it),
    found by paging through the list."""
    page = max(1, min(1000, size // 10))
    cursor = 0
    seen = 0
    while seen < max(0, size - 100) * 9 // 10:
        result = client.call("conv.list", {"next_seq": cursor, "count": page})
        seen += len(result["conversation_list_result_conv_list"])
        cursor = result["conversation_list_result_next_seq"]
        if result["conversation_list_result_is_finished"]:
            break
    return cursor, seen


#: The whole-account listing is timed up to this size (it grows with the account by nature).
WHOLE_LIST_MAX = 10_000
_TAIL = re.compile(
    rb'"conversation_list_result_next_seq":(\d+),"conversation_list_result_is_finished":(true|false)'
)


def list_whole_account(client: RawClient) -> int:
    """Every conversation, in pages of 1,000, as bytes: the reply lines are read but not
    parsed (a Python JSON parser would dominate), except for the cursor at their end.
    Returns the number of bytes read."""
    cursor, total = 0, 0
    while True:
        client.sock.sendall(
            b'{"jsonrpc":"2.0","id":1,"method":"conv.list","params":{"next_seq":%d,"count":1000}}\n'
            % cursor
        )
        line = client.read_line()
        total += len(line)
        tail = _TAIL.search(line, max(0, len(line) - 200))
        if tail is None:
            raise BenchError(f"conv.list answered {line[:200]!r}...")
        if tail.group(2) == b"true":
            return total
        cursor = int(tail.group(1))


def measure_methods(client: RawClient, size: int, repeats: int, seed: int = 7) -> MethodTimes:
    """``repeats`` calls of each method, interleaved, on random conversations of the account;
    then, up to WHOLE_LIST_MAX, ``repeats`` listings of the whole account."""
    rng = random.Random(seed + size)
    times = MethodTimes(size)
    cursor, times.deep_position = _deep_cursor(client, size)
    for k in range(repeats):
        conv = scale_id(rng.randrange(size))
        text = draft_text(10**9 + size + k)
        times.time("conv.set_draft", lambda: client.set_draft(conv, text))  # noqa: B023
        keys = [{"conv_id": scale_id(rng.randrange(size)), "conv_type": C2C} for _ in range(100)]
        got = times.time(
            "conv.get (100 random ids)",
            lambda: client.call("conv.get", {"convs": keys}),  # noqa: B023
        )
        if len(got) != len({key["conv_id"] for key in keys}):
            raise BenchError(f"conv.get returned {len(got)} of {len(keys)} conversations")
        times.time(
            "conv.list (first page of 100)",
            lambda: client.call("conv.list", {"next_seq": 0, "count": 100}),
        )
        times.time(
            "conv.list (deep page of 100)",
            lambda: client.call("conv.list", {"next_seq": cursor, "count": 100}),
        )
        pin = {"conv_id": conv, "conv_type": C2C, "is_pinned": True}
        times.time("conv.pin", lambda: client.call("conv.pin", pin))  # noqa: B023
        unpin = {**pin, "is_pinned": False}
        times.time("conv.pin (unpin)", lambda: client.call("conv.pin", unpin))  # noqa: B023
        times.time("daemon.status", lambda: client.call("daemon.status"))
        new = {"conv_id": f"new{size}-{k}", "conv_type": C2C}
        times.time("conv.create", lambda: client.call("conv.create", new))  # noqa: B023
        times.time("conv.delete", lambda: client.call("conv.delete", new))  # noqa: B023
    # Timed apart, after the others: interleaved, its 5 MB of replies slowed the calls that
    # followed it (the 10,000 column of conv.pin and daemon.status ran ~2x its neighbours').
    if size <= WHOLE_LIST_MAX:
        for _ in range(repeats):
            times.time(
                "conv.list (whole account, pages of 1,000)", lambda: list_whole_account(client)
            )
    return times


@dataclass
class ScaleStep:
    size: int
    populate: PopulateResult
    methods: MethodTimes
    hops: dict[str, float | None]
    start: StartRow | None


def check_sample(client: RawClient, start: int) -> None:
    """Of the conversations just populated (``start`` is even), even ones carry a draft and odd
    ones none: the populate did what it says."""
    ids = [scale_id(start), scale_id(start + 1)]
    infos = client.call("conv.get", {"convs": [{"conv_id": i, "conv_type": C2C} for i in ids]})
    drafts = {info["conv_id"]: bool(info.get("conv_is_has_draft")) for info in infos}
    if drafts != {ids[0]: True, ids[1]: False}:
        raise BenchError(f"populated conversations look wrong: {drafts}")


def open_client(daemon: Daemon) -> RawClient:
    try:
        return login(str(daemon.socket), SCALE_USER)
    except RpcError as exc:
        raise BenchError(f"session.login failed: {exc}") from None
