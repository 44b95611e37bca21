"""The ``convd`` command line: help, version, subcommands, and its logs on stderr."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from convd.allocator import _glibc
from convd.logs import JsonFormatter
from convd_schemas import __version__
from ops_support import convd_command, json_log_lines, run_convd, wait_for
from support import DaemonProcess, text_draft


def test_help_lists_the_commands_and_options() -> None:
    result = run_convd("--help")
    assert result.returncode == 0
    for word in (
        "serve",
        "stop",
        "restore",
        "install-units",
        "--keep-changes",
        "--socket",
        "--db",
        "--log-level",
        "--log-format",
        "--version",
        "--durability",
    ):
        assert word in result.stdout
    text = " ".join(result.stdout.split())
    assert "Without a command, convd serves in the foreground" in text
    # Both durability modes can be chosen, and the option's help says what each one promises.
    options = text.split("options:", 1)[1]
    durability = re.search(r"--durability \{([\w,]+)\} (.*?) --\w", options)
    assert durability, result.stdout
    choices, explained = durability.group(1).split(","), durability.group(2)
    for mode in ("full", "everysec"):
        assert mode in choices, result.stdout
        assert re.search(rf"\b{mode}\b", explained), explained


def test_restore_help_says_to_stop_the_daemon_first() -> None:
    result = run_convd("restore", "--help")
    assert result.returncode == 0
    assert "FILE" in result.stdout
    assert "systemctl --user stop convd.socket convd.service" in " ".join(result.stdout.split())


def test_every_command_has_help() -> None:
    # Subcommands take their options' defaults from the top level (argparse.SUPPRESS): a help
    # text that names %(default)s there cannot be expanded.
    for command in ("serve", "stop", "restore", "install-units"):
        result = run_convd(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "--db" in result.stdout
    serve = " ".join(run_convd("serve", "--help").stdout.split())
    assert "(default: 10000: about 3.5 MB" in serve  # --keep-changes
    assert "(default: 20)" in serve  # --draft-history


def test_version() -> None:
    result = run_convd("--version")
    assert result.returncode == 0
    assert result.stdout == f"convd {__version__}\n"


def test_bad_usage_exits_2() -> None:
    assert run_convd("--log-format", "xml").returncode == 2
    assert run_convd("restore").returncode == 2
    assert run_convd("frobnicate").returncode == 2


def test_serve_subcommand_is_the_default(short_dir: Path) -> None:
    # ``convd serve ...`` and ``convd ...`` (the fixture's form) are the same thing; options
    # given before the command are kept.
    daemon = DaemonProcess(short_dir, "serve", "--log-level", "info")
    daemon.start()
    try:
        with daemon.client(None) as client:
            status = client.call("daemon.status")
        assert status["socket_path"] == str(daemon.socket)
        assert status["database_path"] == str(daemon.db)
        assert " DEBUG " not in daemon.logs()
    finally:
        assert daemon.stop() == 0


def test_json_logs_one_object_per_line_for_start_connections_and_stop(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir, "--log-format", "json").start()
    with daemon.client() as client:
        client.call("conv.create", {"conv_id": "bob", "conv_type": 1})
    assert daemon.stop() == 0

    entries = json_log_lines(daemon.logs())
    for entry in entries:
        assert (
            {"ts", "level", "logger", "msg"}
            <= entry.keys()
            <= {
                "ts",
                "level",
                "logger",
                "msg",
                "exc",
            }
        )
        assert entry["level"] in {"debug", "info", "warning", "error", "critical"}
        assert datetime.fromisoformat(entry["ts"]).utcoffset() is not None
    messages = [e["msg"] for e in entries]

    started = next(m for m in messages if m.startswith("convd "))
    assert daemon.process is not None
    assert started == (
        f"convd {__version__} started (pid {daemon.process.pid}): serving {daemon.socket} "
        f"(bound by convd), database {daemon.db} (durability full), event loop "
        + ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    )
    assert messages[-1] == (
        f"convd {__version__} stopped: socket {daemon.socket}, database {daemon.db}"
    )
    pid = os.getpid()
    opened = [m for m in messages if re.fullmatch(rf"connection c\d+ opened \(pid {pid} .*\)", m)]
    closed = [m for m in messages if re.fullmatch(r"connection c\d+ closed", m)]
    # The readiness probe and the client: each opened and closed exactly once.
    assert len(opened) == len(closed) >= 2
    assert "received SIGTERM; stopping" in messages


@pytest.mark.parametrize("log_level", [None, "debug"], ids=["default-level", "debug"])
def test_requests_log_nothing_per_request_only_the_connection(
    short_dir: Path, log_level: str | None
) -> None:
    # Logging is off the hot path: the README promises a line per connection opened and
    # closed (and per error), none per request, and --log-level debug adds start-up and
    # placement details, not a line per request either (aiosqlite's are held back).
    daemon = DaemonProcess(short_dir)
    level = [] if log_level is None else ["--log-level", log_level]
    with daemon.log.open("ab") as log:  # DaemonProcess.start always asks for debug
        daemon.process = subprocess.Popen(
            convd_command("--socket", daemon.socket, "--db", daemon.db, *level),
            stdout=log,
            stderr=log,
            env=daemon.env,
        )
    closed = re.compile(r"connection c\d+ closed$")

    def closed_lines() -> int:
        return sum(1 for line in daemon.logs().splitlines() if closed.search(line))

    try:
        daemon.wait_ready()
        # The readiness probe's lines are in before the count starts; so, at debug, is the
        # last start-up step's (malloc's thresholds, set in the background once accepting).
        wait_for(lambda: closed_lines() == 1, what="the probe's close line")
        if log_level == "debug" and _glibc():
            wait_for(lambda: " DEBUG convd.allocator: " in daemon.logs(), what="malloc's line")
        before = len(daemon.logs().splitlines())
        with daemon.client() as client:
            client.call("conv.subscribe", {})
            for n in range(50):
                conv = {"conv_id": f"c{n % 5}", "conv_type": 1}
                info = client.call("conv.set_draft", {**conv, "draft": text_draft(f"d{n}")})
                client.call("conv.get", {"convs": [conv]})
                client.call("conv.list", {"count": 10})
                # A refused write (stale revision) is the client's error, not the daemon's.
                stale = info["conv_draft_revision"] - 1
                client.error("conv.cancel_draft", {**conv, "if_revision": stale})
            assert len(client.notifications) >= 50
        wait_for(lambda: closed_lines() == 2, what="the client's close line")
        added = daemon.logs().splitlines()[before:]
    finally:
        assert daemon.stop() == 0
    assert len(added) == 2, "\n".join(added)
    assert re.search(r"connection c\d+ opened \(pid ", added[0]), added
    assert closed.search(added[1]), added


def test_a_startup_error_is_one_log_line_and_exit_1(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir, "--log-format", "json")
    daemon.socket.parent.mkdir()
    os.chmod(daemon.socket.parent, 0o777)
    daemon.start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(15) == 1
    [error] = [e for e in json_log_lines(daemon.logs()) if e["level"] == "error"]
    assert error["logger"] == "convd"
    assert error["msg"].startswith(f"cannot start: {daemon.socket.parent} has mode 0777")


def test_text_logs_carry_time_level_and_logger(daemon: DaemonProcess) -> None:
    line = wait_for(
        lambda: next((x for x in daemon.logs().splitlines() if " started (pid " in x), None)
    )
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO convd\.app: convd ", line)


def test_json_formatter_includes_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "convd.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    [entry] = json_log_lines(JsonFormatter().format(record))
    assert entry["msg"] == "failed here"
    assert entry["level"] == "error"
    assert entry["logger"] == "convd.x"
    assert entry["exc"].startswith("Traceback") and "ValueError: boom" in entry["exc"]


@pytest.mark.parametrize(
    ("value", "ok"), [("7d", True), ("12h", True), ("0", True), ("5x", False), ("-1d", False)]
)
def test_keep_changes_for_takes_a_duration(value: str, ok: bool) -> None:
    from convd.cli import _duration

    if ok:
        assert _duration(value) == {"7d": 604800, "12h": 43200, "0": 0}[value]
        return
    done = subprocess.run(
        [sys.executable, "-m", "convd", "--keep-changes-for", value, "stop"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--keep-changes-for" in done.stderr and "Traceback" not in done.stderr
