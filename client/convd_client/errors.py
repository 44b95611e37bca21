"""Everything the client library raises.

Two kinds of failure are kept apart:

* :class:`ConvdError` and its subclasses: the daemon answered, with a JSON-RPC error object.
  ``code`` is the wire code (an SDK ``ERR_*`` code, a convd 9000x code or a JSON-RPC code, see
  ``convd_schemas.errors``), ``message`` its text and ``data`` its ``data`` member.
* :class:`DaemonUnavailable` (and :class:`ConnectionLost`), :class:`RequestTimeout`,
  :class:`ProtocolError` and :class:`ClientClosed`: the daemon did not answer.

All of them derive from :class:`ConvdClientError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import msgspec

from convd_schemas import ConvdErrCode, ConvInfo, JsonRpcErrCode, TIMErrCode

__all__ = [
    "BackupFailed",
    "ClientClosed",
    "ConnectionLost",
    "ConvdClientError",
    "ConvdError",
    "ConversationNotFound",
    "DaemonUnavailable",
    "DraftVersionNotFound",
    "InvalidIdentifier",
    "InvalidParameters",
    "NotLoggedIn",
    "PinLimitExceeded",
    "ProtocolError",
    "RequestTimeout",
    "RevisionConflict",
    "SeqTooOld",
    "SubscriptionNotFound",
]


class ConvdClientError(Exception):
    """Base class of every error the client library raises."""


class ConvdError(ConvdClientError):
    """The daemon answered a call with a JSON-RPC error.

    :param code: the wire error code
    :param message: the error's message
    :param data: the error's ``data`` member (``None`` when absent)
    """

    #: The wire code a subclass stands for (0 on the base class).
    CODE: ClassVar[int] = 0

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{code}: {self.description}")

    @property
    def detail(self) -> str | None:
        """What varies for this error (``data.detail``, or ``data`` when it is a sentence):
        which conversation, which limit, which parameter. None when the daemon said nothing
        more than the code's message."""
        if isinstance(self.data, dict) and isinstance(self.data.get("detail"), str):
            return str(self.data["detail"])
        if isinstance(self.data, str) and self.data:
            return self.data
        return None

    @property
    def description(self) -> str:
        """One line for people and for the SDK's ``desc``: the detail when there is one,
        else the code's message."""
        return self.detail or self.message

    @staticmethod
    def from_wire(code: int, message: str, data: Any = None) -> ConvdError:
        """The most specific error class for a wire error object."""
        cls = _BY_CODE.get(code, ConvdError)
        return cls(code, message, data)


class NotLoggedIn(ConvdError):
    """A ``conv.*`` call on a connection that is not logged in (6014)."""

    CODE = TIMErrCode.ERR_SDK_NOT_LOGGED_IN


class ConversationNotFound(ConvdError):
    """The conversation does not exist for the logged-in account (6004)."""

    CODE = TIMErrCode.ERR_INVALID_CONVERSATION


class InvalidParameters(ConvdError):
    """A parameter breaks an SDK rule (6017; for a draft: a non-text element 6016, text over
    the message body limit 8001), or does not match the method's schema (-32602). Also
    raised, with 6017, without asking the daemon for a string that is not valid Unicode."""

    CODE = TIMErrCode.ERR_INVALID_PARAMETERS


class InvalidIdentifier(ConvdError):
    """A user id (7003) or group id (8501) is not a valid identifier."""

    CODE = TIMErrCode.ERR_SDK_COMM_INVALID_IDENTIFIER


class PinLimitExceeded(ConvdError):
    """50 conversations are pinned already (90002)."""

    CODE = ConvdErrCode.PIN_LIMIT_EXCEEDED


class SubscriptionNotFound(ConvdError):
    """No such subscription on this connection (90004)."""

    CODE = ConvdErrCode.SUBSCRIPTION_NOT_FOUND


class RevisionConflict(ConvdError):
    """The draft is no longer at the revision the caller passed as ``if_revision`` (90001).

    Nothing was written. :attr:`current` is the conversation as it is now (with its current
    draft and ``conv_draft_revision``), or ``None`` when the conversation no longer exists.
    """

    CODE = ConvdErrCode.DRAFT_REVISION_CONFLICT

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        #: The conversation as stored now, or ``None`` if it does not exist.
        self.current: ConvInfo | None = None
        if data is not None:
            try:
                self.current = msgspec.convert(data, ConvInfo)
            except msgspec.ValidationError:
                self.current = None

    @property
    def current_revision(self) -> int:
        """The stored ``conv_draft_revision`` (0 when the conversation does not exist)."""
        return 0 if self.current is None else self.current.conv_draft_revision


class SeqTooOld(ConvdError):
    """A resume asked for changes the daemon no longer keeps (90003).

    :attr:`oldest_seq` and :attr:`current_seq` bound what can still be replayed.
    """

    CODE = ConvdErrCode.SEQ_TOO_OLD

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        fields = data if isinstance(data, dict) else {}
        self.oldest_seq: int | None = fields.get("oldest_seq")
        self.current_seq: int | None = fields.get("current_seq")


class BackupFailed(ConvdError):
    """``daemon.backup`` did not write the file (90005).

    :attr:`path` is the file and :attr:`errno` the OS error's symbolic name (e.g.
    ``"EEXIST"``), or None.
    """

    CODE = ConvdErrCode.BACKUP_FAILED

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        fields = data if isinstance(data, dict) else {}
        self.path: str | None = fields.get("path")
        self.errno: str | None = fields.get("errno")


class DraftVersionNotFound(ConvdError):
    """``conv.restore_draft`` named a revision the draft history does not hold (90006).

    :attr:`revision` is the revision asked for.
    """

    CODE = ConvdErrCode.DRAFT_VERSION_NOT_FOUND

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        fields = data if isinstance(data, dict) else {}
        self.revision: int | None = fields.get("revision")


_BY_CODE: dict[int, type[ConvdError]] = {
    int(TIMErrCode.ERR_SDK_NOT_LOGGED_IN): NotLoggedIn,
    int(TIMErrCode.ERR_INVALID_CONVERSATION): ConversationNotFound,
    int(TIMErrCode.ERR_INVALID_PARAMETERS): InvalidParameters,
    int(TIMErrCode.ERR_INVALID_MSG_ELEM): InvalidParameters,
    int(TIMErrCode.ERR_SDK_MSG_BODY_SIZE_LIMIT): InvalidParameters,
    int(JsonRpcErrCode.INVALID_PARAMS): InvalidParameters,
    int(TIMErrCode.ERR_SDK_COMM_INVALID_IDENTIFIER): InvalidIdentifier,
    int(TIMErrCode.ERR_SDK_GROUP_INVALID_ID): InvalidIdentifier,
    int(ConvdErrCode.PIN_LIMIT_EXCEEDED): PinLimitExceeded,
    int(ConvdErrCode.SUBSCRIPTION_NOT_FOUND): SubscriptionNotFound,
    int(ConvdErrCode.DRAFT_REVISION_CONFLICT): RevisionConflict,
    int(ConvdErrCode.SEQ_TOO_OLD): SeqTooOld,
    int(ConvdErrCode.BACKUP_FAILED): BackupFailed,
    int(ConvdErrCode.DRAFT_VERSION_NOT_FOUND): DraftVersionNotFound,
}


class DaemonUnavailable(ConvdClientError):
    """The daemon cannot be reached: nothing listens on the socket, or it is not connected now.

    Raised at once (never after a wait) by every call made while the client has no connection.

    :param socket_path: the socket path that was tried
    :param reason: why it failed (e.g. the ``OSError`` text)
    """

    #: The SDK callback code the C and V2 faces report for it (ERR_IO_OPERATION_FAILED).
    CODE: ClassVar[int] = TIMErrCode.ERR_IO_OPERATION_FAILED

    def __init__(self, socket_path: Path | str, reason: str = "") -> None:
        self.socket_path = Path(socket_path)
        self.reason = reason
        text = f"convd is not reachable at {self.socket_path}"
        super().__init__(f"{text}: {reason}" if reason else text)


class ConnectionLost(DaemonUnavailable):
    """The connection closed while the call was waiting for its response.

    The call may or may not have taken effect.
    """


class ClientClosed(ConvdClientError):
    """The client has been closed; it makes no more calls."""


class RequestTimeout(ConvdClientError, TimeoutError):
    """No response arrived within the call's timeout. The call may still take effect.

    :param method: the method called
    :param timeout: the timeout, in seconds
    """

    #: The SDK callback code the C and V2 faces report for it (ERR_REQUEST_TIMEOUT).
    CODE: ClassVar[int] = TIMErrCode.ERR_REQUEST_TIMEOUT

    def __init__(self, method: str, timeout: float) -> None:
        super().__init__(f"{method}: no response from convd within {timeout:g} s")
        self.method = method
        self.timeout = timeout


class ProtocolError(ConvdClientError):
    """The daemon sent something that is not valid for the protocol (e.g. an oversized line)."""
