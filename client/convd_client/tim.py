"""The SDK's C-style conversation API (``TIMConv*``), served by convd.

Names, parameters, JSON keys and return values follow the Tencent Cloud IM SDK's C API
(``TIMCloud.h`` / ``TIMConversationManager.h``). Conversations are named by the raw peer user
id or group id plus a ``TIMConvType``; structured values travel as JSON strings.

Return values and callbacks
    Every function returns a ``TIMResult`` int. An asynchronous function (one taking ``cb``
    and ``user_data``) that returns ``TIM_SUCC`` invokes ``cb(code, desc, json_params,
    user_data)`` exactly once, later, on this module's logic thread (never inside the call
    itself); when it returns anything else, ``cb`` is never invoked. ``user_data`` is handed
    back untouched (any Python object). ``cb`` may be None.

    Synchronous failures:

    * ``TIM_ERR_SDKUNINIT`` (-1): :func:`TIMInit` was not called (or :func:`TIMUninit` was);
    * ``TIM_ERR_NOTLOGIN`` (-2): no :func:`TIMLogin` has completed successfully yet (or
      :func:`TIMLogout` was called);
    * ``TIM_ERR_JSON`` (-3): a JSON parameter is not valid JSON, or not of the documented
      shape (unknown keys included, except inside a draft's ``draft_msg``: it is an SDK
      Message, whose other keys are accepted and ignored);
    * ``TIM_ERR_PARAM`` (-4): an empty ``conv_id``, a ``conv_type`` that is not 1 or 2, a
      draft element that is not text, a draft text over 12 KiB of UTF-8, a bad number;
    * ``TIM_ERR_CONV`` (-5): (synchronous draft calls) the conversation id is not a valid
      user/group id, or the conversation does not exist.

    The synchronous draft calls :func:`TIMConvSetDraft` and :func:`TIMConvCancelDraft` can also
    fail for reasons the SDK has no ``TIMResult`` for; they then return the negated SDK error
    code: :data:`TIM_ERR_IO` (-6022) when convd is unreachable, :data:`TIM_ERR_TIMEOUT`
    (-6012) when it did not answer in time, :data:`TIM_ERR_INTERNAL` (-7012) otherwise.

    Callback codes are the SDK's ``ERR_*`` codes as convd reports them (6004 invalid
    conversation, 6016 a draft element that is not text, 6017 invalid parameters, 8001 a
    draft text over the 12 KiB message body limit, 7003/8501 invalid ids, 90001 draft revision
    conflict, 90002 pin limit, 51006 more than 100 conversations for custom data), plus 6022
    ``ERR_IO_OPERATION_FAILED`` when convd is not reachable (calls fail at once while it is
    down and the client reconnects in the background), 6012 ``ERR_REQUEST_TIMEOUT`` when it
    did not answer in time, and 6013 ``ERR_SDK_NOT_INITIALIZED`` when :func:`TIMUninit` ended
    the call.

JSON
    ``json_params`` of ``TIMConvCreate`` is one ConvInfo object; of ``TIMConvGetConvList`` and
    ``TIMConvGetConvInfo`` an array of ConvInfo; of the others an empty string. ConvInfo carries
    convd's extension ``conv_draft_revision`` (see the conflict-safe draft functions).

    ``TIMConvDeleteConversationList`` and ``TIMConvSetConversationCustomData`` take a JSON array
    of V2 conversation ids (``"c2c_<userID>"``, ``"group_<groupID>"``), as the SDK's, and answer
    an array of TIMConversationOperationResult, one per conversation:
    ``conversation_operation_result_conversation_id`` (the V2 id),
    ``conversation_operation_result_result_code`` (0, or 6004 when it does not exist) and
    ``conversation_operation_result_result_info``.

Unread counts
    convd receives no messages, so no conversation has unread messages:
    :func:`TIMConvGetTotalUnreadMessageCount` answers
    ``{"conv_get_total_unread_message_count_result_unread_count": 0}`` (from this process, without
    asking convd: the answer cannot differ), and the callback registered with
    :func:`TIMSetConvTotalUnreadMessageCountChangedCallback` is never called.

Events
    :func:`TIMSetConvEventCallback` registers ``cb(conv_event, json_conv_array, user_data)``.
    Every :func:`TIMLogin` starts with the SDK's server-sync sequence: ``kTIMConvEvent_Start``
    (3, ``""``), the whole conversation list as ``kTIMConvEvent_Update`` events (one per page of
    up to 100; none when the list is empty), ``kTIMConvEvent_Finish`` (4, ``""``). Then every
    committed change of the account's conversations (including the caller's own) arrives, in
    order, on the logic thread. For ``kTIMConvEvent_Del`` the array items hold only ``conv_id``
    and ``conv_type``. If convd restarts, the client reconnects, logs in again and gets Start,
    the changes it missed (Dels included), Finish. If convd can no longer replay them (or on
    a later login), the sync holds the whole list again, and the conversations the callback
    was told about that are no longer in it arrive as one ``kTIMConvEvent_Del`` just before
    Finish: a conversation deleted while this process was away is reported, not dropped.

Conflict-safe drafts (convd extension)
    :func:`TIMConvSetDraftIfRevision` and :func:`TIMConvCancelDraftIfRevision` write only if
    the draft is still at ``if_revision`` (the ``conv_draft_revision`` the caller last saw in
    a ConvInfo). They are asynchronous: on success the callback gets code 0 and the new
    ConvInfo; on a conflict it gets code 90001 and, as ``json_params``, the current ConvInfo
    (with the current draft and revision), or ``""`` when the conversation no longer exists.

Compare-and-set by default (convd extension)
    This module remembers the ``conv_draft_revision`` it last saw of each conversation (from
    an event, :func:`TIMConvGetConvList` / :func:`TIMConvGetConvInfo` / :func:`TIMConvCreate`,
    or its own last draft write) and sends it as ``if_revision`` with its own draft writes
    (:func:`TIMConvSetDraft`, :func:`TIMConvCancelDraft`, :func:`TIMConvRestoreDraft`), so a
    process that has not seen a newer draft cannot silently overwrite it. A refused
    synchronous write returns :data:`TIM_ERR_CONFLICT` (-90001), writes nothing, and the
    callback of :func:`TIMSetConvDraftConflictCallback` gets the current ConvInfo (with the
    current draft); having seen it, the next write goes through. A conversation this module
    has seen nothing of is written unconditionally. Opt out with ``json_sdk_config`` key
    ``convd_draft_compare_and_set``: false (every write then overwrites, as in the SDK).

Draft history (convd extension)
    :func:`TIMConvGetDraftHistory` lists a conversation's earlier drafts (every set, clear or
    restore keeps the draft it replaced; by default the last 20, none older than 30 days);
    :func:`TIMConvRestoreDraft` makes one of them the current draft again.

Configuration (convd extension keys of ``json_sdk_config``)
    ``convd_socket_path``: the daemon's socket (default ``$CONVD_SOCKET``, else the per-user
    default path); ``convd_timeout``: seconds a call may take (default 10);
    ``convd_draft_compare_and_set``: send the last seen revision with draft writes (default
    true). The SDK's own keys are accepted and ignored.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import msgspec

from convd_schemas import (
    ConvdErrCode,
    ConvDraftHistoryResult,
    ConvInfo,
    ConvKey,
    ConvListFilter,
    ConvListResult,
    ConvOperationResult,
    Draft,
    TIMConversationMarkType,
    TIMConvEvent,
    TIMConvType,
    TIMErrCode,
    TIMResult,
    __version__,
)
from convd_schemas.limits import MAX_DRAFT_HISTORY, MAX_PAGE_SIZE

from ._sdk import SdkCore, SdkUninitialized, callback_error
from .client import DEFAULT_TIMEOUT, Client, ConvEvent, GroupEvent, checked_seconds
from .errors import (
    ClientClosed,
    ConversationNotFound,
    DaemonUnavailable,
    InvalidIdentifier,
    InvalidParameters,
    NotLoggedIn,
    RequestTimeout,
    RevisionConflict,
)
from .v2 import conversation_id, parse_conversation_id

__all__ = [
    "TIM_ERR_CONFLICT",
    "TIM_ERR_CONV",
    "TIM_ERR_INTERNAL",
    "TIM_ERR_IO",
    "TIM_ERR_JSON",
    "TIM_ERR_NOTLOGIN",
    "TIM_ERR_PARAM",
    "TIM_ERR_SDKUNINIT",
    "TIM_ERR_TIMEOUT",
    "TIM_SUCC",
    "TIMCommCallback",
    "TIMConvAddConversationsToGroup",
    "TIMConvCancelDraft",
    "TIMConvCancelDraftIfRevision",
    "TIMConvCreate",
    "TIMConvCreateConversationGroup",
    "TIMConvDelete",
    "TIMConvDeleteConversationGroup",
    "TIMConvDeleteConversationList",
    "TIMConvDeleteConversationsFromGroup",
    "TIMConvDraftConflictCallback",
    "TIMConvEvent",
    "TIMConvEventCallback",
    "TIMConvGetConvInfo",
    "TIMConvGetConvList",
    "TIMConvGetConversationGroupList",
    "TIMConvGetConversationListByFilter",
    "TIMConvGetDraftHistory",
    "TIMConvGetTotalUnreadMessageCount",
    "TIMConvMarkConversation",
    "TIMConvPinConversation",
    "TIMConvRenameConversationGroup",
    "TIMConvRestoreDraft",
    "TIMConvSetConversationCustomData",
    "TIMConvSetDraft",
    "TIMConvSetDraftIfRevision",
    "TIMConvTotalUnreadMessageCountChangedCallback",
    "TIMConvType",
    "TIMConversationMarkType",
    "TIMGetLoginStatus",
    "TIMGetLoginUserID",
    "TIMGetSDKVersion",
    "TIMInit",
    "TIMLogin",
    "TIMLoginStatus",
    "TIMLogout",
    "TIMResult",
    "TIMSetConvConversationGroupCreatedCallback",
    "TIMSetConvConversationGroupDeletedCallback",
    "TIMSetConvConversationGroupNameChangedCallback",
    "TIMSetConvConversationsAddedToGroupCallback",
    "TIMSetConvConversationsDeletedFromGroupCallback",
    "TIMSetConvDraftConflictCallback",
    "TIMSetConvEventCallback",
    "TIMSetConvTotalUnreadMessageCountChangedCallback",
    "TIMUninit",
    "kTIMConvEvent_Add",
    "kTIMConvEvent_Del",
    "kTIMConvEvent_Finish",
    "kTIMConvEvent_Start",
    "kTIMConvEvent_Update",
    "kTIMConv_C2C",
    "kTIMConv_Group",
]

T = TypeVar("T")

logger = logging.getLogger("convd_client")

#: ``void (*TIMCommCallback)(int32_t code, const char* desc, const char* json_params,
#: const void* user_data)``
TIMCommCallback = Callable[[int, str, str, Any], object]
#: ``void (*TIMConvEventCallback)(TIMConvEvent conv_event, const char* json_conv_array,
#: const void* user_data)``
TIMConvEventCallback = Callable[[int, str, Any], object]
#: ``void (*TIMConvTotalUnreadMessageCountChangedCallback)(int total_unread_count,
#: const void* user_data)``
TIMConvTotalUnreadMessageCountChangedCallback = Callable[[int, Any], object]

TIM_SUCC: Final = int(TIMResult.TIM_SUCC)
TIM_ERR_SDKUNINIT: Final = int(TIMResult.TIM_ERR_SDKUNINIT)
TIM_ERR_NOTLOGIN: Final = int(TIMResult.TIM_ERR_NOTLOGIN)
TIM_ERR_JSON: Final = int(TIMResult.TIM_ERR_JSON)
TIM_ERR_PARAM: Final = int(TIMResult.TIM_ERR_PARAM)
TIM_ERR_CONV: Final = int(TIMResult.TIM_ERR_CONV)
#: convd extension: a synchronous call could not reach convd (-ERR_IO_OPERATION_FAILED).
TIM_ERR_IO: Final = -int(TIMErrCode.ERR_IO_OPERATION_FAILED)
#: convd extension: convd did not answer a synchronous call in time (-ERR_REQUEST_TIMEOUT).
TIM_ERR_TIMEOUT: Final = -RequestTimeout.CODE
#: convd extension: any other failure of a synchronous call (-ERR_SDK_INTERNAL_ERROR).
TIM_ERR_INTERNAL: Final = -int(TIMErrCode.ERR_SDK_INTERNAL_ERROR)
#: convd extension: a synchronous draft write was refused because the draft moved on since
#: the revision this module last saw (-90001, draft revision conflict); nothing was written.
TIM_ERR_CONFLICT: Final = -int(ConvdErrCode.DRAFT_REVISION_CONFLICT)
#: convd extension: ``void (*)(const char* json_conv_info, const void* user_data)``, the
#: current ConvInfo after a refused synchronous draft write (``""``: no longer exists).
TIMConvDraftConflictCallback = Callable[[str, Any], object]

kTIMConv_C2C: Final = int(TIMConvType.kTIMConv_C2C)
kTIMConv_Group: Final = int(TIMConvType.kTIMConv_Group)
kTIMConvEvent_Add: Final = int(TIMConvEvent.kTIMConvEvent_Add)
kTIMConvEvent_Del: Final = int(TIMConvEvent.kTIMConvEvent_Del)
kTIMConvEvent_Update: Final = int(TIMConvEvent.kTIMConvEvent_Update)
#: A sync starts (the SDK's server-sync start), after a login or a reconnect;
#: ``json_conv_array`` "".
kTIMConvEvent_Start: Final = int(TIMConvEvent.kTIMConvEvent_Start)
#: The sync finished (the SDK's server-sync finish); ``json_conv_array`` "".
kTIMConvEvent_Finish: Final = int(TIMConvEvent.kTIMConvEvent_Finish)


class TIMLoginStatus:
    """``TIMLoginStatus``: what :func:`TIMGetLoginStatus` returns."""

    kTIMLoginStatus_Logined: Final = 1
    kTIMLoginStatus_Logining: Final = 2
    kTIMLoginStatus_UnLogined: Final = 3


class _GetConvParam(msgspec.Struct, forbid_unknown_fields=True):
    get_conversation_list_param_conv_id: str
    get_conversation_list_param_conv_type: int


#: ``void (*)(const char* group_name, const char* conversation_array, const void* user_data)``
#: (created, conversations added to / deleted from a group)
TIMConvConversationGroupCallback = Callable[[str, str, Any], object]
#: ``void (*)(const char* group_name, const void* user_data)`` (group deleted)
TIMConvConversationGroupDeletedCallback = Callable[[str, Any], object]
#: ``void (*)(const char* old_name, const char* new_name, const void* user_data)``
TIMConvConversationGroupNameChangedCallback = Callable[[str, str, Any], object]

_lock = threading.Lock()
_core: SdkCore | None = None
#: The conversation-group callbacks, by the group event's kind.
_group_callbacks: dict[str, tuple[Callable[..., object], Any]] = {}
_event_callback: tuple[TIMConvEventCallback, Any] | None = None
_conflict_callback: tuple[TIMConvDraftConflictCallback, Any] | None = None
#: Send the last seen revision with this module's draft writes (``convd_draft_compare_and_set``).
_draft_cas = True

_draft_decoder = msgspec.json.Decoder(Draft)
_get_decoder = msgspec.json.Decoder(list[_GetConvParam])
_id_array_decoder = msgspec.json.Decoder(list[str])
_UNREAD_COUNT_KEY: Final = "conv_get_total_unread_message_count_result_unread_count"
_encoder = msgspec.json.Encoder()


def _json(value: Any) -> str:
    return _encoder.encode(value).decode()


# -- lifecycle ---------------------------------------------------------------------------------


def TIMInit(sdk_app_id: int, json_sdk_config: str | bytes | None = None) -> int:
    """Initialize the SDK: start its logic thread and connect to convd in the background.

    Succeeds even when convd is not running (calls then fail with 6022 until it is).
    Initializing again while initialized changes nothing.

    :param sdk_app_id: the app id, sent with every login
    :param json_sdk_config: SDK configuration JSON (convd keys: ``convd_socket_path``,
        ``convd_timeout``, seconds: a finite number above 0); empty or None for the defaults
    :return: TIM_SUCC; TIM_ERR_PARAM for a bad ``sdk_app_id``; TIM_ERR_JSON for a bad config
    """
    global _core, _draft_cas
    if isinstance(sdk_app_id, bool) or not isinstance(sdk_app_id, int) or sdk_app_id < 0:
        return TIM_ERR_PARAM
    config: dict[str, Any] = {}
    if json_sdk_config:
        try:
            loaded = json.loads(json_sdk_config)
        except ValueError:
            return TIM_ERR_JSON
        if not isinstance(loaded, dict):
            return TIM_ERR_JSON
        config = loaded
    socket_path = config.get("convd_socket_path")
    timeout = config.get("convd_timeout", DEFAULT_TIMEOUT)
    if socket_path is not None and not isinstance(socket_path, str):
        return TIM_ERR_JSON
    try:
        # json accepts NaN and Infinity: refused here, not by every call later.
        timeout = checked_seconds("convd_timeout", timeout)
    except ValueError:
        return TIM_ERR_JSON
    compare_and_set = config.get("convd_draft_compare_and_set", True)
    if not isinstance(compare_and_set, bool):
        return TIM_ERR_JSON
    with _lock:
        if _core is not None:
            return TIM_SUCC
        core = SdkCore(
            sdk_app_id,
            socket_path=socket_path or None,
            timeout=timeout,
            on_event=_deliver_event,
            on_group_event=_deliver_group_event,
        )
        core.start()
        _core = core
        _draft_cas = compare_and_set
    return TIM_SUCC


def TIMUninit() -> int:
    """Uninitialize: close the connection; pending asynchronous calls complete with 6013.

    Waits until the callbacks already queued have run (unless called from a callback).

    :return: TIM_SUCC
    """
    global _core
    with _lock:
        core, _core = _core, None
    if core is not None:
        core.stop()
    return TIM_SUCC


def TIMGetSDKVersion() -> str:
    """The client library's version."""
    return f"convd-client {__version__}"


# -- login -------------------------------------------------------------------------------------


def TIMLogin(user_id: str, user_sig: str | None, cb: TIMCommCallback | None, user_data: Any) -> int:
    """Log in as ``user_id`` (``session.login``) and start receiving conversation events.

    ``user_sig`` is accepted and not checked (convd serves only the local user). Until the
    callback reports success, conversation calls return TIM_ERR_NOTLOGIN. ``json_params``
    is ``""``.

    :return: TIM_SUCC, TIM_ERR_SDKUNINIT, or TIM_ERR_PARAM for an empty ``user_id``
    """
    core = _core
    if core is None:
        return TIM_ERR_SDKUNINIT
    if not isinstance(user_id, str) or not user_id:
        return TIM_ERR_PARAM
    if not core.login(user_id, _completion(cb, user_data, _empty)):
        return TIM_ERR_SDKUNINIT
    return TIM_SUCC


def TIMLogout(cb: TIMCommCallback | None, user_data: Any) -> int:
    """Log out. Conversation calls return TIM_ERR_NOTLOGIN from now on; ``json_params`` is
    ``""``. Succeeds even when convd is unreachable (its session ended with the connection).

    :return: TIM_SUCC or TIM_ERR_SDKUNINIT
    """
    core = _core
    if core is None:
        return TIM_ERR_SDKUNINIT
    if not core.logout(_completion(cb, user_data, _empty)):
        return TIM_ERR_SDKUNINIT
    return TIM_SUCC


def TIMGetLoginStatus() -> int:
    """``TIMLoginStatus``: 1 logged in, 2 logging in, 3 not logged in."""
    core = _core
    if core is not None and core.user_id is not None:
        return TIMLoginStatus.kTIMLoginStatus_Logined
    if core is not None and core.logging_in:
        return TIMLoginStatus.kTIMLoginStatus_Logining
    return TIMLoginStatus.kTIMLoginStatus_UnLogined


def TIMGetLoginUserID() -> str | None:
    """The logged-in user id, or None (Python form of ``TIMGetLoginUserID(buffer)``)."""
    core = _core
    return None if core is None else core.user_id


# -- conversations -----------------------------------------------------------------------------


def TIMConvCreate(conv_id: str, conv_type: int, cb: TIMCommCallback | None, user_data: Any) -> int:
    """Create a conversation, or get the existing one (``conv.create``).

    ``json_params``: the ConvInfo object. A new conversation also fires kTIMConvEvent_Add.
    """
    core, result = _ready()
    if core is None:
        return result
    key = _key(conv_id, conv_type)
    if key is None:
        return TIM_ERR_PARAM
    return _start(
        core,
        lambda c: _noting(core, c.conv_create(key.conv_id, key.conv_type)),
        cb,
        user_data,
        _conv_json,
    )


def TIMConvDelete(conv_id: str, conv_type: int, cb: TIMCommCallback | None, user_data: Any) -> int:
    """Delete a conversation and its draft (``conv.delete``); ``json_params`` is ``""``.

    Fires kTIMConvEvent_Del. Callback code 6004 when there is no such conversation.
    """
    core, result = _ready()
    if core is None:
        return result
    key = _key(conv_id, conv_type)
    if key is None:
        return TIM_ERR_PARAM
    return _start(core, lambda c: c.conv_delete(key.conv_id, key.conv_type), cb, user_data, _empty)


def TIMConvGetConvList(cb: TIMCommCallback | None, user_data: Any) -> int:
    """The whole conversation list (paged through ``conv.list``).

    ``json_params``: an array of ConvInfo, pinned first, then most recently activated first.
    """
    core, result = _ready()
    if core is None:
        return result
    return _start(core, lambda c: _noting(core, c.conv_list_all()), cb, user_data, _conv_json)


def TIMConvGetConvInfo(
    json_get_conv_list_param: str | bytes, cb: TIMCommCallback | None, user_data: Any
) -> int:
    """Conversations by id and type (``conv.get``); unknown ones are left out.

    :param json_get_conv_list_param: a JSON array of objects with
        ``get_conversation_list_param_conv_id`` and ``get_conversation_list_param_conv_type``
    :return: TIM_SUCC; TIM_ERR_JSON for bad JSON; TIM_ERR_PARAM for an empty array, an
        empty id or a bad type. ``json_params``: an array of ConvInfo.
    """
    core, result = _ready()
    if core is None:
        return result
    if not isinstance(json_get_conv_list_param, str | bytes):
        return TIM_ERR_PARAM
    try:
        wanted = _get_decoder.decode(json_get_conv_list_param)
    except msgspec.DecodeError:
        return TIM_ERR_JSON
    keys: list[ConvKey] = []
    for item in wanted:
        key = _key(
            item.get_conversation_list_param_conv_id, item.get_conversation_list_param_conv_type
        )
        if key is None:
            return TIM_ERR_PARAM
        keys.append(key)
    if not keys:
        return TIM_ERR_PARAM
    return _start(core, lambda c: _noting(core, c.conv_get(keys)), cb, user_data, _conv_json)


def TIMConvPinConversation(
    conv_id: str, conv_type: int, is_pinned: bool, cb: TIMCommCallback | None, user_data: Any
) -> int:
    """Pin or unpin a conversation (``conv.pin``); ``json_params`` is ``""``.

    Fires kTIMConvEvent_Update when the pin state changes. Callback code 90002 when 50 are
    pinned already, 6004 when there is no such conversation.
    """
    core, result = _ready()
    if core is None:
        return result
    key = _key(conv_id, conv_type)
    if key is None or not isinstance(is_pinned, bool | int):
        return TIM_ERR_PARAM
    pinned = bool(is_pinned)
    return _start(
        core, lambda c: c.conv_pin(key.conv_id, key.conv_type, pinned), cb, user_data, _empty
    )


def TIMConvDeleteConversationList(
    conversation_id_array: str | bytes,
    clear_message: bool,
    cb: TIMCommCallback | None,
    user_data: Any,
) -> int:
    """Delete up to 100 conversations and their drafts at once (``conv.delete_many``).

    One transaction; kTIMConvEvent_Del for each conversation deleted. ``clear_message`` is
    accepted (convd keeps no messages: either way the conversation and its draft go).

    :param conversation_id_array: a JSON array of V2 ids (``"c2c_bob"``, ``"group_team1"``)
    :return: TIM_SUCC; TIM_ERR_JSON when it is not a JSON array of strings; TIM_ERR_PARAM for
        an empty array or an id without a ``c2c_``/``group_`` prefix. ``json_params``: an
        array of TIMConversationOperationResult (6004 for a conversation that does not
        exist); callback code 6017 for more than 100 ids, 7003/8501 for an invalid id
        (nothing is deleted then).
    """
    core, result = _ready()
    if core is None:
        return result
    keys = _id_array(conversation_id_array)
    if isinstance(keys, int):
        return keys
    if not isinstance(clear_message, bool | int):
        return TIM_ERR_PARAM
    return _start(core, lambda c: c.conv_delete_many(keys), cb, user_data, _results_json)


def TIMConvSetConversationCustomData(
    conversation_id_array: str | bytes,
    custom_data: str | bytes | None,
    cb: TIMCommCallback | None,
    user_data: Any,
) -> int:
    """Set the custom data of up to 100 conversations (``conv.set_custom_data``).

    It shows in ConvInfo ``conv_custom_data``; kTIMConvEvent_Update for each conversation
    whose data changed (its place in the list stays). A conversation that does not exist is
    not created.

    :param conversation_id_array: a JSON array of V2 ids
    :param custom_data: the data, text (``bytes`` must be UTF-8); at most 256 bytes of UTF-8;
        ``""`` or None removes it
    :return: as :func:`TIMConvDeleteConversationList`, and TIM_ERR_PARAM for ``custom_data``
        that is not text. ``json_params``: an array of TIMConversationOperationResult;
        callback code 6017 for data over 256 bytes, 51006 for more than 100 ids.
    """
    core, result = _ready()
    if core is None:
        return result
    keys = _id_array(conversation_id_array)
    if isinstance(keys, int):
        return keys
    if custom_data is None:
        custom_data = ""  # as V2: None removes the data
    if isinstance(custom_data, bytes):
        try:
            custom_data = custom_data.decode()
        except UnicodeDecodeError:
            return TIM_ERR_PARAM
    if not isinstance(custom_data, str):
        return TIM_ERR_PARAM
    data = custom_data
    return _start(core, lambda c: c.conv_set_custom_data(keys, data), cb, user_data, _results_json)


def TIMConvGetTotalUnreadMessageCount(cb: TIMCommCallback | None, user_data: Any) -> int:
    """The total unread message count: always 0, since convd receives no messages.

    ``json_params``: ``{"conv_get_total_unread_message_count_result_unread_count": 0}``. The
    callback runs on the logic thread, as every callback; convd is not asked (the answer
    cannot differ), so it succeeds also while convd is unreachable.
    """
    core, result = _ready()
    if core is None:
        return result
    json_params = _json({_UNREAD_COUNT_KEY: 0})

    def answer() -> None:
        if cb is not None:
            cb(0, "", json_params, user_data)

    if not core.post(answer):
        return TIM_ERR_SDKUNINIT
    return TIM_SUCC


def TIMSetConvTotalUnreadMessageCountChangedCallback(
    cb: TIMConvTotalUnreadMessageCountChangedCallback | None, user_data: Any
) -> None:
    """Accepted, and never called: convd receives no messages, so the total unread count
    stays 0 and never changes (see :func:`TIMConvGetTotalUnreadMessageCount`)."""


# -- marks, filtered lists and conversation groups ---------------------------------------------


def TIMConvMarkConversation(
    conversation_id_array: str | bytes,
    mark_type: int,
    enable_mark: bool,
    cb: TIMCommCallback | None,
    user_data: Any,
) -> int:
    """Set (``enable_mark``) or clear one mark on conversations (``conv.mark``).

    :param conversation_id_array: a JSON array of V2 ids (``"c2c_<userID>"``,
        ``"group_<groupID>"``), 1..100 of them
    :param mark_type: ``TIMConversationMarkType`` (Star 0x1, Unread 0x2, Fold 0x4, Hide 0x8)
        or a custom mark ``1 << n``, 32 <= n < 64
    :return: TIM_SUCC; TIM_ERR_JSON when the array is not a JSON array of strings;
        TIM_ERR_PARAM for an id without a ``c2c_``/``group_`` prefix or a negative mark.
        ``json_params``: an array of TIMConversationOperationResult (code 6004 for a
        conversation that does not exist). Callback code 6017 for a value that is not one
        mark or an empty array, 51006 for more than 100 ids. Each conversation whose marks
        change fires kTIMConvEvent_Update.
    """
    core, result = _ready()
    if core is None:
        return result
    keys = _id_array(conversation_id_array, allow_empty=True)
    if isinstance(keys, int):
        return keys
    if not _is_revision(mark_type) or not isinstance(enable_mark, bool | int):
        return TIM_ERR_PARAM
    enable = bool(enable_mark)
    return _start(
        core, lambda c: c.conv_mark(keys, mark_type, enable), cb, user_data, _results_json
    )


def TIMConvGetConversationListByFilter(
    filter: str | bytes,
    next_seq: int,
    count: int,
    cb: TIMCommCallback | None,
    user_data: Any,
) -> int:
    """A page of the conversations matching ``filter`` (``conv.list_by_filter``), the SDK's
    7.x signature: paging as :func:`TIMConvGetConvList`'s daemon pages.

    :param filter: a TIMConversationListFilter JSON object:
        ``conversation_list_filter_conv_type``, ``conversation_list_filter_mark_type`` (0:
        unmarked), ``conversation_list_filter_conversation_group`` (``""``: in no group),
        ``conversation_list_filter_has_unread_count`` and
        ``conversation_list_filter_has_group_at_info`` (true matches nothing: convd has no
        messages), and convd's ``conversation_list_filter_has_draft``; a key left out does
        not filter
    :param next_seq: 0 for the first page, then the previous result's
        ``conversation_list_result_next_seq``
    :param count: page size, 1..1000
    :return: TIM_SUCC; TIM_ERR_JSON for bad JSON or unknown keys; TIM_ERR_PARAM for a bad
        ``next_seq`` or ``count``. ``json_params``: a TIMConversationListResult object.
    """
    core, result = _ready()
    if core is None:
        return result
    if not isinstance(filter, str | bytes):
        return TIM_ERR_PARAM
    try:
        raw = msgspec.json.decode(filter or b"{}")
        if isinstance(raw, dict) and raw.get("conversation_list_filter_conv_type") == 0:
            del raw["conversation_list_filter_conv_type"]  # 0: any type, as V2's type 0
        parsed = msgspec.convert(raw, ConvListFilter)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return TIM_ERR_JSON
    if not _is_revision(next_seq) or not _is_revision(count) or not 1 <= count <= MAX_PAGE_SIZE:
        return TIM_ERR_PARAM
    return _start(
        core,
        lambda c: _noting_page(core, c.conv_list_by_filter(parsed, next_seq, count)),
        cb,
        user_data,
        _page_json,
    )


def TIMConvCreateConversationGroup(
    group_name: str, conversation_id_array: str | bytes, cb: TIMCommCallback | None, user_data: Any
) -> int:
    """Create a conversation group holding the conversations (``conv.group_create``).

    ``json_params``: an array of TIMConversationOperationResult. Fires the group-created
    callback, and kTIMConvEvent_Update for each conversation put in it. Callback codes:
    51010 (20 groups exist), 51011 (name over 32 bytes), 6017 (empty or taken name).

    :return: TIM_SUCC; TIM_ERR_JSON / TIM_ERR_PARAM as :func:`TIMConvMarkConversation`, and
        TIM_ERR_PARAM for a ``group_name`` that is not a string
    """
    core, result = _ready()
    if core is None:
        return result
    keys = _id_array(conversation_id_array, allow_empty=True)
    if isinstance(keys, int):
        return keys
    if not isinstance(group_name, str):
        return TIM_ERR_PARAM
    return _start(
        core, lambda c: c.conv_group_create(group_name, keys), cb, user_data, _results_json
    )


def TIMConvGetConversationGroupList(cb: TIMCommCallback | None, user_data: Any) -> int:
    """The conversation group names (``conv.group_list``), oldest first; ``json_params``: a
    JSON array of strings. As the SDK says, call it again after kTIMConvEvent_Finish: group
    changes made while this process was away are not replayed."""
    core, result = _ready()
    if core is None:
        return result
    return _start(core, lambda c: c.conv_group_list(), cb, user_data, _json)


def TIMConvDeleteConversationGroup(
    group_name: str, cb: TIMCommCallback | None, user_data: Any
) -> int:
    """Delete a conversation group (``conv.group_delete``); ``json_params`` is ``""``. Its
    conversations stay (kTIMConvEvent_Update each). Callback code 51009: no such group."""
    core, result = _ready()
    if core is None:
        return result
    if not isinstance(group_name, str):
        return TIM_ERR_PARAM
    return _start(core, lambda c: c.conv_group_delete(group_name), cb, user_data, _empty)


def TIMConvRenameConversationGroup(
    old_name: str, new_name: str, cb: TIMCommCallback | None, user_data: Any
) -> int:
    """Rename a conversation group (``conv.group_rename``); ``json_params`` is ``""``.
    Callback codes: 51009 no such group, 51011 new name over 32 bytes, 6017 taken."""
    core, result = _ready()
    if core is None:
        return result
    if not isinstance(old_name, str) or not isinstance(new_name, str):
        return TIM_ERR_PARAM
    return _start(core, lambda c: c.conv_group_rename(old_name, new_name), cb, user_data, _empty)


def TIMConvAddConversationsToGroup(
    group_name: str, conversation_id_array: str | bytes, cb: TIMCommCallback | None, user_data: Any
) -> int:
    """Add conversations to a conversation group (``conv.group_add``); ``json_params``: an
    array of TIMConversationOperationResult. Callback code 51009: no such group."""
    return _regroup(group_name, conversation_id_array, cb, user_data, add=True)


def TIMConvDeleteConversationsFromGroup(
    group_name: str, conversation_id_array: str | bytes, cb: TIMCommCallback | None, user_data: Any
) -> int:
    """Remove conversations from a conversation group (``conv.group_remove``); as
    :func:`TIMConvAddConversationsToGroup`."""
    return _regroup(group_name, conversation_id_array, cb, user_data, add=False)


def _regroup(
    group_name: str,
    conversation_id_array: str | bytes,
    cb: TIMCommCallback | None,
    user_data: Any,
    *,
    add: bool,
) -> int:
    core, result = _ready()
    if core is None:
        return result
    keys = _id_array(conversation_id_array, allow_empty=True)
    if isinstance(keys, int):
        return keys
    if not isinstance(group_name, str):
        return TIM_ERR_PARAM

    async def call(client: Client) -> list[ConvOperationResult]:
        if add:
            return await client.conv_group_add(group_name, keys)
        return await client.conv_group_remove(group_name, keys)

    return _start(core, call, cb, user_data, _results_json)


def TIMSetConvConversationGroupCreatedCallback(
    cb: TIMConvConversationGroupCallback | None, user_data: Any
) -> None:
    """Register ``cb(group_name, conversation_array, user_data)`` for created groups
    (``conversation_array``: a JSON array of the ConvInfo it was created with)."""
    _set_group_callback("created", cb, user_data)


def TIMSetConvConversationGroupDeletedCallback(
    cb: TIMConvConversationGroupDeletedCallback | None, user_data: Any
) -> None:
    """Register ``cb(group_name, user_data)`` for deleted groups."""
    _set_group_callback("deleted", cb, user_data)


def TIMSetConvConversationGroupNameChangedCallback(
    cb: TIMConvConversationGroupNameChangedCallback | None, user_data: Any
) -> None:
    """Register ``cb(old_name, new_name, user_data)`` for renamed groups."""
    _set_group_callback("name_changed", cb, user_data)


def TIMSetConvConversationsAddedToGroupCallback(
    cb: TIMConvConversationGroupCallback | None, user_data: Any
) -> None:
    """Register ``cb(group_name, conversation_array, user_data)`` for conversations added to a
    group (``conversation_array``: a JSON array of ConvInfo)."""
    _set_group_callback("conversations_added", cb, user_data)


def TIMSetConvConversationsDeletedFromGroupCallback(
    cb: TIMConvConversationGroupCallback | None, user_data: Any
) -> None:
    """Register ``cb(group_name, conversation_array, user_data)`` for conversations removed from
    a group."""
    _set_group_callback("conversations_deleted", cb, user_data)


def _set_group_callback(kind: str, cb: Callable[..., object] | None, user_data: Any) -> None:
    # Like TIMSetConvEventCallback: any time, also before TIMInit; None removes it. The
    # callbacks run on the logic thread, in order with the conversation events.
    if cb is None:
        _group_callbacks.pop(kind, None)
    else:
        _group_callbacks[kind] = (cb, user_data)


def _deliver_group_event(event: GroupEvent) -> None:
    registered = _group_callbacks.get(event.kind)
    if registered is None:
        return
    cb, user_data = registered
    if event.kind == "deleted":
        cb(event.group_name, user_data)
    elif event.kind == "name_changed":
        cb(event.old_name, event.group_name, user_data)
    else:
        cb(event.group_name, _json(list(event.conversations)), user_data)


def _page_json(page: ConvListResult) -> str:
    return _json(page)


# -- drafts ------------------------------------------------------------------------------------


def TIMConvSetDraft(conv_id: str, conv_type: int, json_draft_param: str | bytes) -> int:
    """Set a conversation's draft, synchronously (``conv.set_draft``).

    Returns once convd has stored the draft: TIM_SUCC means it is stored. Creates the
    conversation when needed (kTIMConvEvent_Add), otherwise fires kTIMConvEvent_Update. A
    draft with no text and an empty ``draft_user_define`` clears the draft.

    :param json_draft_param: a Draft object: ``draft_msg`` (a Message: its
        ``message_elem_array`` of text elements is kept, its other keys are ignored),
        ``draft_user_define``, ``draft_edit_time`` (default: now)
    :return: TIM_SUCC; TIM_ERR_JSON for bad JSON or unknown Draft keys; TIM_ERR_PARAM for an
        empty id, a bad type, a non-text element or a text over 12 KiB of UTF-8 (all text
        elements together); TIM_ERR_CONV for an invalid id; or
        TIM_ERR_IO / TIM_ERR_TIMEOUT / TIM_ERR_INTERNAL (see the module documentation)
    """
    core, result = _ready()
    if core is None:
        return result
    key = _key(conv_id, conv_type)
    if key is None:
        return TIM_ERR_PARAM
    draft = _parse_draft(json_draft_param)
    if isinstance(draft, int):
        return draft
    return _run_sync(
        core,
        lambda c: core.write_draft(
            key,
            lambda revision: c.conv_set_draft(
                key.conv_id, key.conv_type, draft, if_revision=revision
            ),
            compare_and_set=_draft_cas,
        ),
    )


def TIMConvCancelDraft(conv_id: str, conv_type: int) -> int:
    """Clear a conversation's draft, synchronously (``conv.cancel_draft``).

    Fires kTIMConvEvent_Update when there was a draft; does not reorder the list.

    :return: TIM_SUCC; TIM_ERR_PARAM; TIM_ERR_CONV when there is no such conversation (or
        its id is invalid); or TIM_ERR_IO / TIM_ERR_TIMEOUT / TIM_ERR_INTERNAL
    """
    core, result = _ready()
    if core is None:
        return result
    key = _key(conv_id, conv_type)
    if key is None:
        return TIM_ERR_PARAM

    async def cancel(c: Client) -> ConvInfo:
        try:
            return await core.write_draft(
                key,
                lambda revision: c.conv_cancel_draft(
                    key.conv_id, key.conv_type, if_revision=revision
                ),
                compare_and_set=_draft_cas,
            )
        except RevisionConflict as conflict:
            if conflict.current is None:
                # Deleted since it was seen: no conversation, as without compare-and-set.
                raise ConversationNotFound(
                    int(TIMErrCode.ERR_INVALID_CONVERSATION), "no such conversation"
                ) from conflict
            raise

    return _run_sync(core, cancel)


def TIMConvSetDraftIfRevision(
    conv_id: str,
    conv_type: int,
    json_draft_param: str | bytes,
    if_revision: int,
    cb: TIMCommCallback | None,
    user_data: Any,
) -> int:
    """convd extension: set the draft only if it is still at revision ``if_revision``.

    ``if_revision`` is the ``conv_draft_revision`` of the ConvInfo the caller last saw (0 for
    a conversation that has never had a draft or does not exist). Asynchronous: the callback
    gets code 0 and the new ConvInfo, or code 90001 (draft revision conflict, nothing
    written) and the current ConvInfo, holding the current draft and revision (``""`` when
    the conversation no longer exists).

    :return: as :func:`TIMConvSetDraft` for the parameters, TIM_ERR_PARAM for a negative
        ``if_revision``; otherwise TIM_SUCC
    """
    core, result = _ready()
    if core is None:
        return result
    key = _key(conv_id, conv_type)
    if key is None or not _is_revision(if_revision):
        return TIM_ERR_PARAM
    draft = _parse_draft(json_draft_param)
    if isinstance(draft, int):
        return draft
    return _start(
        core,
        lambda c: core.write_draft(
            key,
            lambda revision: c.conv_set_draft(
                key.conv_id, key.conv_type, draft, if_revision=revision
            ),
            if_revision=if_revision,
        ),
        cb,
        user_data,
        _conv_json,
    )


def TIMConvCancelDraftIfRevision(
    conv_id: str, conv_type: int, if_revision: int, cb: TIMCommCallback | None, user_data: Any
) -> int:
    """convd extension: clear the draft only if it is still at revision ``if_revision``.

    Asynchronous, with the same callback as :func:`TIMConvSetDraftIfRevision` (code 6004
    when the conversation does not exist and ``if_revision`` is 0).
    """
    core, result = _ready()
    if core is None:
        return result
    key = _key(conv_id, conv_type)
    if key is None or not _is_revision(if_revision):
        return TIM_ERR_PARAM
    return _start(
        core,
        lambda c: core.write_draft(
            key,
            lambda revision: c.conv_cancel_draft(key.conv_id, key.conv_type, if_revision=revision),
            if_revision=if_revision,
        ),
        cb,
        user_data,
        _conv_json,
    )


# -- draft history (convd extension) -----------------------------------------------------------


def TIMConvGetDraftHistory(
    conv_id: str, conv_type: int, count: int, cb: TIMCommCallback | None, user_data: Any
) -> int:
    """convd extension: a conversation's earlier drafts, newest first (``conv.draft_history``).

    Every set, clear or restore of a draft keeps the draft it replaced (not "no draft"); by
    default the last 20 per conversation, none older than 30 days. ``json_params``: an
    object ``{"conv_draft_revision": N, "versions": [{"revision", "draft", "replaced_at",
    "replaced_by", "replaced_how"}, ...]}``, ``draft`` being a Draft object and
    ``conv_draft_revision`` the current draft's revision. Callback code 6004 when there is
    no such conversation.

    :param count: at most this many versions, 1..1000
    :return: TIM_SUCC; TIM_ERR_PARAM for a bad id, type or count
    """
    core, result = _ready()
    if core is None:
        return result
    key = _key(conv_id, conv_type)
    if key is None or not _is_revision(count) or not 1 <= count <= MAX_DRAFT_HISTORY:
        return TIM_ERR_PARAM

    async def history(c: Client) -> ConvDraftHistoryResult:
        found = await c.conv_draft_history(key.conv_id, key.conv_type, count)
        core.note_revision(key, found.conv_draft_revision)
        return found

    return _start(core, history, cb, user_data, _json)


def TIMConvRestoreDraft(
    conv_id: str, conv_type: int, revision: int, cb: TIMCommCallback | None, user_data: Any
) -> int:
    """convd extension: make the earlier draft ``revision`` (from
    :func:`TIMConvGetDraftHistory`) the current draft again (``conv.restore_draft``).

    The restored draft gets a new revision, the conversation moves to the top (as by a set)
    and kTIMConvEvent_Update fires; the draft it replaces is kept in the history. Sent with
    the last revision this module saw (compare-and-set, see the module documentation).
    Asynchronous: the callback gets code 0 and the new ConvInfo; 90006 (no such version:
    never kept, pruned, or deleted with its conversation); 90001 and the current ConvInfo
    when the draft moved on since this module last saw it; 6004 when there is no such
    conversation.

    :return: TIM_SUCC; TIM_ERR_PARAM for a bad id, type or revision
    """
    core, result = _ready()
    if core is None:
        return result
    key = _key(conv_id, conv_type)
    if key is None or not _is_revision(revision):
        return TIM_ERR_PARAM
    return _start(
        core,
        lambda c: core.write_draft(
            key,
            lambda if_revision: c.conv_restore_draft(
                key.conv_id, key.conv_type, revision, if_revision=if_revision
            ),
            compare_and_set=_draft_cas,
        ),
        cb,
        user_data,
        _conv_json,
    )


def TIMSetConvDraftConflictCallback(
    cb: TIMConvDraftConflictCallback | None, user_data: Any
) -> None:
    """convd extension: register ``cb(json_conv_info, user_data)``, called on the logic thread
    when :func:`TIMConvSetDraft` or :func:`TIMConvCancelDraft` returned
    :data:`TIM_ERR_CONFLICT`: ``json_conv_info`` is the conversation as it is now (its
    current draft and ``conv_draft_revision``), ``""`` when it no longer exists. None
    removes it."""
    global _conflict_callback
    _conflict_callback = None if cb is None else (cb, user_data)


# -- events ------------------------------------------------------------------------------------


def TIMSetConvEventCallback(cb: TIMConvEventCallback | None, user_data: Any) -> None:
    """Register ``cb(conv_event, json_conv_array, user_data)`` for conversation events.

    ``conv_event`` is kTIMConvEvent_Add (0), _Del (1) or _Update (2); ``json_conv_array`` a
    JSON array of ConvInfo (for Del: objects with only ``conv_id`` and ``conv_type``); after
    every login and reconnect, _Start (3) and _Finish (4) with ``""`` frame the sync of the
    list (see the module documentation). Runs on the logic thread. May be called at any
    time, also before :func:`TIMInit`; None removes it.
    """
    global _event_callback
    _event_callback = None if cb is None else (cb, user_data)


_FRAME_EVENTS = frozenset({TIMConvEvent.kTIMConvEvent_Start, TIMConvEvent.kTIMConvEvent_Finish})


def _deliver_event(event: ConvEvent) -> None:
    registered = _event_callback
    if registered is not None:
        cb, user_data = registered
        # Start and Finish carry "" (the SDK's), every other event its array.
        conv_array = "" if event.event in _FRAME_EVENTS else _json(event.conv_array)
        cb(int(event.event), conv_array, user_data)


# -- helpers -----------------------------------------------------------------------------------


def _ready() -> tuple[SdkCore | None, int]:
    core = _core
    if core is None:
        return None, TIM_ERR_SDKUNINIT
    if core.user_id is None:
        return None, TIM_ERR_NOTLOGIN
    return core, TIM_SUCC


def _key(conv_id: object, conv_type: object) -> ConvKey | None:
    if not isinstance(conv_id, str) or not conv_id:
        return None
    if isinstance(conv_type, bool) or not isinstance(conv_type, int):
        return None
    try:
        return ConvKey(conv_id=conv_id, conv_type=TIMConvType(conv_type))
    except ValueError:
        return None


def _id_array(conversation_id_array: object, *, allow_empty: bool = False) -> list[ConvKey] | int:
    """The keys of a JSON array of V2 conversation ids, or the TIMResult refusing it (an
    empty array too, unless ``allow_empty``: then convd answers for it)."""
    if not isinstance(conversation_id_array, str | bytes):
        return TIM_ERR_PARAM
    try:
        ids = _id_array_decoder.decode(conversation_id_array)
    except msgspec.DecodeError:
        return TIM_ERR_JSON
    keys: list[ConvKey] = []
    for item in ids:
        key = parse_conversation_id(item)
        if key is None:
            return TIM_ERR_PARAM
        keys.append(key)
    return keys if keys or allow_empty else TIM_ERR_PARAM


def _results_json(results: list[ConvOperationResult]) -> str:
    """The SDK's TIMConversationOperationResult array, named by V2 ids."""
    return _json(
        [
            {
                "conversation_operation_result_conversation_id": conversation_id(
                    r.conv_id, r.conv_type
                ),
                "conversation_operation_result_result_code": r.result_code,
                "conversation_operation_result_result_info": r.result_info,
            }
            for r in results
        ]
    )


def _is_revision(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_draft(json_draft_param: object) -> Draft | int:
    if not isinstance(json_draft_param, str | bytes):
        return TIM_ERR_PARAM
    try:
        return _draft_decoder.decode(json_draft_param)
    except msgspec.DecodeError:
        return TIM_ERR_JSON


def _empty(result: object) -> str:
    return ""


def _conv_json(result: ConvInfo | list[ConvInfo]) -> str:
    return _json(result)


def _completion(
    cb: TIMCommCallback | None, user_data: Any, to_json: Callable[[Any], str]
) -> Callable[[Any, BaseException | None], None]:
    def done(result: Any, error: BaseException | None) -> None:
        if cb is None:
            return
        if error is None:
            cb(0, "", to_json(result), user_data)
            return
        code, desc = callback_error(error)
        json_params = ""
        if isinstance(error, RevisionConflict) and error.current is not None:
            json_params = _json(error.current)
        cb(code, desc, json_params, user_data)

    return done


def _start(
    core: SdkCore,
    fn: Callable[[Client], Awaitable[T]],
    cb: TIMCommCallback | None,
    user_data: Any,
    to_json: Callable[[T], str],
) -> int:
    if not core.run(fn, _completion(cb, user_data, to_json)):
        return TIM_ERR_SDKUNINIT
    return TIM_SUCC


async def _noting_page(core: SdkCore, call: Awaitable[ConvListResult]) -> ConvListResult:
    """A list page, its ConvInfo revisions noted as seen (compare-and-set)."""
    page = await call
    core.note_revisions(page.conversation_list_result_conv_list)
    return page


async def _noting(core: SdkCore, call: Awaitable[T]) -> T:
    """``call``'s result, its ConvInfo revisions noted as seen (compare-and-set)."""
    return core.noted(await call)


def _report_conflict(core: SdkCore, conflict: RevisionConflict) -> None:
    registered = _conflict_callback
    if registered is not None:
        cb, user_data = registered
        current = "" if conflict.current is None else _json(conflict.current)
        core.post(cb, current, user_data)


def _run_sync(core: SdkCore, fn: Callable[[Client], Awaitable[object]]) -> int:
    try:
        core.run_sync(fn)
    except RevisionConflict as conflict:
        _report_conflict(core, conflict)
        return TIM_ERR_CONFLICT
    except NotLoggedIn:
        return TIM_ERR_NOTLOGIN
    except (ConversationNotFound, InvalidIdentifier):
        return TIM_ERR_CONV
    except InvalidParameters:
        return TIM_ERR_PARAM
    except DaemonUnavailable:
        return TIM_ERR_IO
    except RequestTimeout:
        return TIM_ERR_TIMEOUT
    except (SdkUninitialized, ClientClosed):
        return TIM_ERR_SDKUNINIT
    except Exception:
        logger.exception("a synchronous TIM call failed")
        return TIM_ERR_INTERNAL
    return TIM_SUCC
