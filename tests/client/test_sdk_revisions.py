"""The faces' memory of draft revisions (compare-and-set) across accounts, restores and
conflicts: what the daemon reports now wins over what an instance remembers from elsewhere."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from convd_client import tim
from convd_client._sdk import SdkCore
from convd_client.v2 import (
    V2TIMCallback,
    V2TIMConversation,
    V2TIMManager,
    V2TIMSDKConfig,
    V2TIMValueCallback,
)
from convd_schemas import ConvKey, TIMConvType
from ops_support import run_convd
from support import CommCallback, DaemonProcess, text_draft

BOB = ConvKey(conv_id="bob", conv_type=TIMConvType.kTIMConv_C2C)


class Outcome:
    """What one V2 callback reported (a conflict as ``("conflict", current)``)."""

    def __init__(self) -> None:
        self.results: queue.Queue[tuple[str, Any]] = queue.Queue()

    def callback(self) -> V2TIMCallback:
        results = self.results

        class Recorder(V2TIMCallback):
            def onSuccess(self) -> None:
                results.put(("ok", None))

            def onError(self, code: int, desc: str) -> None:
                results.put(("error", (code, desc)))

            def onDraftConflict(
                self, code: int, desc: str, current: V2TIMConversation | None
            ) -> None:
                results.put(("conflict", current))

        return Recorder()

    def value_callback(self) -> V2TIMValueCallback[Any]:
        return V2TIMValueCallback(
            onSuccess=lambda value: self.results.put(("ok", value)),
            onError=lambda code, desc: self.results.put(("error", (code, desc))),
        )

    def get(self) -> tuple[str, Any]:
        return self.results.get(timeout=5)

    def ok(self) -> Any:
        kind, value = self.get()
        assert kind == "ok", value
        return value


def c_draft(text: str) -> str:
    return json.dumps(text_draft(text))


def stored(daemon: DaemonProcess, user: str, conv_id: str = "bob") -> dict[str, Any]:
    """The conversation as the daemon holds it, read behind the faces' back."""
    with daemon.client(user) as line:
        found = line.call("conv.get", {"convs": [{"conv_id": conv_id, "conv_type": 1}]})
    assert found, f"{user} has no {conv_id}"
    conv: dict[str, Any] = found[0]
    return conv


def other_sets(daemon: DaemonProcess, user: str, text: str) -> None:
    """Another process sets ``user``'s bob draft."""
    with daemon.client(user) as line:
        line.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": text_draft(text)})


# -- C face ----------------------------------------------------------------------------------


def c_login(user: str) -> None:
    """TIMLogin, and wait until its sync frame is through (kTIMConvEvent_Finish)."""
    finished = threading.Event()
    tim.TIMSetConvEventCallback(
        lambda event, array, ud: finished.set() if event == tim.kTIMConvEvent_Finish else None,
        None,
    )
    try:
        callback = CommCallback()
        assert tim.TIMLogin(user, "sig", callback, None) == tim.TIM_SUCC
        assert callback.wait()[0] == 0
        assert finished.wait(5)
    finally:
        tim.TIMSetConvEventCallback(None, None)


def c_logout() -> None:
    callback = CommCallback()
    assert tim.TIMLogout(callback, None) == tim.TIM_SUCC
    assert callback.wait()[0] == 0


@pytest.fixture
def c_face(shared_daemon: DaemonProcess) -> Iterator[list[int | None]]:
    """The C face initialized (not logged in); yields the revisions the conflict callback
    reported (None: the conversation is gone)."""
    config = {"convd_socket_path": str(shared_daemon.socket)}
    assert tim.TIMInit(0, json.dumps(config)) == tim.TIM_SUCC
    conflicts: list[int | None] = []
    tim.TIMSetConvDraftConflictCallback(
        lambda current, ud: conflicts.append(
            json.loads(current)["conv_draft_revision"] if current else None
        ),
        None,
    )
    try:
        yield conflicts
    finally:
        tim.TIMSetConvEventCallback(None, None)
        tim.TIMSetConvDraftConflictCallback(None, None)
        assert tim.TIMUninit() == tim.TIM_SUCC


def c_core() -> SdkCore:
    core = tim._core  # the face's own state: what it has seen
    assert core is not None
    return core


def test_c_face_after_an_account_switch_writes_the_new_accounts_draft(
    c_face: list[int | None], shared_daemon: DaemonProcess, user: str, other_user: str
) -> None:
    other_sets(shared_daemon, other_user, "theirs")  # the other account's bob: revision 1
    c_login(user)
    for text in ("a", "b", "c"):  # this account's bob: revision 3
        assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft(text)) == tim.TIM_SUCC
    c_logout()
    c_login(other_user)
    # Another account's bob: what was seen of the first account's says nothing about it.
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("mine")) == tim.TIM_SUCC
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("mine 2")) == tim.TIM_SUCC
    assert c_face == []
    now = stored(shared_daemon, other_user)
    assert now["conv_draft_revision"] == 3
    assert now["conv_draft"]["draft_user_define"] == ""
    assert now["conv_draft"]["draft_msg"]["message_elem_array"][0]["text_elem_content"] == (
        "mine 2"
    )
    assert stored(shared_daemon, user)["conv_draft_revision"] == 3


def test_c_face_after_a_conflict_the_next_write_goes_through_even_at_a_lower_revision(
    c_face: list[int | None], shared_daemon: DaemonProcess, user: str
) -> None:
    c_login(user)
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("mine")) == tim.TIM_SUCC
    # The instance remembers a revision above the stored one (as after a restore of an
    # older backup, before the reload reached it).
    c_core().note_revision(BOB, 7)
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("refused")) == (
        tim.TIM_ERR_CONFLICT
    )
    # The conflict showed the current draft (revision 1): the next write goes through.
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("again")) == tim.TIM_SUCC
    assert tim.TIMConvCancelDraft("bob", tim.kTIMConv_C2C) == tim.TIM_SUCC
    assert stored(shared_daemon, user)["conv_draft_revision"] == 3
    assert c_face == [1]


def test_c_face_a_conflicting_restore_shows_the_current_revision_too(
    c_face: list[int | None], shared_daemon: DaemonProcess, user: str
) -> None:
    c_login(user)
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("first")) == tim.TIM_SUCC
    assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("second")) == tim.TIM_SUCC
    c_core().note_revision(BOB, 9)
    callback = CommCallback()
    assert tim.TIMConvRestoreDraft("bob", tim.kTIMConv_C2C, 1, callback, None) == tim.TIM_SUCC
    code, _, json_params, _ = callback.wait()
    assert (code, json.loads(json_params)["conv_draft_revision"]) == (90001, 2)
    assert tim.TIMConvRestoreDraft("bob", tim.kTIMConv_C2C, 1, callback, None) == tim.TIM_SUCC
    code, _, json_params, _ = callback.wait()
    assert (code, json.loads(json_params)["conv_draft_revision"]) == (0, 3)


# -- V2 face ---------------------------------------------------------------------------------


def manager() -> V2TIMManager:
    return V2TIMManager.getInstance()


def v2_login(user: str) -> None:
    outcome = Outcome()
    manager().login(user, "sig", outcome.callback())
    outcome.ok()


def v2_logout() -> None:
    outcome = Outcome()
    manager().logout(outcome.callback())
    outcome.ok()


def v2_set(conversation: str, text: str) -> tuple[str, Any]:
    outcome = Outcome()
    V2TIMManager.getConversationManager().setConversationDraft(
        conversation, text, outcome.callback()
    )
    return outcome.get()


@pytest.fixture
def v2(shared_daemon: DaemonProcess) -> Iterator[None]:
    assert manager().initSDK(0, V2TIMSDKConfig(socketPath=str(shared_daemon.socket)))
    try:
        yield
    finally:
        manager().unInitSDK()


def test_v2_after_an_account_switch_writes_the_new_accounts_draft(
    v2: None, shared_daemon: DaemonProcess, user: str, other_user: str
) -> None:
    other_sets(shared_daemon, other_user, "theirs")  # the other account's bob: revision 1
    v2_login(user)
    for text in ("a", "b", "c"):
        assert v2_set("c2c_bob", text) == ("ok", None)
    v2_logout()
    v2_login(other_user)
    for n in range(3):
        assert v2_set("c2c_bob", f"mine {n}") == ("ok", None)
    now = stored(shared_daemon, other_user)
    assert (now["conv_draft_revision"], now["conv_draft"]["draft_user_define"]) == (4, "mine 2")
    assert stored(shared_daemon, user)["conv_draft_revision"] == 3


def test_v2_after_a_conflict_the_next_write_goes_through_even_at_a_lower_revision(
    v2: None, shared_daemon: DaemonProcess, user: str
) -> None:
    v2_login(user)
    assert v2_set("c2c_bob", "mine") == ("ok", None)
    core = manager()._core
    assert core is not None
    core.note_revision(BOB, 7)
    kind, current = v2_set("c2c_bob", "refused")
    assert kind == "conflict"
    assert (current.draftText, current.draftRevision) == ("mine", 1)
    assert v2_set("c2c_bob", "again") == ("ok", None)
    assert stored(shared_daemon, user)["conv_draft_revision"] == 2


# -- restore: the daemon's history goes back ---------------------------------------------------


def test_c_face_writes_go_through_after_the_database_is_restored_to_an_older_backup(
    daemon: DaemonProcess, short_dir: Path
) -> None:
    config = {"convd_socket_path": str(daemon.socket)}
    assert tim.TIMInit(0, json.dumps(config)) == tim.TIM_SUCC
    try:
        c_login("alice")
        assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("v1")) == tim.TIM_SUCC
        backup = short_dir / "old.db"
        with daemon.client("alice") as line:
            line.call("daemon.backup", {"path": str(backup)})
        for text in ("v2", "v3"):
            assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft(text)) == tim.TIM_SUCC
        assert c_core().seen_revision(BOB) == 3

        # The instance sees the reload (Start, the list, Finish) once convd is back.
        frames: queue.Queue[int] = queue.Queue()
        tim.TIMSetConvEventCallback(lambda event, array, ud: frames.put(event), None)
        assert daemon.stop() == 0
        restored = run_convd("restore", backup, "--db", daemon.db, env=daemon.env)
        assert restored.returncode == 0, restored.stderr
        daemon.start()
        while frames.get(timeout=15) != tim.kTIMConvEvent_Finish:
            pass

        assert c_core().seen_revision(BOB) == 1
        assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("new")) == tim.TIM_SUCC
        assert tim.TIMConvSetDraft("bob", tim.kTIMConv_C2C, c_draft("newer")) == tim.TIM_SUCC
        assert stored(daemon, "alice")["conv_draft_revision"] == 3
    finally:
        tim.TIMSetConvEventCallback(None, None)
        assert tim.TIMUninit() == tim.TIM_SUCC


# -- what is remembered ------------------------------------------------------------------------


def test_an_answer_replaces_what_was_noted_before_it_was_asked_for_and_nothing_newer(
    short_dir: Path,
) -> None:
    core = SdkCore(0, socket_path=short_dir / "none.sock", timeout=5, on_event=lambda e: None)
    core.note_revision(BOB, 5)
    core.note_revision(BOB, 3)  # a late answer: never back
    assert core.seen_revision(BOB) == 5
    asked = core.revision_clock()
    core.note_revision(BOB, 2, asked_at=asked)  # asked for after 5 was noted: it is now
    assert core.seen_revision(BOB) == 2
    asked = core.revision_clock()
    core.note_revision(BOB, 9)  # noted while the request was out: newer than its answer
    core.note_revision(BOB, 4, asked_at=asked)
    assert core.seen_revision(BOB) == 9
