"""The SDK faces never keep a process alive, and a callback that raises does not leave a
waiting main thread stuck: each case runs as its own Python process against the real daemon."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from support import DaemonProcess

_TIMEOUT = 30  # a hang detector, not a timing assertion

_PRELUDE = """\
import json
import sys
import threading

from convd_client import tim

logged_in = threading.Event()
tim.TIMInit(0)
tim.TIMLogin(sys.argv[1], "", lambda code, *_: logged_in.set(), None)
assert logged_in.wait(10)
"""


def _python(daemon: DaemonProcess, user: str, program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program), user],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )


def test_a_process_ends_when_its_main_thread_does(shared_daemon: DaemonProcess, user: str) -> None:
    # No TIMUninit: the SDK is closed at exit, and a call still pending then reports (here
    # its result or 6013), as TIMUninit would have made it.
    done = _python(
        shared_daemon,
        user,
        _PRELUDE
        + """
tim.TIMSetConvEventCallback(lambda *args: None, None)
assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, '{"draft_user_define": "x"}') == 0
# One write per line: print() writes the text and its newline apart, and the callback's
# thread may print between the two.
say = lambda line: (sys.stdout.write(line + "\\n"), sys.stdout.flush())
tim.TIMConvGetConvList(lambda code, desc, params, data: say(f"listed {code}"), None)
say("main thread ends")
""",
    )
    assert done.returncode == 0, done.stderr
    # The list's callback comes before the main thread's line or after it (then at exit).
    lines = sorted(done.stdout.splitlines())
    assert lines in (["listed 0", "main thread ends"], ["listed 6013", "main thread ends"])
    assert done.stderr == ""


def test_a_callback_blocked_forever_does_not_hold_the_exit(
    shared_daemon: DaemonProcess, user: str
) -> None:
    done = _python(
        shared_daemon,
        user,
        _PRELUDE
        + """
entered = threading.Event()

def stuck(code, desc, params, data):
    entered.set()
    threading.Event().wait()  # never returns

tim.TIMConvGetConvList(stuck, None)
assert entered.wait(10)
print("main thread ends", flush=True)
""",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "main thread ends\n"


def test_ctrl_c_ends_a_main_thread_waiting_for_a_callback(
    shared_daemon: DaemonProcess, user: str
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _PRELUDE + 'print("waiting", flush=True)\nthreading.Event().wait()\n',
            user,
        ],
        env=shared_daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "waiting\n"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode != 0
    assert "KeyboardInterrupt" in err


def test_a_callback_that_raises_interrupts_a_waiting_main_thread(
    shared_daemon: DaemonProcess, user: str
) -> None:
    # The README's first `tim` example, on a conversation without a draft: the callback
    # raised KeyError and the main thread waited for it forever.
    done = _python(
        shared_daemon,
        user,
        _PRELUDE
        + """
created = threading.Event()
tim.TIMConvCreate("carol", tim.kTIMConv_C2C, lambda *args: created.set(), None)
assert created.wait(10)
listed = threading.Event()

def on_list(code, desc, json_params, user_data):
    for conv in json.loads(json_params):
        print(conv["conv_draft"])  # KeyError: carol has no draft
    listed.set()

tim.TIMConvGetConvList(on_list, None)
try:
    listed.wait()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    raise
""",
    )
    assert done.returncode != 0
    assert done.stdout == "interrupted\n"
    assert "KeyError: 'conv_draft'" in done.stderr
    assert "interrupting the main thread" in done.stderr


def test_a_v2_listener_that_raises_interrupts_a_waiting_main_thread(
    shared_daemon: DaemonProcess, user: str
) -> None:
    done = _python(
        shared_daemon,
        user,
        """
import sys
import threading

from convd_client.v2 import V2TIMCallback, V2TIMConversationListener, V2TIMManager

class Broken(V2TIMConversationListener):
    def onNewConversation(self, conversationList):
        raise RuntimeError("a listener bug")

manager = V2TIMManager.getInstance()
manager.initSDK(0)
conversations = V2TIMManager.getConversationManager()
conversations.addConversationListener(Broken())
logged_in = threading.Event()
manager.login(sys.argv[1], "", V2TIMCallback(onSuccess=logged_in.set))
assert logged_in.wait(10)
conversations.setConversationDraft("c2c_bob", "hi", V2TIMCallback())
try:
    threading.Event().wait()  # what the listener would have set
except KeyboardInterrupt:
    print("interrupted", flush=True)
""",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "interrupted\n"
    assert "RuntimeError: a listener bug" in done.stderr


def test_a_callback_error_handler_replaces_the_interrupt(
    shared_daemon: DaemonProcess, user: str
) -> None:
    done = _python(
        shared_daemon,
        user,
        """
import sys
import threading

import convd_client
from convd_client import tim

errors = []
handled = threading.Event()

def handler(exc):
    errors.append(exc)
    handled.set()

convd_client.set_callback_error_handler(handler)
tim.TIMInit(0)

def on_login(code, desc, params, data):
    raise ValueError("mine")

tim.TIMLogin(sys.argv[1], "", on_login, None)
assert handled.wait(10)
created = threading.Event()  # the logic thread goes on with the next callback
tim.TIMConvCreate("bob", tim.kTIMConv_C2C, lambda *args: created.set(), None)
assert created.wait(10)
tim.TIMUninit()
print(repr(errors[0]))
""",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ValueError('mine')\n"
    assert done.stderr == ""
