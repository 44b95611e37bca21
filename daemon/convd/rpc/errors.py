"""The one place where domain errors become wire error codes."""

from __future__ import annotations

from typing import Any

from convd_schemas import ERROR_TABLE, ConvdErrCode, ConvOperationResult, TIMErrCode

from .. import domain
from .convert import conv_info, wire_key

__all__ = ["operation_results", "wire_error"]

_CODES: dict[type[domain.DomainError], int] = {
    domain.NotLoggedIn: TIMErrCode.ERR_SDK_NOT_LOGGED_IN,
    domain.InvalidParameter: TIMErrCode.ERR_INVALID_PARAMETERS,
    domain.InvalidMessageElement: TIMErrCode.ERR_INVALID_MSG_ELEM,
    domain.DraftTooLarge: TIMErrCode.ERR_SDK_MSG_BODY_SIZE_LIMIT,
    domain.InvalidUserId: TIMErrCode.ERR_SDK_COMM_INVALID_IDENTIFIER,
    domain.InvalidGroupId: TIMErrCode.ERR_SDK_GROUP_INVALID_ID,
    domain.ConversationNotFound: TIMErrCode.ERR_INVALID_CONVERSATION,
    domain.DraftRevisionConflict: ConvdErrCode.DRAFT_REVISION_CONFLICT,
    domain.PinLimitExceeded: ConvdErrCode.PIN_LIMIT_EXCEEDED,
    domain.SeqTooOld: ConvdErrCode.SEQ_TOO_OLD,
    domain.SubscriptionNotFound: ConvdErrCode.SUBSCRIPTION_NOT_FOUND,
    domain.BackupFailed: ConvdErrCode.BACKUP_FAILED,
    domain.StorageFailure: TIMErrCode.ERR_SDK_COMM_DATABASE_FAILURE,
    domain.TooManyConversations: TIMErrCode.ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT,
    domain.DraftVersionNotFound: ConvdErrCode.DRAFT_VERSION_NOT_FOUND,
    domain.GroupNotFound: TIMErrCode.ERR_SVR_CONV_CONV_GROUP_NOT_EXIST,
    domain.GroupLimitExceeded: TIMErrCode.ERR_SVR_CONV_CONV_GROUP_TOTAL_COUNT_EXCEED_LIMIT,
    domain.GroupNameTooLong: TIMErrCode.ERR_SVR_CONV_CONV_GROUP_NAME_EXCEED_LENGTH,
}


def wire_error(error: domain.DomainError) -> dict[str, Any]:
    """The ``code``, ``message`` and ``data`` for a domain error.

    The message is the contract's one message for the code (``ERROR_TABLE``); what varies
    (which conversation, which limit) is ``data.detail``, next to any structured data.
    """
    code = next((int(code) for cls, code in _CODES.items() if isinstance(error, cls)), None)
    if code is None or code not in ERROR_TABLE:
        # A domain error without a code is a bug: the dispatcher's guard logs it.
        raise TypeError(f"no wire code for {type(error).__name__}") from error
    detail = str(error)
    data: Any
    if isinstance(error, domain.DraftRevisionConflict):
        # The current ConvInfo; null when the conversation no longer exists (revision 0).
        data = None if error.current is None else conv_info(error.current)
    elif isinstance(error, domain.SeqTooOld):
        data = {
            "oldest_seq": error.oldest_seq,
            "current_seq": error.current_seq,
            "detail": detail,
        }
    elif isinstance(error, domain.BackupFailed):
        data = {"path": error.path, "errno": error.errno_name, "detail": detail}
    elif isinstance(error, domain.StorageFailure):
        data = {"reason": error.reason, "detail": detail}
    elif isinstance(error, domain.DraftVersionNotFound):
        data = {"revision": error.revision, "detail": detail}
    else:
        data = {"detail": detail}
    return {"code": code, "message": ERROR_TABLE[code].message, "data": data}


def operation_results(outcomes: list[domain.Outcome]) -> list[ConvOperationResult]:
    """A batch call's answer: per conversation, 0 and ``""``, or its error's code and detail
    (the SDK's TIMConversationOperationResult ``result_code`` / ``result_info``)."""
    results: list[ConvOperationResult] = []
    for outcome in outcomes:
        error = outcome.error
        if error is None:
            code, info = 0, ""
        elif isinstance(error, domain.DomainError):
            code, info = int(wire_error(error)["code"]), str(error)
        else:
            raise TypeError(f"no wire code for {type(error).__name__}") from error
        wire = wire_key(outcome.key)
        results.append(
            ConvOperationResult(
                conv_id=wire.conv_id, conv_type=wire.conv_type, result_code=code, result_info=info
            )
        )
    return results
