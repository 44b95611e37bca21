"""app.py's Windows wiring over the fake of the Win32 pipe calls (tests/pipe_support.py).

Runs on Linux only for now: convd.app does not import on Windows yet (the store's lock file
needs fcntl), which is also why the daemon as a whole does not run there.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from convd.app import _plan_pipe
from convd.config import Config
from convd.transport import PipeInUse
from convd_schemas.winpipe import pipe_name, pipe_sddl
from pipe_support import USER, FakeMachine

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="convd.app does not import on Windows yet (fcntl)"
)

NAME = pipe_name(USER)
DAEMON_PID = 100


def test_the_daemon_plans_its_pipe_before_anything_else(tmp_path: Path) -> None:
    # app.py's Windows wiring, over the fake: the default name, or the pipe --socket names;
    # the first instance exists once planned (a second convd is refused) and goes with the
    # claims. (run_daemon itself does not run on Windows yet; see the README.)
    machine = FakeMachine()
    config = Config(socket_path=tmp_path / "convd.sock", database_path=tmp_path / "convd.db")
    with ExitStack() as claims:
        plan = _plan_pipe(config, claims, machine.process(DAEMON_PID))
        assert plan.path == Path(NAME)
        assert plan.pipe is not None and plan.pipe.name == NAME
        assert machine.created == [(NAME, pipe_sddl(USER), True)]
        with ExitStack() as second, pytest.raises(PipeInUse):
            _plan_pipe(config, second, machine.process(DAEMON_PID + 1))
    assert machine.instances(NAME) == []

    named = Config(socket_path=Path(r"\\.\pipe\convd-test"), database_path=config.database_path)
    with ExitStack() as claims:
        assert _plan_pipe(named, claims, machine.process(DAEMON_PID)).path == Path(
            r"\\.\pipe\convd-test"
        )
