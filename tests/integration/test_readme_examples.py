"""The README's examples run against a real daemon and print what the README shows.

An example is everything between ``<!-- example:NAME:begin -->`` and
``<!-- example:NAME:end -->``: its first fenced block is the program (``python``: run with
this interpreter; ``sh``: run with ``bash -euo pipefail``, with this virtualenv's ``bin`` first
on PATH so that ``convctl`` is the one under test), the ``text`` block after it is what the
program prints on stdout, compared exactly. Every example gets a fresh daemon and an empty
working directory, and runs twice: once with ``XDG_RUNTIME_DIR`` set and once without it (a root
shell, a container, ssh without a login session), where convd and its clients use the fallback
directory under ``$TMPDIR``. Neither the daemon nor the examples get ``--socket`` or
``CONVD_SOCKET``: they find each other at the default path, as a new user's would.

Two examples cannot be a single program with fixed output: ``two-terminals`` (a watcher and a
writer running at the same time) and ``socat-status`` (the daemon's pid and version); they have
their own checks below.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from convd_schemas import __version__
from support import DaemonProcess, LineClient

README = Path(__file__).resolve().parents[2] / "README.md"

#: Every example in the README; a new one must be added here (and so gets run).
EXAMPLES = {
    "async-client",
    "tim",
    "v2",
    "conflict",
    "two-terminals",
    "jq",
    "groups",
    "watch",
    "socat-status",
    "batch",
    "draft-history",
}
#: The examples whose program and single output block are run and compared as they are.
PLAIN = sorted(EXAMPLES - {"two-terminals", "socat-status"})

_TIMEOUT = 30


class DefaultPathDaemon(DaemonProcess):
    """convd started as the README starts it: no ``--socket``, no ``$CONVD_SOCKET``.

    With ``xdg``, ``XDG_RUNTIME_DIR`` is ``root`` and the socket ``root/convd/convd.sock``;
    without, ``XDG_RUNTIME_DIR`` is unset and ``TMPDIR`` is ``root``, so the socket is the
    fallback ``root/convd-<uid>/convd.sock`` (private to this test, not the real /tmp one).
    """

    def __init__(self, root: Path, xdg: bool) -> None:
        super().__init__(root)
        self.xdg = xdg
        runtime = root / "convd" if xdg else root / f"convd-{os.getuid()}"
        self.socket = runtime / "convd.sock"

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.pop("CONVD_SOCKET", None)
        env.pop("CONVD_USER", None)
        if self.xdg:
            env["XDG_RUNTIME_DIR"] = str(self.root)
        else:
            env.pop("XDG_RUNTIME_DIR", None)
            env["TMPDIR"] = str(self.root)
        return env

    def start(self, wait: bool = True) -> DefaultPathDaemon:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "convd", "--db", str(self.db), "--log-level", "debug"],
                stdout=log,
                stderr=log,
                env=self.env,
            )
        if wait:
            self.wait_ready()
        return self


@pytest.fixture(params=[True, False], ids=["XDG_RUNTIME_DIR", "no-XDG_RUNTIME_DIR"])
def daemon(request: pytest.FixtureRequest, short_dir: Path) -> Iterator[DaemonProcess]:
    """A fresh convd at the default socket path, with and without ``XDG_RUNTIME_DIR``."""
    process = DefaultPathDaemon(short_dir, xdg=request.param).start()
    try:
        yield process
    finally:
        if process.process is not None and process.process.poll() is None:
            code = process.stop()
            assert code == 0, f"convd exited with {code} on SIGTERM:\n{process.logs()}"


def _examples() -> dict[str, list[tuple[str, str]]]:
    """Each example's fenced blocks, as (language, text), in README order."""
    text = README.read_text()
    found: dict[str, list[tuple[str, str]]] = {}
    for match in re.finditer(
        r"<!-- example:([\w-]+):begin -->\n(.*?)<!-- example:([\w-]+):end -->", text, re.S
    ):
        name, body, end = match.groups()
        assert end == name, f"README example {name!r} is closed by an end marker for {end!r}"
        assert name not in found, f"README example {name!r} appears twice"
        found[name] = re.findall(r"^```(\w*)\n(.*?)^```$", body, re.S | re.M)
    opened = re.findall(r"<!-- example:[\w-]+:begin -->", text)
    assert len(opened) == len(found), "an example's begin marker in README is not closed"
    return found


def _example(name: str) -> list[tuple[str, str]]:
    blocks = _examples().get(name)
    assert blocks, f"README lost its {name!r} example (or its code blocks)"
    return blocks


def _env(daemon: DaemonProcess) -> dict[str, str]:
    env = daemon.env
    env.pop("CONVD_USER", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}"
    if shutil.which("convctl", path=env["PATH"]) is None:
        pytest.fail("convctl is not installed in this virtualenv: pip install -e '.[test]'")
    return env


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: `bash .ci/run` installs it (apt-get install {tool})")


def _command(language: str, program: str, where: Path) -> list[str]:
    if language == "python":
        script = where / "example.py"
        script.write_text(program)
        return [sys.executable, str(script)]
    assert language == "sh", f"an example's program must be python or sh, not {language!r}"
    return ["bash", "-euo", "pipefail", "-c", program]


def _run(language: str, program: str, daemon: DaemonProcess, where: Path) -> str:
    done = subprocess.run(
        _command(language, program, where),
        env=_env(daemon),
        cwd=where,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr}"
    assert done.stderr == ""
    return done.stdout


def test_every_example_is_tested() -> None:
    assert set(_examples()) == EXAMPLES


@pytest.mark.parametrize("name", PLAIN)
def test_example_prints_what_the_readme_shows(
    name: str, daemon: DaemonProcess, tmp_path: Path
) -> None:
    _need("jq")
    blocks = _example(name)
    assert [language for language, _ in blocks][1:] == ["text"], (
        f"example {name!r} must be one program and one output block"
    )
    (language, program), (_, expected) = blocks
    assert _run(language, program, daemon, tmp_path) == expected


def test_socat_status_example(daemon: DaemonProcess, tmp_path: Path) -> None:
    _need("socat")
    _need("jq")
    [(language, program), (_, shown)] = _example("socat-status")
    out = _run(language, program, daemon, tmp_path)
    # The pid and version vary; the shape and the rest must match.
    pattern = r"convd (\S+), pid (\d+), (\d+) conversations\n"
    assert re.fullmatch(pattern, shown), "the README's shown output changed its shape"
    match = re.fullmatch(pattern, out)
    assert match, out
    assert daemon.process is not None
    assert match.groups() == (__version__, str(daemon.process.pid), "0")


class _Lines:
    """Read a pipe's lines in a thread, so that a test can wait for one with a timeout."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self._lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put("")  # EOF

    def next(self, timeout: float = 10.0) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no line within {timeout} s")

    def rest(self) -> str:
        self._thread.join(timeout=_TIMEOUT)
        lines = []
        while not self._lines.empty():
            lines.append(self._lines.get_nowait())
        return "".join(lines)


def test_two_terminals_example(daemon: DaemonProcess, tmp_path: Path) -> None:
    blocks = _example("two-terminals")
    assert [language for language, _ in blocks] == ["sh", "sh", "text", "text"]
    [(_, terminal1), (_, terminal2), (_, terminal2_shows), (_, terminal1_shows)] = blocks

    # Terminal 1: the watcher, running until interrupted.
    watcher = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", terminal1],
        env=_env(daemon),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    out, err = _Lines(watcher.stdout), _Lines(watcher.stderr)
    try:
        notice = err.next()  # written once subscribed, so the change below cannot be missed
        # Terminal 2, while terminal 1 runs.
        assert _run("sh", terminal2, daemon, tmp_path) == terminal2_shows
        event = out.next()  # flushed at once, while the watcher still runs
        assert watcher.poll() is None
        assert notice + event == terminal1_shows
        # Ctrl-C: the terminal sends SIGINT to the foreground process group.
        os.killpg(watcher.pid, signal.SIGINT)
        assert watcher.wait(timeout=_TIMEOUT) == 0
        assert out.rest() == ""
        assert err.rest() == ""  # no traceback
    finally:
        if watcher.poll() is None:
            os.killpg(watcher.pid, signal.SIGKILL)
            watcher.wait()
        out.rest()
        err.rest()
        for stream in (watcher.stdout, watcher.stderr):
            if stream is not None:
                stream.close()


def test_socat_session_at_the_default_path(daemon: DaemonProcess) -> None:
    # The session at the top of the README (also checked byte for byte by test_readme.py),
    # here with and without XDG_RUNTIME_DIR: `convctl socket-path` finds the socket either way.
    _need("socat")
    match = re.search(
        r"<!-- socat-session:begin -->\s*```sh\n(.*?)```\s*```json\n(.*?)```",
        README.read_text(),
        re.S,
    )
    assert match, "README lost its socat session"
    script, shown = match.groups()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=_env(daemon),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == shown.strip().splitlines()


def test_tim_example_with_a_conversation_without_a_draft(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    # What the socat session leaves behind: a conversation whose draft was cleared. The
    # example used to die in its callback (KeyError: 'conv_draft') and wait forever.
    with LineClient(daemon.socket) as line:
        line.call("session.login", {"user_id": "alice"})
        line.call("conv.create", {"conv_id": "Windows-02", "conv_type": 1})
    [(language, program), (_, shown)] = _example("tim")
    out = _run(language, program, daemon, tmp_path)
    assert out.splitlines() == [*shown.splitlines(), "Windows-02 -"]


def test_the_test_command_leaves_the_install_venv_alone() -> None:
    # `bash .ci/run` must not turn the README's `.venv` (pip install .) into an editable
    # install: it works in its own virtualenv.
    ci = (README.parent / ".ci" / "run").read_text()
    assert "venv=.venv-test" in ci
    assert not re.search(r"(^|[\s\"'/])\.venv/", ci), "bash .ci/run touches .venv"
    assert "`.venv-test`" in README.read_text()
