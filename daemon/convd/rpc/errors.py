"""The one place where domain errors become wire error codes."""

from __future__ import annotations

from typing import Any

from convd_schemas import ConvdErrCode, TIMErrCode

from .. import domain
from .convert import conv_info

__all__ = ["wire_error"]

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
}


def wire_error(error: domain.DomainError) -> dict[str, Any]:
    """The ``code``, ``message`` and (where there is one) ``data`` for a domain error."""
    code = next(
        (int(code) for cls, code in _CODES.items() if isinstance(error, cls)),
        int(TIMErrCode.ERR_SDK_INTERNAL_ERROR),
    )
    fields: dict[str, Any] = {"code": code, "message": str(error)}
    if isinstance(error, domain.DraftRevisionConflict):
        # null when the conversation no longer exists: its revision is then 0.
        fields["data"] = None if error.current is None else conv_info(error.current)
    elif isinstance(error, domain.SeqTooOld):
        fields["data"] = {"oldest_seq": error.oldest_seq, "current_seq": error.current_seq}
    elif isinstance(error, domain.BackupFailed):
        fields["data"] = {"path": error.path, "errno": error.errno_name}
    elif isinstance(error, domain.StorageFailure):
        fields["data"] = {"reason": error.reason}
    return fields
