"""The SDK's V2 conversation API (``V2TIMManager`` / ``V2TIMConversationManager``), served by
convd.

Names and shapes follow the V2TIM SDK (Java flavour)::

    manager = V2TIMManager.getInstance()
    manager.initSDK(sdk_app_id)
    manager.login("alice", "", V2TIMCallback(onSuccess=..., onError=...))
    conversations = V2TIMManager.getConversationManager()
    conversations.setConversationDraft("c2c_bob", "hello", V2TIMCallback(...))

Conversations are named by V2 ids: ``c2c_<userID>`` and ``group_<groupID>``.

Callbacks
    Every call reports through its callback exactly once, later, on the SDK instance's logic
    thread (never inside the call): ``onSuccess()`` / ``onSuccess(value)`` or
    ``onError(code, desc)``. Error codes are the SDK's: 6013 not initialized, 6014 not logged
    in, 6017 invalid parameters (a conversation id without a ``c2c_``/``group_`` prefix, a page
    size <= 0), 8001 a draft text over the SDK's 12 KiB message body limit, 6004 no such
    conversation, 7003/8501 invalid ids, 90002 pin limit; plus 6022
    ``ERR_IO_OPERATION_FAILED`` when convd is not reachable (calls fail at once while it is
    down; the SDK reconnects in the background and logs in again), and 6012
    ``ERR_REQUEST_TIMEOUT`` when it did not answer in time. Callbacks may be
    :class:`V2TIMCallback` / :class:`V2TIMValueCallback` objects (given callables or
    subclassed) or any object with the same methods; None is allowed.

Drafts
    As in the SDK's V2 layer, ``setConversationDraft`` stores the text in the draft's
    ``draft_user_define``, and also as one text element in ``draft_msg`` so that C-face
    readers see it; an empty or None text clears the draft. ``V2TIMConversation.draftText``
    is ``draft_user_define`` when it is not empty, else the text elements (joined): a draft
    written through the C face with text element "this draft" and user define "this is
    userdefine" (the SDK header's example) reads "this is userdefine", one without user
    define reads as its text. See :mod:`convd_client.drafts`.

Conflict-safe drafts (convd extension)
    Every :class:`V2TIMConversation` carries ``draftRevision``. Pass it back as
    ``setConversationDraft(..., ifRevision=conversation.draftRevision)`` to write only if
    nobody changed the draft since. On a conflict nothing is written and the callback gets
    ``onError(90001, desc)``, ``desc`` naming the current revision and text; a callback that
    defines ``onDraftConflict(code, desc, current)`` gets that instead, with ``current`` the
    conversation as it is now (its draft and revision), or None if it no longer exists.

Batch calls
    ``deleteConversationList`` and ``setConversationCustomData`` take up to 100 V2 ids and
    report through ``V2TIMValueCallback.onSuccess`` a list of
    :class:`V2TIMConversationOperationResult`, one per conversation (``resultCode`` 0, or 6004
    when it does not exist); ``onError`` only when the whole call failed (6017: no ids, an id
    without prefix, more than 100 for a delete or custom data over 256 bytes; 51006: more than
    100 for custom data; 7003/8501 an invalid id).

Unread counts
    convd receives no messages, so no conversation has unread messages:
    ``getTotalUnreadMessageCount`` reports 0 (from this process, without asking convd: the
    answer cannot differ), and ``onTotalUnreadMessageCountChanged`` is never called.
Compare-and-set by default (convd extension)
    The manager remembers the ``draftRevision`` it last saw of each conversation (from an
    event, ``getConversation`` / ``getConversationList``, or its own last draft write) and
    sends it as ``ifRevision`` with ``setConversationDraft`` (set and clear) and
    ``restoreConversationDraft``, unless ``ifRevision`` is given: a window that has not seen a
    newer draft cannot silently overwrite it. The refusal reaches the callback as above
    (``onDraftConflict`` with the current conversation, else ``onError(90001, desc)``);
    having seen the current draft, writing again overwrites it. A conversation the manager
    has seen nothing of is written unconditionally. Opt out per call with
    ``overwrite=True``, or for the manager with ``draftCompareAndSet = False`` (every write
    then overwrites, as in the SDK).

Draft history (convd extension)
    ``getConversationDraftHistory`` lists a conversation's earlier drafts
    (:class:`V2TIMDraftVersion`, newest first: every set, clear or restore keeps the draft it
    replaced; by default the last 20, none older than 30 days), and
    ``restoreConversationDraft`` makes one of them the current draft again.

Draft info (convd extension)
    ``V2TIMConversation.draftInfo`` is the reply-to / quote / mentions object an app keeps
    in ``draft_user_define`` (:class:`V2TIMDraftInfo`, see the README's "Draft info"), or None
    when that holds plain text or anything else. ``draftText`` is unchanged: the user define
    itself, so for such a draft it is the JSON, as the SDK's own UI kits keep it. Pass
    ``V2TIMDraftInfo(...).toJSON()`` as ``draftText`` to ``setConversationDraft`` to write
    one: the user define gets the JSON and the text element only its ``text``, so C-face
    readers and ``convctl`` see the text.

Listeners
    ``addConversationListener`` registers a :class:`V2TIMConversationListener` (or any object
    with some of its methods): ``onNewConversation`` (Add), ``onConversationChanged`` (Update),
    ``onConversationDeleted`` (Del, with V2 ids). They run on the logic thread, in order, for
    every change while logged in, the caller's own included. Every login starts with the
    SDK's sync: ``onSyncServerStart()``, the whole list as ``onConversationChanged`` (one call
    per page of up to 100), ``onSyncServerFinish()``. After a reconnect the sync holds the
    changes missed while convd was unreachable instead; when convd could not replay them
    (or on a later login) it holds the whole list again, and the conversations the
    listeners knew that are no longer in it arrive as ``onConversationDeleted`` just before
    ``onSyncServerFinish``.
"""

from __future__ import annotations

import enum
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, overload

import msgspec

from convd_schemas import (
    ConvInfo,
    ConvKey,
    ConvListFilter,
    ConvListResult,
    ConvOperationResult,
    Draft,
    DraftVersion,
    TIMConvEvent,
    TIMConvType,
    TIMErrCode,
    __version__,
)
from convd_schemas.limits import MAX_DRAFT_HISTORY, MAX_PAGE_SIZE

from ._sdk import SdkCore, callback_error
from ._threads import report_callback_error
from .client import (
    DEFAULT_TIMEOUT,
    Client,
    ConnectionState,
    ConvEvent,
    GroupEvent,
    checked_seconds,
)
from .drafts import DraftInfo, parse_draft_info, text_draft, v2_draft_text
from .errors import ConversationNotFound, DaemonUnavailable, RevisionConflict

__all__ = [
    "V2TIMCallback",
    "V2TIMConversation",
    "V2TIMConversationListFilter",
    "V2TIMConversationListener",
    "V2TIMConversationManager",
    "V2TIMConversationMarkType",
    "V2TIMConversationOperationResult",
    "V2TIMConversationResult",
    "V2TIMConversationType",
    "V2TIMDraftInfo",
    "V2TIMDraftVersion",
    "V2TIMLoginStatus",
    "V2TIMManager",
    "V2TIMSDKConfig",
    "V2TIMSDKListener",
    "V2TIMValueCallback",
    "conversation_id",
    "parse_conversation_id",
]

logger = logging.getLogger("convd_client")

T = TypeVar("T")

C2C_PREFIX = "c2c_"
GROUP_PREFIX = "group_"
_PINNED_BIT = 1 << 62

ERR_SDK_NOT_INITIALIZED = int(TIMErrCode.ERR_SDK_NOT_INITIALIZED)
ERR_SDK_NOT_LOGGED_IN = int(TIMErrCode.ERR_SDK_NOT_LOGGED_IN)
ERR_INVALID_PARAMETERS = int(TIMErrCode.ERR_INVALID_PARAMETERS)
ERR_INVALID_CONVERSATION = int(TIMErrCode.ERR_INVALID_CONVERSATION)


class V2TIMConversationType(enum.IntEnum):
    """``V2TIMConversationType``."""

    V2TIM_UNKNOWN = 0
    V2TIM_C2C = 1
    V2TIM_GROUP = 2


class V2TIMLoginStatus(enum.IntEnum):
    """``V2TIMLoginStatus``: what :meth:`V2TIMManager.getLoginStatus` returns."""

    V2TIM_STATUS_LOGINED = 1
    V2TIM_STATUS_LOGINING = 2
    V2TIM_STATUS_LOGOUT = 3


#: convd extension: a draft's reply-to / quote / mentions (see :class:`~convd_client.drafts.
#: DraftInfo` and the module documentation).
V2TIMDraftInfo = DraftInfo


def conversation_id(conv_id: str, conv_type: int) -> str:
    """The V2 id of a conversation: ``c2c_<userID>`` or ``group_<groupID>``."""
    prefix = GROUP_PREFIX if conv_type == TIMConvType.kTIMConv_Group else C2C_PREFIX
    return prefix + conv_id


def parse_conversation_id(conversation_id: str) -> ConvKey | None:
    """The raw id and type of a V2 id, or None when it has no ``c2c_``/``group_`` prefix."""
    if not isinstance(conversation_id, str):
        return None
    for prefix, conv_type in (
        (C2C_PREFIX, TIMConvType.kTIMConv_C2C),
        (GROUP_PREFIX, TIMConvType.kTIMConv_Group),
    ):
        if conversation_id.startswith(prefix) and len(conversation_id) > len(prefix):
            return ConvKey(conv_id=conversation_id[len(prefix) :], conv_type=conv_type)
    return None


@dataclass
class V2TIMConversation:
    """A conversation, as ``V2TIMConversation``.

    ``orderKey`` grows with every activation (create, set draft); the list shows pinned
    conversations first, then by ``orderKey`` descending. ``draftText`` is the draft's user
    define when set, else its text (see the module documentation); ``draftTimestamp`` is the
    draft's edit time in Unix seconds (0 without a draft). ``draftRevision`` is convd's
    extension: pass it back as ``ifRevision`` for a conflict-safe draft write.

    ``showName`` is the user or group id (convd knows no remarks, nicknames or group names),
    ``recvOpt`` is 0 (V2TIM_RECEIVE_MESSAGE). ``customData`` is ``conv_custom_data``, as
    ``setConversationCustomData`` set it (``""`` when none was set); ``markList`` (set with
    :meth:`V2TIMConversationManager.markConversation`) and ``conversationGroupList`` (the
    conversation groups it is in) are what convd stores.
    """

    conversationID: str
    type: V2TIMConversationType
    userID: str | None
    groupID: str | None
    showName: str
    draftText: str | None
    draftTimestamp: int
    isPinned: bool
    orderKey: int
    unreadCount: int
    draftRevision: int
    lastMessage: None = None
    recvOpt: int = 0
    markList: list[int] = field(default_factory=list)
    customData: str = ""
    conversationGroupList: list[str] = field(default_factory=list)
    #: convd extension: the draft's reply-to / quote / mentions, parsed from its user define;
    #: None when there is no draft or the user define holds anything else (plain text).
    draftInfo: V2TIMDraftInfo | None = None

    @classmethod
    def from_conv_info(cls, info: ConvInfo) -> V2TIMConversation:
        """The V2 view of a C-style ConvInfo."""
        is_group = info.conv_type == TIMConvType.kTIMConv_Group
        draft = None if isinstance(info.conv_draft, msgspec.UnsetType) else info.conv_draft
        edit_time = 0
        if draft is not None and not isinstance(draft.draft_edit_time, msgspec.UnsetType):
            edit_time = draft.draft_edit_time
        return cls(
            conversationID=conversation_id(info.conv_id, info.conv_type),
            type=V2TIMConversationType.V2TIM_GROUP if is_group else V2TIMConversationType.V2TIM_C2C,
            userID=None if is_group else info.conv_id,
            groupID=info.conv_id if is_group else None,
            showName=info.conv_show_name or info.conv_id,
            draftText=v2_draft_text(draft),
            draftTimestamp=edit_time,
            isPinned=info.conv_is_pinned,
            orderKey=info.conv_active_time & ~_PINNED_BIT,
            unreadCount=info.conv_unread_num,
            draftRevision=info.conv_draft_revision,
            recvOpt=info.conv_recv_opt,
            markList=list(info.conv_mark_array),
            customData=info.conv_custom_data,
            conversationGroupList=list(info.conv_conversation_group_array),
            draftInfo=None if draft is None else parse_draft_info(draft.draft_user_define),
        )


@dataclass
class V2TIMDraftVersion:
    """convd extension: an earlier draft of a conversation, from
    :meth:`V2TIMConversationManager.getConversationDraftHistory`.

    ``revision`` is the ``draftRevision`` it had (pass it to ``restoreConversationDraft``);
    ``draftText``, ``draftTimestamp`` and ``draftInfo`` read as :class:`V2TIMConversation`'s;
    ``replacedAt`` (Unix seconds), ``replacedBy`` (the id of the connection whose change
    replaced it) and ``replacedHow`` ("set", "cancel" or "restore") say what replaced it.
    """

    revision: int
    draftText: str | None
    draftTimestamp: int
    replacedAt: int
    replacedBy: str
    replacedHow: str
    draftInfo: V2TIMDraftInfo | None = None

    @classmethod
    def from_wire(cls, version: DraftVersion) -> V2TIMDraftVersion:
        """The V2 view of a ``conv.draft_history`` version."""
        draft: Draft = version.draft
        edit_time = draft.draft_edit_time
        return cls(
            revision=version.revision,
            draftText=v2_draft_text(draft),
            draftTimestamp=0 if isinstance(edit_time, msgspec.UnsetType) else edit_time,
            replacedAt=version.replaced_at,
            replacedBy=version.replaced_by,
            replacedHow=version.replaced_how,
            draftInfo=parse_draft_info(draft.draft_user_define),
        )


@dataclass
class V2TIMConversationOperationResult:
    """``V2TIMConversationOperationResult``: what a batch call did for one conversation.

    ``resultCode`` is 0 on success, else the SDK error code (6004: no such conversation);
    ``resultInfo`` says what went wrong (``""`` on success).
    """

    conversationID: str
    resultCode: int
    resultInfo: str

    @classmethod
    def from_result(cls, result: ConvOperationResult) -> V2TIMConversationOperationResult:
        """The V2 view of a wire result."""
        return cls(
            conversationID=conversation_id(result.conv_id, result.conv_type),
            resultCode=result.result_code,
            resultInfo=result.result_info,
        )


class V2TIMConversationMarkType(enum.IntEnum):
    """``V2TIMConversationMarkType``; a custom mark is ``1 << n`` with 32 <= n < 64."""

    V2TIM_CONVERSATION_MARK_TYPE_STAR = 0x1
    V2TIM_CONVERSATION_MARK_TYPE_UNREAD = 0x2
    V2TIM_CONVERSATION_MARK_TYPE_FOLD = 0x4
    V2TIM_CONVERSATION_MARK_TYPE_HIDE = 0x8


@dataclass
class V2TIMConversationListFilter:
    """``V2TIMConversationListFilter``: which conversations
    :meth:`V2TIMConversationManager.getConversationListByFilter` returns; all given
    conditions must hold.

    :param type: V2TIM_C2C or V2TIM_GROUP; V2TIM_UNKNOWN (0) does not filter
    :param conversationGroup: a conversation group's name; ``""``: only conversations in no
        group; None does not filter
    :param markType: conversations carrying every mark of it; 0: only unmarked ones; None
        does not filter
    :param hasUnreadCount: True matches nothing (convd has no messages)
    :param hasGroupAtInfo: True matches nothing (convd has no messages)
    :param hasDraft: convd extension: True, only conversations with a draft; False, only
        without; None does not filter
    """

    type: int = 0
    conversationGroup: str | None = None
    markType: int | None = None
    hasUnreadCount: bool = False
    hasGroupAtInfo: bool = False
    hasDraft: bool | None = None

    def to_wire(self) -> ConvListFilter:
        """The daemon's filter; ValueError for a bad type."""
        conv_type = msgspec.UNSET if not self.type else TIMConvType(int(self.type))
        return ConvListFilter(
            conversation_list_filter_conv_type=conv_type,
            conversation_list_filter_mark_type=(
                msgspec.UNSET if self.markType is None else self.markType
            ),
            conversation_list_filter_conversation_group=(
                msgspec.UNSET if self.conversationGroup is None else self.conversationGroup
            ),
            conversation_list_filter_has_unread_count=bool(self.hasUnreadCount),
            conversation_list_filter_has_group_at_info=bool(self.hasGroupAtInfo),
            conversation_list_filter_has_draft=(
                msgspec.UNSET if self.hasDraft is None else bool(self.hasDraft)
            ),
        )


@dataclass
class V2TIMConversationResult:
    """A page of conversations: ``conversationList``, ``nextSeq``, ``isFinished``."""

    conversationList: list[V2TIMConversation] = field(default_factory=list)
    nextSeq: int = 0
    isFinished: bool = True


@dataclass
class V2TIMSDKConfig:
    """``V2TIMSDKConfig``; ``socketPath`` and ``timeout`` are convd extensions.

    :param logLevel: accepted and ignored
    :param socketPath: the daemon's socket (default ``$CONVD_SOCKET``, else the default path)
    :param timeout: seconds a call may take (a finite number above 0)
    """

    logLevel: int = 0
    socketPath: str | None = None
    timeout: float = DEFAULT_TIMEOUT


class V2TIMCallback:
    """``V2TIMCallback``: ``onSuccess()`` or ``onError(code, desc)``, exactly once.

    Pass callables, or subclass and override the methods.

    :param onSuccess: called with no arguments on success
    :param onError: called with the error code and description
    """

    def __init__(
        self,
        onSuccess: Callable[[], object] | None = None,
        onError: Callable[[int, str], object] | None = None,
    ) -> None:
        self._on_success = onSuccess
        self._on_error = onError

    def onSuccess(self) -> None:
        """The call succeeded."""
        if self._on_success is not None:
            self._on_success()

    def onError(self, code: int, desc: str) -> None:
        """The call failed with an SDK error code."""
        if self._on_error is not None:
            self._on_error(code, desc)

    def onDraftConflict(self, code: int, desc: str, current: V2TIMConversation | None) -> None:
        """convd extension: a conflict-safe draft write found another revision (90001).

        ``current`` is the conversation as it is now, or None if it no longer exists. By
        default this calls ``onError(code, desc)``.
        """
        self.onError(code, desc)


class V2TIMValueCallback(Generic[T]):
    """``V2TIMValueCallback<T>``: ``onSuccess(value)`` or ``onError(code, desc)``, exactly once.

    :param onSuccess: called with the value on success
    :param onError: called with the error code and description
    """

    def __init__(
        self,
        onSuccess: Callable[[T], object] | None = None,
        onError: Callable[[int, str], object] | None = None,
    ) -> None:
        self._on_success = onSuccess
        self._on_error = onError

    def onSuccess(self, value: T) -> None:
        """The call succeeded with ``value``."""
        if self._on_success is not None:
            self._on_success(value)

    def onError(self, code: int, desc: str) -> None:
        """The call failed with an SDK error code."""
        if self._on_error is not None:
            self._on_error(code, desc)


class V2TIMSDKListener:
    """``V2TIMSDKListener``: the connection to convd (all methods optional, default no-op)."""

    def onConnecting(self) -> None:
        """Connecting to convd."""

    def onConnectSuccess(self) -> None:
        """Connected to convd (and logged in again, if logged in)."""

    def onConnectFailed(self, code: int, error: str) -> None:
        """convd is not reachable (code 6022); the SDK keeps trying."""


class V2TIMConversationListener:
    """``V2TIMConversationListener`` (all methods optional, default no-op)."""

    def onSyncServerStart(self) -> None:
        """A sync of the list starts (after a login or a reconnect)."""

    def onSyncServerFinish(self) -> None:
        """The sync finished: the listener has the whole list."""

    def onSyncServerFailed(self) -> None:
        """Not used by convd."""

    def onNewConversation(self, conversationList: list[V2TIMConversation]) -> None:
        """New conversations (kTIMConvEvent_Add)."""

    def onConversationChanged(self, conversationList: list[V2TIMConversation]) -> None:
        """Changed conversations (kTIMConvEvent_Update): draft, pin, order."""

    def onConversationDeleted(self, conversationIDList: list[str]) -> None:
        """Deleted conversations (kTIMConvEvent_Del), by V2 id."""

    def onTotalUnreadMessageCountChanged(self, totalUnreadCount: int) -> None:
        """Never called by convd: it receives no messages, so the total unread count stays 0
        (see ``getTotalUnreadMessageCount``)."""

    def onConversationGroupCreated(
        self, groupName: str, conversationList: list[V2TIMConversation]
    ) -> None:
        """A conversation group was created, with these conversations."""

    def onConversationGroupDeleted(self, groupName: str) -> None:
        """A conversation group was deleted."""

    def onConversationGroupNameChanged(self, oldName: str, newName: str) -> None:
        """A conversation group was renamed."""

    def onConversationsAddedToGroup(
        self, groupName: str, conversationList: list[V2TIMConversation]
    ) -> None:
        """Conversations were added to a conversation group."""

    def onConversationsDeletedFromGroup(
        self, groupName: str, conversationList: list[V2TIMConversation], reason: int
    ) -> None:
        """Conversations were removed from a conversation group (``reason`` 0: by a call)."""


_FRAME_CALLBACKS = {
    TIMConvEvent.kTIMConvEvent_Start: "onSyncServerStart",
    TIMConvEvent.kTIMConvEvent_Finish: "onSyncServerFinish",
}


def _takes_reason(listener: object) -> bool:
    """Whether the listener's ``onConversationsDeletedFromGroup`` takes the SDK's newer third
    argument (``reason``); older SDKs called it with the group name and conversations only."""
    method = getattr(listener, "onConversationsDeletedFromGroup", None)
    if method is None:
        return True
    try:
        inspect.signature(method).bind("group", [], 0)
    except (TypeError, ValueError):
        return False
    return True


def _call_listener(listener: object, name: str, *args: Any) -> None:
    method = getattr(listener, name, None)
    if method is None:
        return
    try:
        method(*args)
    except Exception as exc:
        report_callback_error(exc, f"V2TIM listener {type(listener).__name__}.{name} failed")


def _fail(callback: Any, code: int, desc: str) -> None:
    if callback is not None:
        callback.onError(code, desc)


def _outside(fn: Callable[..., object], *args: Any) -> None:
    # No SDK instance, so no logic thread: report from a short-lived thread, never inline.
    def run() -> None:
        try:
            fn(*args)
        except Exception as exc:
            report_callback_error(exc, "a V2TIM callback raised")

    threading.Thread(target=run, name="convd-v2-error", daemon=True).start()


def _finish(
    callback: V2TIMCallback | None,
) -> Callable[[object, BaseException | None], None]:
    """A session call's completion as a V2TIMCallback: onSuccess, or onError(code, desc)."""

    def done(result: object, error: BaseException | None) -> None:
        if callback is None:
            return
        if error is None:
            callback.onSuccess()
        else:
            callback.onError(*callback_error(error))

    return done


def _report(core: SdkCore | None, callback: Any, code: int, desc: str) -> None:
    """Report a failure through ``callback`` later, on the logic thread if there is one."""
    if core is None or not core.post(_fail, callback, code, desc):
        _outside(_fail, callback, code, desc)


class V2TIMConversationManager:
    """``V2TIMConversationManager``: conversations and drafts. Get it from
    :meth:`V2TIMManager.getConversationManager`."""

    def __init__(self, manager: V2TIMManager) -> None:
        self._manager = manager
        self._listeners: list[object] = []
        self._listeners_lock = threading.Lock()
        #: convd extension: send the last seen ``draftRevision`` with this manager's draft
        #: writes (compare-and-set, see the module documentation); False: always overwrite.
        self.draftCompareAndSet = True

    # -- listeners ----------------------------------------------------------------------------

    def addConversationListener(self, listener: V2TIMConversationListener) -> None:
        """Add a conversation listener (a listener added twice is called once)."""
        with self._listeners_lock:
            if listener is not None and listener not in self._listeners:
                self._listeners.append(listener)

    def removeConversationListener(self, listener: V2TIMConversationListener) -> None:
        """Remove a conversation listener."""
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _snapshot(self) -> list[object]:
        with self._listeners_lock:
            return list(self._listeners)

    def _deliver_event(self, event: ConvEvent) -> None:
        frame = _FRAME_CALLBACKS.get(event.event)
        if frame is not None:
            for listener in self._snapshot():
                _call_listener(listener, frame)
            return
        if event.event is TIMConvEvent.kTIMConvEvent_Del:
            ids = [conversation_id(k.conv_id, k.conv_type) for k in event.keys]
            for listener in self._snapshot():
                _call_listener(listener, "onConversationDeleted", list(ids))
            return
        convs = [V2TIMConversation.from_conv_info(c) for c in event.conversations]
        name = (
            "onNewConversation"
            if event.event is TIMConvEvent.kTIMConvEvent_Add
            else "onConversationChanged"
        )
        for listener in self._snapshot():
            _call_listener(listener, name, list(convs))

    def _deliver_group_event(self, event: GroupEvent) -> None:
        convs = [V2TIMConversation.from_conv_info(c) for c in event.conversations]
        for listener in self._snapshot():
            if event.kind == "created":
                _call_listener(listener, "onConversationGroupCreated", event.group_name, convs)
            elif event.kind == "deleted":
                _call_listener(listener, "onConversationGroupDeleted", event.group_name)
            elif event.kind == "name_changed":
                _call_listener(
                    listener, "onConversationGroupNameChanged", event.old_name, event.group_name
                )
            elif event.kind == "conversations_added":
                _call_listener(listener, "onConversationsAddedToGroup", event.group_name, convs)
            elif _takes_reason(listener):
                _call_listener(
                    listener,
                    "onConversationsDeletedFromGroup",
                    event.group_name,
                    list(convs),
                    event.reason,
                )
            else:  # written against the SDK's older two-argument form
                _call_listener(
                    listener, "onConversationsDeletedFromGroup", event.group_name, list(convs)
                )

    # -- calls --------------------------------------------------------------------------------

    def _start(
        self,
        callback: Any,
        fn: Callable[[Client], Awaitable[T]],
        success: Callable[[T], None],
        conflict: bool = False,
    ) -> None:
        core = self._manager._core
        if core is None:
            _report(None, callback, ERR_SDK_NOT_INITIALIZED, "the SDK is not initialized")
            return
        if core.user_id is None:
            _report(core, callback, ERR_SDK_NOT_LOGGED_IN, "not logged in")
            return

        def done(result: Any, error: BaseException | None) -> None:
            if callback is None:
                return
            if error is None:
                success(result)
                return
            code, desc = callback_error(error)
            if conflict and isinstance(error, RevisionConflict):
                current = (
                    None
                    if error.current is None
                    else V2TIMConversation.from_conv_info(error.current)
                )
                desc = _conflict_desc(current)
                hook = getattr(callback, "onDraftConflict", None)
                if hook is not None:
                    hook(code, desc, current)
                    return
            callback.onError(code, desc)

        if not core.run(fn, done):
            _report(None, callback, ERR_SDK_NOT_INITIALIZED, "the SDK is not initialized")

    def _noted(self, infos: list[ConvInfo]) -> list[ConvInfo]:
        """Note the revisions of conversations a read returned (compare-and-set)."""
        core = self._manager._core
        if core is not None:
            core.note_revisions(infos)
        return infos

    def _invalid(self, callback: Any, desc: str) -> None:
        core = self._manager._core
        if core is None:
            _report(None, callback, ERR_SDK_NOT_INITIALIZED, "the SDK is not initialized")
        elif core.user_id is None:
            _report(core, callback, ERR_SDK_NOT_LOGGED_IN, "not logged in")
        else:
            _report(core, callback, ERR_INVALID_PARAMETERS, desc)

    def setConversationDraft(
        self,
        conversationID: str,
        draftText: str | None,
        callback: V2TIMCallback | None,
        ifRevision: int | None = None,
        *,
        overwrite: bool = False,
    ) -> None:
        """Set (or, with an empty or None text, clear) a conversation's draft.

        Setting creates the conversation when needed and moves it to the top of its section;
        clearing does not reorder. Sent with the last ``draftRevision`` this manager saw
        (compare-and-set, see the module documentation). A ``draftText`` that is a draft info
        (``V2TIMDraftInfo.toJSON()``) is kept whole in the user define, and its ``text`` as
        the text element.

        :param ifRevision: convd extension: write only if the draft is still at this
            ``draftRevision``; a conflict reports 90001 (see the module documentation)
        :param overwrite: convd extension: write whatever the revision (no compare-and-set
            for this call)
        """
        key = parse_conversation_id(conversationID)
        if key is None:
            self._invalid(callback, f"invalid conversationID {conversationID!r}")
            return
        if ifRevision is not None and (not isinstance(ifRevision, int) or ifRevision < 0):
            self._invalid(callback, "ifRevision must be a revision (an int >= 0)")
            return
        core = self._manager._core
        compare = self.draftCompareAndSet and not overwrite
        if draftText:
            text = draftText
            info = parse_draft_info(text)
            # A draft info keeps its JSON in the user define (what draftText reads back)
            # and only its text as the element that C-face readers see.
            draft = text_draft(text) if info is None else text_draft(info.text, text)

            async def write(client: Client) -> None:
                assert core is not None
                await core.write_draft(
                    key,
                    lambda revision: client.conv_set_draft(
                        key.conv_id, key.conv_type, draft, if_revision=revision
                    ),
                    if_revision=ifRevision,
                    compare_and_set=compare,
                )

            fn = write
        else:

            async def clear(client: Client) -> None:
                assert core is not None
                try:
                    await core.write_draft(
                        key,
                        lambda revision: client.conv_cancel_draft(
                            key.conv_id, key.conv_type, if_revision=revision
                        ),
                        if_revision=ifRevision,
                        compare_and_set=compare,
                    )
                except ConversationNotFound:
                    pass  # no conversation means no draft to clear: that is a success
                except RevisionConflict as conflict:
                    # Deleted since this manager saw it: no draft either, nothing lost.
                    if conflict.current is not None or ifRevision is not None:
                        raise

            fn = clear
        self._start(callback, fn, lambda _: callback.onSuccess() if callback else None, True)

    def getConversationDraftHistory(
        self,
        conversationID: str,
        count: int,
        callback: V2TIMValueCallback[list[V2TIMDraftVersion]] | None,
    ) -> None:
        """convd extension: the conversation's earlier drafts, newest first.

        Every set, clear or restore keeps the draft it replaced (not "no draft"); by default
        the last 20, none older than 30 days. 6004 when the conversation does not exist,
        6017 for a ``count`` outside 1..1000.
        """
        key = parse_conversation_id(conversationID)
        if key is None:
            self._invalid(callback, f"invalid conversationID {conversationID!r}")
            return
        if isinstance(count, bool) or not isinstance(count, int):
            self._invalid(callback, "count is invalid")
            return
        if not 1 <= count <= MAX_DRAFT_HISTORY:
            self._invalid(callback, f"count must be 1..{MAX_DRAFT_HISTORY}")
            return
        core = self._manager._core

        async def history(client: Client) -> list[V2TIMDraftVersion]:
            found = await client.conv_draft_history(key.conv_id, key.conv_type, count)
            if core is not None:
                core.note_revision(key, found.conv_draft_revision)
            return [V2TIMDraftVersion.from_wire(v) for v in found.versions]

        self._start(
            callback, history, lambda value: callback.onSuccess(value) if callback else None
        )

    def restoreConversationDraft(
        self,
        conversationID: str,
        revision: int,
        callback: V2TIMCallback | None,
        ifRevision: int | None = None,
        *,
        overwrite: bool = False,
    ) -> None:
        """convd extension: make the earlier draft ``revision`` (a
        :class:`V2TIMDraftVersion`'s) the current draft again.

        It gets a new ``draftRevision``, the conversation moves to the top (as by a set) and
        ``onConversationChanged`` fires; the draft it replaces is kept in the history. Sent
        with the last ``draftRevision`` this manager saw, unless ``ifRevision`` or
        ``overwrite`` say otherwise (as :meth:`setConversationDraft`); a conflict reports
        90001 (``onDraftConflict``). 90006 when the history holds no such version (never
        kept, pruned, or deleted with its conversation), 6004 when the conversation does not
        exist.
        """
        key = parse_conversation_id(conversationID)
        if key is None:
            self._invalid(callback, f"invalid conversationID {conversationID!r}")
            return
        for name, value in (("revision", revision), ("ifRevision", ifRevision)):
            if value is None and name == "ifRevision":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                self._invalid(callback, f"{name} must be a revision (an int >= 0)")
                return
        core = self._manager._core
        compare = self.draftCompareAndSet and not overwrite

        async def restore(client: Client) -> None:
            assert core is not None
            await core.write_draft(
                key,
                lambda if_revision: client.conv_restore_draft(
                    key.conv_id, key.conv_type, revision, if_revision=if_revision
                ),
                if_revision=ifRevision,
                compare_and_set=compare,
            )

        self._start(callback, restore, lambda _: callback.onSuccess() if callback else None, True)

    def getConversation(
        self, conversationID: str, callback: V2TIMValueCallback[V2TIMConversation] | None
    ) -> None:
        """One conversation; 6004 when it does not exist."""
        key = parse_conversation_id(conversationID)
        if key is None:
            self._invalid(callback, f"invalid conversationID {conversationID!r}")
            return

        async def get(client: Client) -> V2TIMConversation:
            found = await client.conv_get([key])
            if not found:
                raise ConversationNotFound(
                    ERR_INVALID_CONVERSATION, f"no conversation {conversationID!r}"
                )
            self._noted(found)
            return V2TIMConversation.from_conv_info(found[0])

        self._start(callback, get, lambda value: callback.onSuccess(value) if callback else None)

    @overload
    def getConversationList(
        self,
        nextSeq: int,
        count: int,
        callback: V2TIMValueCallback[V2TIMConversationResult] | None,
        /,
    ) -> None: ...

    @overload
    def getConversationList(
        self,
        conversationIDList: Sequence[str],
        callback: V2TIMValueCallback[list[V2TIMConversation]] | None,
        /,
    ) -> None: ...

    def getConversationList(self, *args: Any) -> None:
        """A page of the list, ``(nextSeq, count, callback)`` -> :class:`V2TIMConversationResult`;
        or, as the SDK's overload, ``(conversationIDList, callback)`` -> a list (see
        :meth:`getConversationListByIDs`).

        Start with ``nextSeq`` 0 and pass the returned ``nextSeq`` until ``isFinished``.
        Pinned conversations come first, then by ``orderKey`` descending. A ``count`` above
        1000 is treated as 1000; ``count`` <= 0 fails with 6017.
        """
        if len(args) == 2:
            self.getConversationListByIDs(args[0], args[1])
            return
        if len(args) != 3:
            raise TypeError("getConversationList(nextSeq, count, callback) or (ids, callback)")
        next_seq, count, callback = args
        if not isinstance(next_seq, int) or next_seq < 0:
            self._invalid(callback, "nextSeq is invalid")
            return
        if not isinstance(count, int) or count <= 0:
            self._invalid(callback, "count is invalid")
            return
        page_size = min(count, MAX_PAGE_SIZE)

        async def page(client: Client) -> V2TIMConversationResult:
            return self._page_result(await client.conv_list(next_seq, page_size))

        self._start(callback, page, lambda value: callback.onSuccess(value) if callback else None)

    def _page_result(self, result: ConvListResult) -> V2TIMConversationResult:
        """A page as V2 reports it; the revisions it shows are noted (compare-and-set)."""
        self._noted(result.conversation_list_result_conv_list)
        return V2TIMConversationResult(
            conversationList=[
                V2TIMConversation.from_conv_info(c)
                for c in result.conversation_list_result_conv_list
            ],
            nextSeq=result.conversation_list_result_next_seq,
            isFinished=result.conversation_list_result_is_finished,
        )

    def getConversationListByIDs(
        self,
        conversationIDList: Sequence[str],
        callback: V2TIMValueCallback[list[V2TIMConversation]] | None,
    ) -> None:
        """The named conversations that exist, in the order asked; 6017 for an empty list or
        an id without a ``c2c_``/``group_`` prefix."""
        if isinstance(conversationIDList, str) or not conversationIDList:
            self._invalid(callback, "conversationIDList is empty")
            return
        keys: list[ConvKey] = []
        for item in conversationIDList:
            key = parse_conversation_id(item)
            if key is None:
                self._invalid(callback, f"invalid conversationID {item!r}")
                return
            keys.append(key)

        async def get(client: Client) -> list[V2TIMConversation]:
            found = self._noted(await client.conv_get(keys))
            return [V2TIMConversation.from_conv_info(c) for c in found]

        self._start(callback, get, lambda value: callback.onSuccess(value) if callback else None)

    def deleteConversation(self, conversationID: str, callback: V2TIMCallback | None) -> None:
        """Delete a conversation and its draft; 6004 when it does not exist."""
        key = parse_conversation_id(conversationID)
        if key is None:
            self._invalid(callback, f"invalid conversationID {conversationID!r}")
            return
        self._start(
            callback,
            lambda client: client.conv_delete(key.conv_id, key.conv_type),
            lambda _: callback.onSuccess() if callback else None,
        )

    def pinConversation(
        self, conversationID: str, isPinned: bool, callback: V2TIMCallback | None
    ) -> None:
        """Pin or unpin a conversation; 90002 when 50 are pinned, 6004 when it does not exist."""
        key = parse_conversation_id(conversationID)
        if key is None:
            self._invalid(callback, f"invalid conversationID {conversationID!r}")
            return
        pinned = bool(isPinned)
        self._start(
            callback,
            lambda client: client.conv_pin(key.conv_id, key.conv_type, pinned),
            lambda _: callback.onSuccess() if callback else None,
        )

    def deleteConversationList(
        self,
        conversationIDList: Sequence[str],
        clearMessage: bool,
        callback: V2TIMValueCallback[list[V2TIMConversationOperationResult]] | None,
    ) -> None:
        """Delete up to 100 conversations and their drafts at once (one transaction).

        ``onSuccess`` gets a :class:`V2TIMConversationOperationResult` per conversation (6004
        for one that does not exist); listeners get ``onConversationDeleted`` for each one
        deleted. ``clearMessage`` is accepted (convd keeps no messages). 6017 for an empty
        list, an id without a ``c2c_``/``group_`` prefix or more than 100 ids.
        """
        keys = self._id_list(conversationIDList, callback)
        if keys is None:
            return

        async def delete(client: Client) -> list[V2TIMConversationOperationResult]:
            results = await client.conv_delete_many(keys)
            return [V2TIMConversationOperationResult.from_result(r) for r in results]

        self._start(callback, delete, lambda value: callback.onSuccess(value) if callback else None)

    def setConversationCustomData(
        self,
        conversationIDList: Sequence[str],
        customData: str | bytes | None,
        callback: V2TIMValueCallback[list[V2TIMConversationOperationResult]] | None,
    ) -> None:
        """Set the custom data of up to 100 conversations (one transaction).

        ``customData`` is text (``bytes`` must be UTF-8), at most 256 bytes of UTF-8; empty or
        None removes it. It shows in ``V2TIMConversation.customData``; listeners get
        ``onConversationChanged`` for each conversation whose data changed (its place in the
        list stays). ``onSuccess`` gets a result per conversation (6004 for one that does
        not exist: it is not created). 6017 for data over 256 bytes (or not UTF-8), an
        empty list or an id without prefix; 51006 for more than 100 ids.
        """
        keys = self._id_list(conversationIDList, callback)
        if keys is None:
            return
        data = customData or ""
        if isinstance(data, bytes):
            try:
                data = data.decode()
            except UnicodeDecodeError:
                self._invalid(callback, "customData is not UTF-8 text")
                return
        if not isinstance(data, str):
            self._invalid(callback, "customData must be text")
            return
        text = data

        async def store(client: Client) -> list[V2TIMConversationOperationResult]:
            results = await client.conv_set_custom_data(keys, text)
            return [V2TIMConversationOperationResult.from_result(r) for r in results]

        self._start(callback, store, lambda value: callback.onSuccess(value) if callback else None)

    def getTotalUnreadMessageCount(self, callback: V2TIMValueCallback[int] | None) -> None:
        """The total unread message count: always 0, since convd receives no messages.

        Reported through ``onSuccess(0)`` on the logic thread; convd is not asked (the answer
        cannot differ), so it succeeds also while convd is unreachable. 6013 / 6014 before
        init / login, as every call. ``onTotalUnreadMessageCountChanged`` never fires.
        """
        core = self._manager._core
        if core is None or core.user_id is None:
            self._invalid(callback, "")  # 6013 or 6014
            return
        if callback is not None and not core.post(callback.onSuccess, 0):
            _report(None, callback, ERR_SDK_NOT_INITIALIZED, "the SDK is not initialized")

    def _id_list(
        self, conversationIDList: Sequence[str], callback: Any, *, allow_empty: bool = False
    ) -> list[ConvKey] | None:
        """The keys of a list of V2 ids; None (and 6017 reported) when it is not one."""
        if isinstance(conversationIDList, str | bytes) or not isinstance(
            conversationIDList, Sequence
        ):
            self._invalid(callback, "conversationIDList must be a list of conversation ids")
            return None
        if not conversationIDList and not allow_empty:
            self._invalid(callback, "conversationIDList is empty")
            return None
        keys: list[ConvKey] = []
        for item in conversationIDList:
            key = parse_conversation_id(item)
            if key is None:
                self._invalid(callback, f"invalid conversationID {item!r}")
                return None
            keys.append(key)
        return keys

    # -- marks, filtered lists and conversation groups ----------------------------------------

    def _results(
        self,
        callback: V2TIMValueCallback[list[V2TIMConversationOperationResult]] | None,
        fn: Callable[[Client], Awaitable[list[ConvOperationResult]]],
    ) -> None:
        async def call(client: Client) -> list[V2TIMConversationOperationResult]:
            return [V2TIMConversationOperationResult.from_result(r) for r in await fn(client)]

        self._start(callback, call, lambda value: callback.onSuccess(value) if callback else None)

    def markConversation(
        self,
        conversationIDList: Sequence[str],
        markType: int,
        enableMark: bool,
        callback: V2TIMValueCallback[list[V2TIMConversationOperationResult]] | None,
    ) -> None:
        """Set (``enableMark``) or clear one mark on conversations: a result per conversation.

        ``markType`` is a :class:`V2TIMConversationMarkType` or a custom ``1 << n``
        (32 <= n < 64); 0 or anything else fails with 6017, more than 100 ids with 51006.
        Each conversation whose marks change fires ``onConversationChanged``.
        """
        keys = self._id_list(conversationIDList, callback, allow_empty=True)
        if keys is None:
            return
        if isinstance(markType, bool) or not isinstance(markType, int) or markType < 0:
            self._invalid(callback, "markType is invalid")
            return
        enable = bool(enableMark)
        self._results(callback, lambda client: client.conv_mark(keys, markType, enable))

    def getConversationListByFilter(
        self,
        filter: V2TIMConversationListFilter,
        nextSeq: int,
        count: int,
        callback: V2TIMValueCallback[V2TIMConversationResult] | None,
    ) -> None:
        """A page of the conversations matching ``filter``, paged as
        :meth:`getConversationList` (``count`` <= 0 fails with 6017, above 1000 is 1000)."""
        if not isinstance(nextSeq, int) or nextSeq < 0:
            self._invalid(callback, "nextSeq is invalid")
            return
        if not isinstance(count, int) or count <= 0:
            self._invalid(callback, "count is invalid")
            return
        try:
            wire = (filter or V2TIMConversationListFilter()).to_wire()
        except (ValueError, TypeError):
            self._invalid(callback, "filter is invalid")
            return
        page_size = min(count, MAX_PAGE_SIZE)

        async def page(client: Client) -> V2TIMConversationResult:
            return self._page_result(await client.conv_list_by_filter(wire, nextSeq, page_size))

        self._start(callback, page, lambda value: callback.onSuccess(value) if callback else None)

    def createConversationGroup(
        self,
        groupName: str,
        conversationIDList: Sequence[str],
        callback: V2TIMValueCallback[list[V2TIMConversationOperationResult]] | None,
    ) -> None:
        """Create a conversation group with these conversations: a result per conversation.
        51010 when 20 groups exist, 51011 for a name over 32 bytes, 6017 for an empty or
        taken name."""
        keys = self._id_list(conversationIDList, callback, allow_empty=True)
        if keys is None:
            return
        if not isinstance(groupName, str) or not groupName:
            self._invalid(callback, "groupName is empty")
            return
        self._results(callback, lambda client: client.conv_group_create(groupName, keys))

    def getConversationGroupList(self, callback: V2TIMValueCallback[list[str]] | None) -> None:
        """The conversation group names, oldest first. Call it after ``onSyncServerFinish``:
        group changes made while this process was away are not replayed."""
        self._start(
            callback,
            lambda client: client.conv_group_list(),
            lambda value: callback.onSuccess(value) if callback else None,
        )

    def deleteConversationGroup(self, groupName: str, callback: V2TIMCallback | None) -> None:
        """Delete a conversation group (its conversations stay); 51009 when it does not
        exist."""
        if not isinstance(groupName, str) or not groupName:
            self._invalid(callback, "groupName is empty")
            return
        self._start(
            callback,
            lambda client: client.conv_group_delete(groupName),
            lambda _: callback.onSuccess() if callback else None,
        )

    def renameConversationGroup(
        self, oldName: str, newName: str, callback: V2TIMCallback | None
    ) -> None:
        """Rename a conversation group; 51009 when it does not exist, 6017 when ``newName``
        is taken."""
        if not isinstance(oldName, str) or not oldName:
            self._invalid(callback, "oldName is empty")
            return
        if not isinstance(newName, str) or not newName:
            self._invalid(callback, "newName is empty")
            return
        self._start(
            callback,
            lambda client: client.conv_group_rename(oldName, newName),
            lambda _: callback.onSuccess() if callback else None,
        )

    def addConversationsToGroup(
        self,
        groupName: str,
        conversationIDList: Sequence[str],
        callback: V2TIMValueCallback[list[V2TIMConversationOperationResult]] | None,
    ) -> None:
        """Add conversations to a conversation group: a result per conversation."""
        keys = self._id_list(conversationIDList, callback, allow_empty=True)
        if keys is None:
            return
        if not isinstance(groupName, str) or not groupName:
            self._invalid(callback, "groupName is empty")
            return
        self._results(callback, lambda client: client.conv_group_add(groupName, keys))

    def deleteConversationsFromGroup(
        self,
        groupName: str,
        conversationIDList: Sequence[str],
        callback: V2TIMValueCallback[list[V2TIMConversationOperationResult]] | None,
    ) -> None:
        """Remove conversations from a conversation group: a result per conversation."""
        keys = self._id_list(conversationIDList, callback, allow_empty=True)
        if keys is None:
            return
        if not isinstance(groupName, str) or not groupName:
            self._invalid(callback, "groupName is empty")
            return
        self._results(callback, lambda client: client.conv_group_remove(groupName, keys))


def _conflict_desc(current: V2TIMConversation | None) -> str:
    if current is None:
        return "draft revision conflict: the conversation no longer exists (revision 0)"
    text = "no draft" if current.draftText is None else f"draftText {current.draftText!r}"
    return f"draft revision conflict: the draft is at revision {current.draftRevision} ({text})"


class V2TIMManager:
    """``V2TIMManager``: the SDK instance. Get it with :meth:`getInstance`."""

    _instance: ClassVar[V2TIMManager | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._core: SdkCore | None = None
        self._conversations = V2TIMConversationManager(self)
        self._sdk_listeners: list[object] = []

    @staticmethod
    def getInstance() -> V2TIMManager:
        """The process-wide instance."""
        with V2TIMManager._instance_lock:
            if V2TIMManager._instance is None:
                V2TIMManager._instance = V2TIMManager()
            return V2TIMManager._instance

    @staticmethod
    def getConversationManager() -> V2TIMConversationManager:
        """The conversation manager (callable on the class or on the instance)."""
        return V2TIMManager.getInstance()._conversations

    def getVersion(self) -> str:
        """The client library's version."""
        return f"convd-client {__version__}"

    def initSDK(
        self,
        sdkAppID: int,
        config: V2TIMSDKConfig | None = None,
        listener: V2TIMSDKListener | None = None,
    ) -> bool:
        """Initialize: start the logic thread and connect to convd in the background.

        Succeeds even when convd is not running (calls fail with 6022 until it is); the
        ``listener`` hears about the connection. Initializing again changes nothing.

        :return: False, changing nothing, for a bad ``sdkAppID`` or ``config.timeout`` (not
            a finite number of seconds above 0)
        """
        if isinstance(sdkAppID, bool) or not isinstance(sdkAppID, int) or sdkAppID < 0:
            return False
        config = config or V2TIMSDKConfig()
        try:
            timeout = checked_seconds("timeout", config.timeout)
        except ValueError:
            return False
        with self._lock:
            if listener is not None and listener not in self._sdk_listeners:
                self._sdk_listeners.append(listener)
            if self._core is not None:
                return True
            core = SdkCore(
                sdkAppID,
                socket_path=config.socketPath,
                timeout=timeout,
                on_event=self._conversations._deliver_event,
                on_state=self._deliver_state,
                on_group_event=self._conversations._deliver_group_event,
            )
            core.start()
            self._core = core
        return True

    def unInitSDK(self) -> None:
        """Uninitialize: pending calls report 6013; waits for the queued callbacks (unless
        called from one)."""
        with self._lock:
            core, self._core = self._core, None
        if core is not None:
            core.stop()

    def addSDKListener(self, listener: V2TIMSDKListener) -> None:
        """Add a listener for the connection to convd."""
        with self._lock:
            if listener not in self._sdk_listeners:
                self._sdk_listeners.append(listener)

    def removeSDKListener(self, listener: V2TIMSDKListener) -> None:
        """Remove a listener added by :meth:`initSDK` or :meth:`addSDKListener`."""
        with self._lock:
            if listener in self._sdk_listeners:
                self._sdk_listeners.remove(listener)

    def _deliver_state(self, state: ConnectionState) -> None:
        with self._lock:
            listeners = list(self._sdk_listeners)
            core = self._core
        for listener in listeners:
            if state is ConnectionState.CONNECTING:
                _call_listener(listener, "onConnecting")
            elif state is ConnectionState.CONNECTED:
                _call_listener(listener, "onConnectSuccess")
            elif state is ConnectionState.DISCONNECTED and core is not None:
                error = DaemonUnavailable(core.client.socket_path)
                _call_listener(listener, "onConnectFailed", DaemonUnavailable.CODE, str(error))

    def login(self, userID: str, userSig: str | None, callback: V2TIMCallback | None) -> None:
        """Log in as ``userID`` and start the conversation events; ``userSig`` is not checked.

        Until ``onSuccess``, conversation calls fail with 6014.
        """
        core = self._core
        if core is None:
            _report(None, callback, ERR_SDK_NOT_INITIALIZED, "the SDK is not initialized")
            return
        if not isinstance(userID, str) or not userID:
            _report(core, callback, ERR_INVALID_PARAMETERS, "userID is empty")
            return

        if not core.login(userID, _finish(callback)):
            _report(None, callback, ERR_SDK_NOT_INITIALIZED, "the SDK is not initialized")

    def logout(self, callback: V2TIMCallback | None) -> None:
        """Log out; conversation calls fail with 6014 from now on."""
        core = self._core
        if core is None:
            _report(None, callback, ERR_SDK_NOT_INITIALIZED, "the SDK is not initialized")
            return

        if not core.logout(_finish(callback)):
            _report(None, callback, ERR_SDK_NOT_INITIALIZED, "the SDK is not initialized")

    def getLoginUser(self) -> str | None:
        """The logged-in user id, or None."""
        core = self._core
        return None if core is None else core.user_id

    def getLoginStatus(self) -> V2TIMLoginStatus:
        """Logged in, logging in, or logged out."""
        core = self._core
        if core is not None and core.user_id is not None:
            return V2TIMLoginStatus.V2TIM_STATUS_LOGINED
        if core is not None and core.logging_in:
            return V2TIMLoginStatus.V2TIM_STATUS_LOGINING
        return V2TIMLoginStatus.V2TIM_STATUS_LOGOUT
