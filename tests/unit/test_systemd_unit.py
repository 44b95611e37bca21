"""sd_listen_fds and sd_notify by hand (convd.transport.systemd), without a service manager."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from convd.transport import (
    ActivationError,
    InheritedSocket,
    Notifier,
    check_listening_unix_socket,
    listen_fds,
    pick_listen_fd,
)
from convd.units import _quote, convd_command
from support import short_tmpdir


@pytest.fixture
def tmp_short() -> Iterator[Path]:
    with short_tmpdir() as path:
        yield path


@pytest.fixture
def listening(tmp_short: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(tmp_short / "l.sock"))
        sock.listen()
        yield sock


def _activation_env(pid: int, count: int, names: str | None = None) -> dict[str, str]:
    env = {"LISTEN_PID": str(pid), "LISTEN_FDS": str(count), "OTHER": "kept"}
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    return env


# -- listen_fds ------------------------------------------------------------------------------


def test_no_activation_variables_means_no_sockets() -> None:
    env = {"OTHER": "kept"}
    assert listen_fds(env) == []
    assert env == {"OTHER": "kept"}


def test_sockets_meant_for_this_pid_are_returned_named_and_made_cloexec(
    listening: socket.socket,
) -> None:
    fd = listening.fileno()
    os.set_inheritable(fd, True)
    env = _activation_env(os.getpid(), 1, "convd")
    passed = listen_fds(env, start=fd)
    assert [(s.fd, s.name) for s in passed] == [(fd, "convd")]
    assert not os.get_inheritable(fd)
    # Checked, then unset: no child inherits them.
    assert env == {"OTHER": "kept"}


def test_several_sockets_get_their_names_in_order(tmp_short: Path) -> None:
    socks = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
    try:
        # Passed descriptors are consecutive: dup onto two free consecutive numbers.
        start = max(s.fileno() for s in socks) + 10
        for offset, sock in enumerate(socks):
            os.dup2(sock.fileno(), start + offset)
        passed = listen_fds(_activation_env(4242, 2, "convd:extra"), pid=4242, start=start)
        assert [(s.fd, s.name) for s in passed] == [(start, "convd"), (start + 1, "extra")]
        assert pick_listen_fd(passed, "extra").fd == start + 1
    finally:
        for sock in socks:
            sock.close()
        for offset in range(2):
            os.close(start + offset)


def test_names_that_do_not_match_the_count_become_unknown(listening: socket.socket) -> None:
    passed = listen_fds(_activation_env(7, 1, "a:b"), pid=7, start=listening.fileno())
    assert [s.name for s in passed] == ["unknown"]


def test_variables_for_another_pid_are_ignored_and_still_unset() -> None:
    env = _activation_env(os.getpid() + 1, 1, "convd")
    assert listen_fds(env, start=999) == []
    assert env == {"OTHER": "kept"}


@pytest.mark.parametrize(
    "env",
    [
        {"LISTEN_PID": "x", "LISTEN_FDS": "1"},
        {"LISTEN_PID": "1", "LISTEN_FDS": "one"},
    ],
)
def test_garbage_in_the_variables_is_an_error(env: dict[str, str]) -> None:
    with pytest.raises(ActivationError, match="not numbers"):
        listen_fds(env, pid=1)
    assert env == {}


def test_a_passed_descriptor_that_is_not_open_is_an_error() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(ActivationError, match="not open"):
        listen_fds(_activation_env(1, 1), pid=1, start=fd)


def test_pick_prefers_the_name_then_a_single_socket() -> None:
    assert pick_listen_fd([InheritedSocket(3, "unknown")], "convd").fd == 3
    passed = [InheritedSocket(3, "a"), InheritedSocket(4, "convd")]
    assert pick_listen_fd(passed, "convd").fd == 4
    with pytest.raises(ActivationError, match="FileDescriptorName=convd"):
        pick_listen_fd([InheritedSocket(3, "a"), InheritedSocket(4, "b")], "convd")


# -- checking the passed socket --------------------------------------------------------------


def test_a_listening_unix_socket_passes_and_reports_its_path(
    listening: socket.socket, tmp_short: Path
) -> None:
    assert check_listening_unix_socket(listening.fileno()) == str(tmp_short / "l.sock")
    # The check works on a duplicate: the original stays open and usable.
    assert listening.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)


def test_an_abstract_socket_is_reported_with_an_at_sign() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        name = f"convd-test-{os.getpid()}"
        sock.bind("\0" + name)
        sock.listen()
        assert check_listening_unix_socket(sock.fileno()) == "@" + name


def test_a_connected_socket_is_refused() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b, pytest.raises(ActivationError, match="not listening"):
        check_listening_unix_socket(a.fileno())


def test_a_tcp_or_datagram_socket_is_refused(tmp_short: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        with pytest.raises(ActivationError, match="Unix stream socket"):
            check_listening_unix_socket(tcp.fileno())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dgram:
        dgram.bind(str(tmp_short / "d.sock"))
        with pytest.raises(ActivationError, match="Unix stream socket"):
            check_listening_unix_socket(dgram.fileno())


# -- sd_notify -------------------------------------------------------------------------------


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_notify_sends_one_datagram_of_newline_separated_fields(tmp_short: Path) -> None:
    path = str(tmp_short / "notify")
    with _receiver(path) as receiver:
        notifier = Notifier(path)
        assert notifier.enabled
        assert notifier.notify("READY=1", "STATUS=serving /x")
        assert receiver.recv(4096) == b"READY=1\nSTATUS=serving /x"
        assert notifier.notify("STOPPING=1")
        assert receiver.recv(4096) == b"STOPPING=1"


def test_notify_to_an_abstract_address() -> None:
    name = f"convd-notify-{os.getpid()}"
    with _receiver("\0" + name) as receiver:
        assert Notifier("@" + name).notify("WATCHDOG=1")
        assert receiver.recv(4096) == b"WATCHDOG=1"


def test_notify_without_a_manager_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_environ()
    assert not notifier.enabled
    assert not notifier.notify("READY=1")


def test_notify_to_a_missing_socket_warns_and_carries_on(
    tmp_short: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="convd.transport.systemd"):
        assert not Notifier(str(tmp_short / "nobody-listens")).notify("READY=1")
    assert "cannot notify the service manager (READY=1)" in caplog.text


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}, 0.1),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], interval: float | None
) -> None:
    assert Notifier.watchdog_interval(env) == interval


# -- the units' command line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "quoted"),
    [
        ("/home/me/.venv/bin/convd", "/home/me/.venv/bin/convd"),
        ("/home/me/my venv/bin/convd", '"/home/me/my venv/bin/convd"'),
        ("/opt/100%/convd", "/opt/100%%/convd"),
        ('/a"b/convd', '"/a\\"b/convd"'),
    ],
)
def test_a_path_is_quoted_for_exec_start(word: str, quoted: str) -> None:
    assert _quote(word) == quoted


def test_the_command_is_the_convd_beside_this_interpreter() -> None:
    assert convd_command() == str(Path(sys.executable).parent / "convd")
