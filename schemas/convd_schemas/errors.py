"""Every error code convd puts on the wire, with its meaning.

Three families share the ``error.code`` field of a JSON-RPC error response:

* JSON-RPC 2.0's own codes (-32700 .. -32603) for framing, envelope and parameter-shape errors;
* the SDK's callback codes (``TIMErrCode``: 6004, 6014, 6016, 6017, 7003, 8001, 8501, ...) for the
  conditions
  the SDK defines;
* convd's own codes (``ConvdErrCode``, 90000 and up) where the SDK has no code. They sit outside
  JSON-RPC's reserved range -32768 .. -32000 and outside every range the SDK uses.
"""

from __future__ import annotations

from enum import IntEnum

import msgspec

__all__ = [
    "ERROR_TABLE",
    "ConvdErrCode",
    "ErrorInfo",
    "JsonRpcErrCode",
    "TIMErrCode",
]


class JsonRpcErrCode(IntEnum):
    """JSON-RPC 2.0's pre-defined error codes."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603


class TIMErrCode(IntEnum):
    """The SDK's callback error codes that convd uses (same numbers as TIMErrorCode.h)."""

    ERR_SUCC = 0
    ERR_INVALID_CONVERSATION = 6004
    #: Never on the wire: the client library's code for a call convd did not answer in time.
    ERR_REQUEST_TIMEOUT = 6012
    ERR_SDK_NOT_INITIALIZED = 6013
    ERR_SDK_NOT_LOGGED_IN = 6014
    ERR_INVALID_MSG_ELEM = 6016
    ERR_INVALID_PARAMETERS = 6017
    ERR_IO_OPERATION_FAILED = 6022
    ERR_INVALID_JSON = 6027
    ERR_SDK_COMM_INVALID_IDENTIFIER = 7003
    ERR_SDK_COMM_DATABASE_FAILURE = 7010
    ERR_SDK_INTERNAL_ERROR = 7012
    ERR_SDK_MSG_BODY_SIZE_LIMIT = 8001
    ERR_SDK_GROUP_INVALID_ID = 8501
    #: More than 100 conversations in one mark / conversation-group / custom-data request.
    ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT = 51006
    ERR_SVR_CONV_CONV_GROUP_NOT_EXIST = 51009
    ERR_SVR_CONV_CONV_GROUP_TOTAL_COUNT_EXCEED_LIMIT = 51010
    ERR_SVR_CONV_CONV_GROUP_NAME_EXCEED_LENGTH = 51011


class ConvdErrCode(IntEnum):
    """convd's own codes, for conditions the SDK has no code for."""

    DRAFT_REVISION_CONFLICT = 90001
    PIN_LIMIT_EXCEEDED = 90002
    SEQ_TOO_OLD = 90003
    SUBSCRIPTION_NOT_FOUND = 90004
    BACKUP_FAILED = 90005
    DRAFT_VERSION_NOT_FOUND = 90006


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One documented error: its code, its ``message`` and what ``data`` carries.

    Every error with this code carries exactly this ``message``. What varies (which
    conversation, which limit, which parameter) is in ``data``: for convd's and the SDK's codes,
    ``data.detail`` is a sentence saying it, next to any structured members (90001 carries the
    current ConvInfo instead); for JSON-RPC's own codes, ``data`` is that sentence.
    """

    code: int
    message: str
    description: str


ERROR_TABLE: dict[int, ErrorInfo] = {
    info.code: info
    for info in (
        ErrorInfo(
            code=JsonRpcErrCode.PARSE_ERROR,
            message="Parse error",
            description="The line is not valid UTF-8 JSON. `data` says where it broke.",
        ),
        ErrorInfo(
            code=JsonRpcErrCode.INVALID_REQUEST,
            message="Invalid Request",
            description=(
                "Not a JSON-RPC 2.0 request object, an empty or oversized batch, or a line "
                "longer than the maximum (the connection is then closed). `data` explains."
            ),
        ),
        ErrorInfo(
            code=JsonRpcErrCode.METHOD_NOT_FOUND,
            message="Method not found",
            description="No such method. `data` is the method name.",
        ),
        ErrorInfo(
            code=JsonRpcErrCode.INVALID_PARAMS,
            message="Invalid params",
            description=(
                "`params` do not match the method's schema (wrong type, missing or unknown "
                "member, value out of range, positional params). `data` names the member."
            ),
        ),
        ErrorInfo(
            code=JsonRpcErrCode.INTERNAL_ERROR,
            message="Internal error",
            description=(
                "A fault inside convd. `data` is `{correlation_id}`; the details are in the "
                "daemon's log under that id."
            ),
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_INVALID_CONVERSATION,
            message="Invalid conversation",
            description="The conversation does not exist for the logged-in account.",
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_SDK_NOT_LOGGED_IN,
            message="Not logged in",
            description="A `conv.*` method was called before `session.login` on this connection.",
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_INVALID_PARAMETERS,
            message="Invalid parameters",
            description=(
                "A parameter breaks an SDK rule: an empty conversation id, a bad page size, more "
                "subscriptions than one connection may hold."
            ),
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_INVALID_MSG_ELEM,
            message="Invalid message element",
            description=(
                "A draft element is not a text element (drafts hold text only: `elem_type` 0), "
                "or is a text element without `text_elem_content`. The message names the "
                "element's index and type."
            ),
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_SDK_MSG_BODY_SIZE_LIMIT,
            message="Message body too large",
            description=(
                "The draft's text is larger than the SDK's message body limit, so it could never "
                "be sent: the UTF-8 bytes of all its text elements together exceed 12 KiB "
                "(12288 bytes; `draft_user_define` is not counted)."
            ),
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_SDK_COMM_INVALID_IDENTIFIER,
            message="Invalid identifier",
            description="A user id (C2C `conv_id` or `user_id`) must be 1..32 bytes of printable "
            "ASCII (0x20..0x7e).",
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_SDK_GROUP_INVALID_ID,
            message="Invalid group id",
            description="A group id (group `conv_id`) must be 1..48 bytes of printable ASCII.",
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_SDK_COMM_DATABASE_FAILURE,
            message="Database failure",
            description=(
                "The database cannot take the write: the disk is full, the file became "
                "read-only, or an I/O error occurred. Nothing of the write was kept; reads may "
                "still work. The message says which, and `data` is `{reason}`: `disk full`, "
                "`read-only`, `I/O error`, `busy`, `corrupt`, `permission denied`, "
                "`cannot open a file` or `database error`."
            ),
        ),
        ErrorInfo(
            code=ConvdErrCode.DRAFT_REVISION_CONFLICT,
            message="Draft revision conflict",
            description=(
                "`if_revision` differs from the stored `conv_draft_revision`; nothing was "
                "written. `data` is the current ConvInfo, or null when the conversation no "
                "longer exists (its revision is then 0)."
            ),
        ),
        ErrorInfo(
            code=ConvdErrCode.PIN_LIMIT_EXCEEDED,
            message="Pin limit exceeded",
            description="At most 50 conversations can be pinned, as in the SDK.",
        ),
        ErrorInfo(
            code=ConvdErrCode.SEQ_TOO_OLD,
            message="Change sequence too old",
            description=(
                "The changes after `since_seq` are no longer kept (or `since_seq` is ahead of "
                "the account). Reload the list with `conv.list` and subscribe without "
                "`since_seq`. `data` is `{oldest_seq, current_seq}`."
            ),
        ),
        ErrorInfo(
            code=ConvdErrCode.SUBSCRIPTION_NOT_FOUND,
            message="Subscription not found",
            description="No such subscription on this connection.",
        ),
        ErrorInfo(
            code=ConvdErrCode.BACKUP_FAILED,
            message="Backup failed",
            description=(
                "The backup file was not written: it already exists (pass `overwrite: true`), "
                "it is the live database, its directory is missing or not writable, or the disk "
                "is full. Nothing is left at `path` by a failed backup. `data` is `{path, errno}`, "
                "`errno` being the OS error's symbolic name (`EEXIST`, `EACCES`, `ENOENT`, "
                "`ENOSPC`, ...) or null."
            ),
        ),
        ErrorInfo(
            code=ConvdErrCode.DRAFT_VERSION_NOT_FOUND,
            message="Draft version not found",
            description=(
                "`conv.restore_draft`: the conversation's draft history holds no version with "
                "that `revision`: it never did (a revision with no draft is not kept), or it "
                "was pruned (beyond the newest `convd --draft-history` versions, or older than "
                "`--draft-history-for`), or the conversation was deleted since (its history "
                "goes with it). Nothing was written. `data` is `{revision, detail}`."
            ),
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT,
            message="Too many conversations in one request",
            description=(
                "A mark, conversation-group or custom-data call named more than 100 "
                "conversations (the SDK's limit for one such request); nothing was changed."
            ),
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_SVR_CONV_CONV_GROUP_NOT_EXIST,
            message="Conversation group does not exist",
            description="The account has no conversation group of that name.",
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_SVR_CONV_CONV_GROUP_TOTAL_COUNT_EXCEED_LIMIT,
            message="Too many conversation groups",
            description="An account has at most 20 conversation groups, as in the SDK.",
        ),
        ErrorInfo(
            code=TIMErrCode.ERR_SVR_CONV_CONV_GROUP_NAME_EXCEED_LENGTH,
            message="Conversation group name too long",
            description="A conversation group name is at most 32 bytes of UTF-8, as in the SDK.",
        ),
    )
}
