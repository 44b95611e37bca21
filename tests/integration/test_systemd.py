"""systemd integration: the shipped units, socket activation and the notify protocol.

Socket activation runs under ``systemd-socket-activate`` (Debian's systemd package), which
listens like a .socket unit and execs the daemon (same pid) on the first connection, with
LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES set. ``NOTIFY_SOCKET`` points at a datagram socket the
test binds, standing in for the service manager.
"""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from convd.app import FD_NAME
from convd.units import render_units
from ops_support import EnvDaemon, NotifySocket, private_dir, run_convd, wait_for
from support import LineClient

UNITS = Path(__file__).resolve().parents[2] / "systemd"
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


def _unit(name: str) -> configparser.ConfigParser:
    return _unit_at(UNITS / name)


def _unit_at(path: Path) -> configparser.ConfigParser:
    # Repeated keys (SystemCallFilter=) are legal in units: keep the last, as a dict would.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def test_socket_unit_listens_privately_where_clients_look() -> None:
    socket_unit = _unit("convd.socket")["Socket"]
    assert socket_unit["ListenStream"] == "%t/convd/convd.sock"
    assert socket_unit["SocketMode"] == "0600"
    assert socket_unit["DirectoryMode"] == "0700"
    assert socket_unit["FileDescriptorName"] == FD_NAME
    assert socket_unit.get("Accept", "no") == "no"
    assert _unit("convd.socket")["Install"]["WantedBy"] == "sockets.target"


def test_service_unit_is_notify_type_and_started_by_its_socket() -> None:
    unit = _unit("convd.service")
    assert unit["Unit"]["Requires"] == "convd.socket"
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["ExecStart"] == "%h/.local/bin/convd serve"
    assert int(service["WatchdogSec"]) > 0
    assert service["UMask"] == "0077"
    # Enable the socket, not the service.
    assert not unit.has_section("Install")


def test_the_shipped_units_are_what_install_units_writes_for_local_bin() -> None:
    for name, text in render_units("%h/.local/bin/convd").items():
        assert (UNITS / name).read_text() == text, f"systemd/{name} is stale"


def _syscalls_in(group: str, seen: dict[str, set[str]]) -> set[str]:
    """The system calls a SystemCallFilter= word names: a call, or a @group with its nested
    groups expanded (as ``systemd-analyze syscall-filter`` lists them)."""
    if not group.startswith("@"):
        return {group}
    if group not in seen:
        listing = subprocess.run(
            ["systemd-analyze", "syscall-filter", group],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.splitlines()[1:]
        seen[group] = set()  # (a group never includes itself; this ends any cycle)
        words = [w.strip() for w in listing if w.strip() and not w.strip().startswith("#")]
        seen[group] = set().union(*(_syscalls_in(word, seen) for word in words))
    return seen[group]


def _permits(filters: list[str], call: str) -> bool:
    """Whether a unit's SystemCallFilter= lines let ``call`` through, as systemd.exec(5)
    has it: the first line decides the default (an allow list: refuse the rest; ``~``, a
    deny list: permit the rest), and each later line adds its calls to that list or, with
    the other kind, takes them out of it."""
    seen: dict[str, set[str]] = {}
    allow_list = not filters[0].startswith("~")
    listed: set[str] = set()
    for line in filters:
        denying = line.startswith("~")
        calls = set().union(*(_syscalls_in(w, seen) for w in line.removeprefix("~").split()))
        listed = listed - calls if denying == allow_list else listed | calls
    return call in listed if allow_list else call not in listed


def test_the_service_unit_lets_convd_place_its_threads() -> None:
    # The default --same-cpu pins the event loop's and the writer's threads and makes them
    # SCHED_BATCH while writes queue up (convd.placement): the sandbox must not refuse that.
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze missing")
    text = (UNITS / "convd.service").read_text()
    filters = [
        line.split("=", 1)[1] for line in text.splitlines() if line.startswith("SystemCallFilter=")
    ]
    placement = ["sched_getaffinity", "sched_setaffinity", "sched_getscheduler"]
    placement += ["sched_setscheduler", "sched_yield"]
    assert [call for call in placement if not _permits(filters, call)] == []
    # ... and the rest of @resources and @privileged stays refused.
    assert [call for call in ("setrlimit", "setpriority", "mount") if _permits(filters, call)] == []


def _verify(units: list[Path], home: Path, runtime: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze missing")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(private_dir(runtime)),
        "SYSTEMD_LOG_LEVEL": "notice",
    }
    result = subprocess.run(
        ["systemd-analyze", "--user", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and "Failed to initialize manager" in output:
        pytest.skip(f"systemd-analyze cannot run here: {output.strip()}")
    assert result.returncode == 0, output
    # Unknown keys or bad values are only warnings (exit status 0): there must be none.
    assert output.strip() == ""


def test_units_pass_systemd_analyze_verify(short_dir: Path) -> None:
    # ExecStart is %h/.local/bin/convd: give verify a home where that is this checkout's convd.
    home = short_dir / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "convd").symlink_to(Path(sys.executable).parent / "convd")
    _verify([UNITS / "convd.socket", UNITS / "convd.service"], home, short_dir / "xdg")


def test_install_units_writes_units_that_run_this_convd(short_dir: Path) -> None:
    target = short_dir / "units"
    result = run_convd("install-units", "--dir", target)
    assert result.returncode == 0, result.stderr
    convd = Path(sys.executable).parent / "convd"
    assert f"ExecStart={convd} serve" in result.stdout
    assert "systemctl --user enable --now convd.socket" in result.stdout
    assert sorted(p.name for p in target.iterdir()) == ["convd.service", "convd.socket"]
    service = _unit_at(target / "convd.service")["Service"]
    assert service["ExecStart"] == f"{convd} serve"
    assert (target / "convd.socket").read_text() == (UNITS / "convd.socket").read_text()
    # A home with nothing in ~/.local/bin: the unit works because it names this convd.
    home = short_dir / "home"
    home.mkdir()
    _verify([target / "convd.socket", target / "convd.service"], home, short_dir / "xdg")
    # Running it again replaces them (no temporary files left).
    assert run_convd("install-units", "--dir", target).returncode == 0
    assert sorted(p.name for p in target.iterdir()) == ["convd.service", "convd.socket"]


def test_install_units_defaults_to_the_user_unit_directory(short_dir: Path) -> None:
    env = dict(os.environ, XDG_CONFIG_HOME=str(short_dir / "config"))
    result = run_convd("install-units", env=env)
    assert result.returncode == 0, result.stderr
    assert (short_dir / "config" / "systemd" / "user" / "convd.service").is_file()


# -- socket activation -----------------------------------------------------------------------


# In /proc/net/unix, the flag a socket that listen() was called on carries (__SO_ACCEPTCON).
_ACCEPTING = 0x10000


def _listening(path: Path) -> bool:
    """Whether a Unix socket bound at ``path`` is listening, read from ``/proc/net/unix``.

    Read as bytes: the table lists every socket of the machine, names printed as they are
    (any bytes, spaces included) after seven fixed columns.
    """
    name = b" " + os.fsencode(path) + b"\n"
    with open("/proc/net/unix", "rb") as table:
        for row in table:
            if row.endswith(name):
                head = row[: -len(name)].split()
                if len(head) == 7 and int(head[3], 16) & _ACCEPTING:
                    return True
    return False


class Activated:
    """``systemd-socket-activate -l SOCKET convd serve --db DB`` in a short private dir."""

    def __init__(self, root: Path, *, socket_dir_mode: int = 0o700) -> None:
        self.root = root
        run = root / "run"
        run.mkdir(mode=socket_dir_mode)
        os.chmod(run, socket_dir_mode)
        self.socket = run / "convd.sock"
        self.db = root / "data" / "convd.db"
        self.log = root / "convd.log"
        self.notify = NotifySocket(root / "notify")
        assert SOCKET_ACTIVATE is not None
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    SOCKET_ACTIVATE,
                    "--listen",
                    str(self.socket),
                    f"--fdname={FD_NAME}",
                    "--setenv",
                    f"NOTIFY_SOCKET={self.notify.path}",
                    sys.executable,
                    "-m",
                    "convd",
                    "serve",
                    "--db",
                    str(self.db),
                    "--log-level",
                    "debug",
                ],
                stdout=log,
                stderr=log,
            )
        try:
            # The socket's file appears at bind(), before listen(): a connect in between is
            # refused. So wait for the listening state itself, which does not need a connection
            # (that would activate the daemon).
            wait_for(
                lambda: _listening(self.socket) or self.process.poll() is not None,
                what="listen",
            )
            assert self.process.poll() is None, self.logs()
        except BaseException:
            self.close()  # or their ResourceWarnings fail some later test
            raise

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def command_name(self) -> str:
        return Path(f"/proc/{self.process.pid}/comm").read_text().strip()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.notify.close()


@pytest.fixture
def activated(short_dir: Path) -> Iterator[Activated]:
    if SOCKET_ACTIVATE is None:
        pytest.skip("systemd-socket-activate is missing (Debian package: systemd)")
    process = Activated(short_dir)
    try:
        yield process
    finally:
        process.close()


def test_socket_activation_starts_the_daemon_on_the_first_connection(
    activated: Activated,
) -> None:
    # Listening, but nothing started: no daemon, no database yet.
    time.sleep(0.2)
    assert activated.command_name().startswith("systemd-socket")
    assert not activated.db.exists()

    with LineClient(activated.socket) as client:
        # The request waits in the socket's backlog while the daemon starts.
        client.call("session.login", {"user_id": "alice"})
        info = client.call(
            "conv.set_draft",
            {
                "conv_id": "bob",
                "conv_type": 1,
                "draft": {"draft_msg": {"message_elem_array": []}, "draft_user_define": "x"},
            },
        )
        assert info["conv_is_has_draft"]
        status = client.call("daemon.status")
    # systemd-socket-activate execs the daemon: same pid, now running convd.
    assert status["pid"] == activated.process.pid
    assert status["socket_path"] == str(activated.socket)
    assert activated.command_name() != "systemd-socket-"

    ready = activated.notify.expect("READY=1")
    assert f"STATUS=serving {activated.socket}" in ready
    assert f"passed by systemd as fd 3 ({FD_NAME})" in activated.logs()

    # Later connections go to the same daemon.
    with LineClient(activated.socket) as client:
        assert client.call("daemon.status")["pid"] == activated.process.pid

    activated.process.send_signal(signal.SIGTERM)
    assert activated.process.wait(15) == 0, activated.logs()
    assert "STOPPING=1" in activated.notify.expect("STOPPING=1")
    # The socket file belongs to the service manager: the daemon leaves it in place.
    assert activated.socket.is_socket()
    assert "bound by convd" not in activated.logs()


def test_an_activated_socket_in_a_shared_directory_is_refused(short_dir: Path) -> None:
    if SOCKET_ACTIVATE is None:
        pytest.skip("systemd-socket-activate is missing (Debian package: systemd)")
    process = Activated(short_dir, socket_dir_mode=0o755)
    try:
        with LineClient(process.socket) as client, pytest.raises((EOFError, OSError)):
            client.call("daemon.status")
        assert process.process.wait(15) == 1
        assert f"{process.socket.parent} has mode 0755" in process.logs()
        assert f"chmod 700 {process.socket.parent}" in process.logs()
    finally:
        process.close()


# -- notify without activation ---------------------------------------------------------------


def test_ready_once_serving_and_stopping_on_shutdown(short_dir: Path) -> None:
    with NotifySocket(short_dir / "notify") as notify:
        daemon = EnvDaemon(short_dir, env={"NOTIFY_SOCKET": str(notify.path)})
        daemon.start(wait=False)
        try:
            ready = notify.expect("READY=1")
            assert f"STATUS=serving {daemon.socket}" in ready
            # READY=1 means serving: the first connection after it must succeed at once.
            assert daemon.process is not None
            with LineClient(daemon.socket) as client:
                assert client.call("daemon.status")["pid"] == daemon.process.pid
            assert daemon.stop() == 0
            stopping = notify.expect("STOPPING=1")
            assert "STATUS=stopping" in stopping
        finally:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.kill()
    # READY came once, before STOPPING; no watchdog pings without WATCHDOG_USEC.
    fields = [f for message in notify.messages for f in message]
    assert fields.count("READY=1") == 1
    assert fields.index("READY=1") < fields.index("STOPPING=1")
    assert "WATCHDOG=1" not in fields


def test_watchdog_pings_every_half_interval(short_dir: Path) -> None:
    with NotifySocket(short_dir / "notify") as notify:
        daemon = EnvDaemon(
            short_dir,
            env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"},
        )
        daemon.start(wait=False)
        try:
            notify.expect("READY=1")
            started = time.monotonic()
            for _ in range(4):
                notify.expect("WATCHDOG=1", timeout=5)
            # WATCHDOG_USEC is 0.2 s, so a ping every 0.1 s: four arrive well within 2 s.
            assert time.monotonic() - started < 2.0
            assert daemon.stop() == 0
            notify.expect("STOPPING=1")
        finally:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.kill()
