"""What the C-style face (``tim``) and the V2 face (``v2``) share: one SDK instance.

An instance is a :class:`BlockingClient` that never refuses to start (it connects in the
background), its callback thread (the SDK's "logic thread") and the login state.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import anyio

from convd_schemas import ConvInfo, ConvKey, JsonRpcErrCode, TIMConvEvent, TIMErrCode

from ._threads import limit_stop_waits
from .blocking import BlockingClient
from .client import Client, ConnectionState, ConvEvent, GroupEvent
from .errors import (
    ClientClosed,
    ConvdClientError,
    ConvdError,
    DaemonUnavailable,
    ProtocolError,
    RequestTimeout,
    RevisionConflict,
)

__all__ = ["SdkCore", "SdkUninitialized", "callback_error"]

T = TypeVar("T")


class SdkUninitialized(ConvdClientError):
    """The SDK was uninitialized before the call completed."""


def callback_error(exc: BaseException) -> tuple[int, str]:
    """The SDK callback code and description for a failed call.

    Daemon errors keep their code (SDK ``ERR_*`` codes and convd's 9000x), except JSON-RPC's
    own: -32602 becomes 6017 ERR_INVALID_PARAMETERS and the others 7012
    ERR_SDK_INTERNAL_ERROR. No connection: 6022 ERR_IO_OPERATION_FAILED. No response in
    time: 6012 ERR_REQUEST_TIMEOUT. Uninitialized meanwhile: 6013 ERR_SDK_NOT_INITIALIZED.
    """
    if isinstance(exc, ConvdError):
        if exc.code == JsonRpcErrCode.INVALID_PARAMS:
            return int(TIMErrCode.ERR_INVALID_PARAMETERS), exc.description
        if exc.code < 0:
            return int(TIMErrCode.ERR_SDK_INTERNAL_ERROR), exc.description
        return exc.code, exc.description
    if isinstance(exc, DaemonUnavailable):
        return int(TIMErrCode.ERR_IO_OPERATION_FAILED), str(exc)
    if isinstance(exc, RequestTimeout):
        return RequestTimeout.CODE, str(exc)
    if isinstance(exc, SdkUninitialized | ClientClosed):
        return int(TIMErrCode.ERR_SDK_NOT_INITIALIZED), "the SDK was uninitialized"
    if isinstance(exc, ProtocolError):
        return int(TIMErrCode.ERR_SDK_INTERNAL_ERROR), str(exc)
    return int(TIMErrCode.ERR_SDK_INTERNAL_ERROR), f"{type(exc).__name__}: {exc}"


logger = logging.getLogger("convd_client")

#: At exit, how long an SDK left initialized may take to close (seconds).
EXIT_CLOSE_WAIT = 2.0

Done = Callable[[Any, BaseException | None], None]


class SdkCore:
    """One initialized SDK: calls go to the daemon, callbacks run on the logic thread.

    :param sdk_app_id: passed to every login
    :param socket_path: the daemon's socket (None: ``$CONVD_SOCKET`` or the default)
    :param timeout: per-call timeout in seconds
    :param on_event: runs on the logic thread for every event, the sync frames' Start and
        Finish included (the SDK instance subscribes with ``sync``: after every login and
        every reconnect its listeners get Start, the list or the missed changes, Finish)
    :param on_state: runs on the logic thread on every connection state change
    :param on_group_event: runs on the logic thread for every change of the conversation
        groups, in order with the events
    """

    def __init__(
        self,
        sdk_app_id: int,
        *,
        socket_path: str | os.PathLike[str] | None,
        timeout: float,
        on_event: Callable[[ConvEvent], object],
        on_state: Callable[[ConnectionState], object] | None = None,
        on_group_event: Callable[[GroupEvent], object] | None = None,
    ) -> None:
        self.sdk_app_id = sdk_app_id
        self.client = BlockingClient(socket_path, timeout=timeout, require_connection=False)
        # Draft compare-and-set (issue 9 section 3): the revisions this instance has seen of
        # the logged-in account's conversations, noted from every event before the face's
        # own listener runs, each with the reading of _notes (a count of notes) it was
        # noted at, so that an answer can tell what it supersedes.
        self._revisions: dict[tuple[str, int], tuple[int, int]] = {}
        self._notes = 0
        # The account the revisions are of (None: none yet, or logged out).
        self._revisions_of: str | None = None
        self._revisions_lock = threading.Lock()
        self._draft_lock: anyio.Lock | None = None
        self.client.add_event_listener(self._note_event)
        self.client.add_event_listener(on_event)
        if on_state is not None:
            self.client.add_state_listener(on_state)
        if on_group_event is not None:
            self.client.add_group_event_listener(on_group_event)
        self._lock = threading.Lock()
        self._user_id: str | None = None
        self._logging_in = False
        self._generation = 0

    def start(self) -> None:
        """Start the loop and the logic thread; the connection comes up in the background.

        If the program ends (its main thread and other non-daemon threads finished) with the
        SDK still initialized, it is closed at exit as :meth:`stop` does, for at most
        :data:`EXIT_CLOSE_WAIT` seconds: the SDK's threads are daemon threads and never keep
        the process alive.
        """
        self.client.open()
        atexit.register(self._close_at_exit)

    def stop(self) -> None:
        """Close: pending calls complete with 6013, then the queued callbacks run."""
        atexit.unregister(self._close_at_exit)
        self.client.close()

    def _close_at_exit(self) -> None:
        # The program is ending: a callback blocked forever must not hold the exit up, so
        # waiting for the logic thread is bounded (it is a daemon thread: it does not have to
        # end for the process to).
        limit_stop_waits(EXIT_CLOSE_WAIT)
        self.stop()

    @property
    def user_id(self) -> str | None:
        """The logged-in user (set once a login completed, cleared by logout)."""
        return self._user_id

    @property
    def logging_in(self) -> bool:
        """True while a login is under way."""
        return self._logging_in

    def is_logic_thread(self) -> bool:
        """True on the thread that runs the callbacks."""
        return self.client.callback_thread_id == threading.get_ident()

    def post(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` on the logic thread."""
        return self.client.post(fn, *args)

    def run(self, fn: Callable[[Client], Awaitable[T]], done: Done) -> bool:
        """Start ``fn(client)``; when it ends, run ``done(result, error)`` on the logic thread.

        ``done`` runs exactly once if this returns True, never if it returns False (the SDK
        is being uninitialized).
        """
        try:
            future = self.client.submit(fn)
        except ClientClosed:
            return False

        def finished(future: concurrent.futures.Future[T]) -> None:
            error: BaseException | None
            result: Any = None
            if future.cancelled():
                error = SdkUninitialized("the SDK was uninitialized")
            else:
                error = future.exception()
                if error is None:
                    result = future.result()
            if not self.post(done, result, error):
                # The logic thread has stopped (the SDK is being uninitialized): run it here,
                # so that it still runs exactly once.
                try:
                    done(result, error)
                except Exception:
                    # Only logged: the caller is inside the uninitialization, not waiting.
                    logger.exception("a convd_client callback raised")

        future.add_done_callback(finished)
        return True

    def run_sync(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``fn(client)`` and wait for it.

        :raises SdkUninitialized: the SDK is being uninitialized
        """
        try:
            return self.client.submit(fn).result()
        except ClientClosed as exc:
            raise SdkUninitialized("the SDK is not initialized") from exc
        except concurrent.futures.CancelledError as exc:
            raise SdkUninitialized("the SDK was uninitialized") from exc

    def login(self, user_id: str, done: Done) -> bool:
        """Log in and subscribe to events (framed: Start, the whole list, Finish); the user
        counts as logged in once both succeed."""
        with self._lock:
            generation = self._generation
            self._logging_in = True

        async def go(client: Client) -> None:
            try:
                logged_in = await client.login(user_id, self.sdk_app_id)
                self._revisions_now_of(logged_in.user_id)
                await client.subscribe(sync=True)
                with self._lock:
                    if generation == self._generation:
                        self._user_id = user_id
            finally:
                with self._lock:
                    if generation == self._generation:
                        self._logging_in = False

        return self.run(go, done)

    def logout(self, done: Done) -> bool:
        """Log out; the user counts as logged out at once."""
        with self._lock:
            self._generation += 1
            self._user_id = None
            self._logging_in = False
        self._revisions_now_of(None)
        return self.run(lambda client: client.logout(), done)

    # -- draft compare-and-set (issue 9 section 3) -------------------------------------------
    # Both faces send, with their own draft writes, the revision they last saw of the
    # conversation (from an event, a get or list, or their own last write) as if_revision,
    # so that a window that missed a newer draft cannot silently overwrite it.
    #
    # Within one account and one history of the daemon's database a conversation's revision
    # never goes back, so a late answer never lowers what is remembered. Revisions do go
    # back with another account (its own conversations) and after a restore of an older
    # backup (a new history): the memory is emptied when the account changes and when a
    # sync frame of the whole list starts (every login, and the reload after a restore),
    # and a write's answer, a conflict's included, replaces whatever was noted before the
    # write was sent.

    def _note_event(self, event: ConvEvent) -> None:
        if event.event is TIMConvEvent.kTIMConvEvent_Start and event.full:
            # The whole list follows: it replaces what was seen (revisions may have gone
            # back: a restored database, another account). Events queued before this Start,
            # possibly of the old history or account, were noted before it.
            self.forget_all_revisions()
        elif event.event is TIMConvEvent.kTIMConvEvent_Del:
            self.forget_revisions(event.keys)
        else:
            self.note_revisions(event.conversations)

    def _revisions_now_of(self, user_id: str | None) -> None:
        """The revisions remembered are of ``user_id``'s conversations from now on: those of
        another account are forgotten (its conversations are not this one's)."""
        with self._revisions_lock:
            if user_id is None or user_id != self._revisions_of:
                self._revisions.clear()
            self._revisions_of = user_id

    def note_revisions(self, infos: Iterable[ConvInfo]) -> None:
        """Remember the draft revisions of these conversations as seen."""
        for info in infos:
            self.note_revision(info, info.conv_draft_revision)

    def note_revision(
        self, key: ConvKey | ConvInfo, revision: int, *, asked_at: int | None = None
    ) -> None:
        """Remember ``revision`` as seen of the conversation ``key``.

        A lower revision than the one remembered is ignored (an older answer arriving late),
        unless it answers a request sent after that one was noted: with ``asked_at``, the
        :meth:`revision_clock` reading taken before the request was sent, the answer is the
        daemon's state now and replaces what was noted up to then, even when lower (the
        database was restored to an older backup meanwhile).
        """
        conv = (key.conv_id, int(key.conv_type))
        with self._revisions_lock:
            self._notes += 1
            seen = self._revisions.get(conv)
            if seen is None or revision > seen[0] or (asked_at is not None and seen[1] <= asked_at):
                self._revisions[conv] = (revision, self._notes)

    def revision_clock(self) -> int:
        """A reading to pass to :meth:`note_revision` as ``asked_at`` with the answer to a
        request sent after it was taken."""
        with self._revisions_lock:
            return self._notes

    def forget_revisions(self, keys: Iterable[ConvKey]) -> None:
        """Forget what was seen of these conversations (deleted)."""
        with self._revisions_lock:
            for key in keys:
                self._revisions.pop((key.conv_id, int(key.conv_type)), None)

    def forget_all_revisions(self) -> None:
        """Forget what was seen of every conversation: the next draft writes are
        unconditional until something is seen again."""
        with self._revisions_lock:
            self._revisions.clear()

    def seen_revision(self, key: ConvKey) -> int | None:
        """The draft revision this instance last saw of ``key``, or None."""
        with self._revisions_lock:
            seen = self._revisions.get((key.conv_id, int(key.conv_type)))
            return None if seen is None else seen[0]

    def noted(self, result: T) -> T:
        """Note the revisions of a ConvInfo (or a list of them) a call returned; return it."""
        if isinstance(result, ConvInfo):
            self.note_revisions((result,))
        elif isinstance(result, list):
            self.note_revisions(item for item in result if isinstance(item, ConvInfo))
        return result

    async def write_draft(
        self,
        key: ConvKey,
        write: Callable[[int | None], Awaitable[ConvInfo]],
        *,
        if_revision: int | None = None,
        compare_and_set: bool = True,
    ) -> ConvInfo:
        """Run one of the face's draft writes (set, clear, restore) as ``write(if_revision)``.

        ``if_revision`` is the caller's own when given; else, with ``compare_and_set``, the
        revision this instance last saw of the conversation (none seen: no condition). The
        instance's draft writes run one at a time, so that its own writes in a row each see
        the revision the one before produced. The result, or the current state a conflict
        reports, is noted as seen and replaces what was remembered before the write was sent,
        even a higher revision (another account's, a restored database's): after a conflict
        the caller has seen the current draft, and writing again overwrites it.

        :raises RevisionConflict: the draft moved on (90001); ``current`` holds it
        """
        if self._draft_lock is None:
            self._draft_lock = anyio.Lock()  # on the client's loop, where every call runs
        async with self._draft_lock:
            revision = if_revision
            if revision is None and compare_and_set:
                revision = self.seen_revision(key)
            asked_at = self.revision_clock()
            try:
                info = await write(revision)
            except RevisionConflict as conflict:
                current = conflict.current
                if current is None:
                    self.forget_revisions((key,))
                else:
                    self.note_revision(current, current.conv_draft_revision, asked_at=asked_at)
                raise
            self.note_revision(info, info.conv_draft_revision, asked_at=asked_at)
            return info
