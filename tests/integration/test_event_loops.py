"""The daemon serves the same on asyncio's own event loop and on uvloop (``--event-loop``)."""

from __future__ import annotations

import os

import pytest

from ops_support import EnvDaemon
from support import DaemonProcess, short_tmpdir, text_draft


def _assert_an_event_reaches_a_subscriber(daemon: DaemonProcess) -> None:
    with daemon.client() as writer, daemon.client() as watcher:
        watcher.call("conv.subscribe", {})
        writer.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": text_draft("hi")})
        event = watcher.next_notification()
        assert event["params"]["event"] == 0
        assert event["params"]["conv_array"][0]["conv_id"] == "bob"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_requests_events_and_shutdown_on_each_loop(loop: str) -> None:
    pytest.importorskip(loop)
    with short_tmpdir() as root:
        daemon = DaemonProcess(root, "--event-loop", loop).start()
        try:
            _assert_an_event_reaches_a_subscriber(daemon)
            with daemon.client() as writer:
                # A reply larger than the socket buffer goes out whole (write buffering).
                for n in range(300):
                    writer.call(
                        "conv.set_draft",
                        {"conv_id": f"c{n}", "conv_type": 1, "draft": text_draft("x" * 2000)},
                    )
                page = writer.call("conv.list", {"count": 1000})
                assert len(page["conversation_list_result_conv_list"]) == 301
        finally:
            assert daemon.stop() == 0
        assert f"event loop {loop}" in daemon.logs()


def test_without_uvloop_the_default_auto_serves_on_asyncio() -> None:
    # The test extra always installs uvloop: a uvloop module that fails to import, first on
    # the daemon's path, stands in for a machine without it. No --event-loop: auto, as a user
    # who installed plain convd would start it.
    with short_tmpdir() as root:
        blocker = root / "no-uvloop"
        blocker.mkdir()
        (blocker / "uvloop.py").write_text('raise ImportError("no uvloop on this machine")\n')
        path = [str(blocker), *filter(None, [os.environ.get("PYTHONPATH")])]
        daemon = EnvDaemon(root, env={"PYTHONPATH": os.pathsep.join(path)}).start()
        try:
            _assert_an_event_reaches_a_subscriber(daemon)
        finally:
            assert daemon.stop() == 0
        logs = daemon.logs()
    assert "event loop asyncio" in logs, logs
    assert "Traceback" not in logs, logs


def test_asking_for_uvloop_without_it_is_a_clear_refusal() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['uvloop'] = None\n"
        "from convd.cli import main\n"
        "raise SystemExit(main(['--event-loop', 'uvloop', '--socket', sys.argv[1] + '/s',"
        " '--db', sys.argv[1] + '/d.db']))"
    )
    with short_tmpdir() as root:
        done = subprocess.run(
            [sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 1
    assert "uvloop is not installed" in done.stderr
    assert "Traceback" not in done.stderr
