"""convd's wire contract: every method's params and result, every notification and error code.

Shared by the daemon and the client library; ``openrpc.json`` beside this package is generated
from these types (``python -m convd_schemas.openrpc --write``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .enums import TIMConvEvent, TIMConvType, TIMElemType, TIMResult
from .envelope import ErrorObject, Notification, Request, RequestId, Response
from .errors import ERROR_TABLE, ConvdErrCode, ErrorInfo, JsonRpcErrCode, TIMErrCode
from .methods import (
    METHODS,
    NOTIFICATIONS,
    ConvCancelDraftParams,
    ConvEventAdd,
    ConvEventDel,
    ConvEventFinish,
    ConvEventParams,
    ConvEventStart,
    ConvEventUpdate,
    ConvGetParams,
    ConvKeyParams,
    ConvListParams,
    ConvListResult,
    ConvPinParams,
    ConvSetDraftParams,
    ConvSubscribeParams,
    ConvSubscribeResult,
    ConvUnsubscribeParams,
    DaemonBackupParams,
    DaemonBackupResult,
    DaemonStatus,
    EmptyParams,
    EmptyResult,
    MethodSpec,
    NotificationSpec,
    SessionLoginParams,
    SessionLoginResult,
    StoreStatus,
)
from .types import ConvInfo, ConvKey, Draft, DraftMessage, MessageElem

__all__ = [
    "ERROR_TABLE",
    "METHODS",
    "NOTIFICATIONS",
    "ConvCancelDraftParams",
    "ConvEventAdd",
    "ConvEventDel",
    "ConvEventFinish",
    "ConvEventParams",
    "ConvEventStart",
    "ConvEventUpdate",
    "ConvGetParams",
    "ConvInfo",
    "ConvKey",
    "ConvKeyParams",
    "ConvListParams",
    "ConvListResult",
    "ConvPinParams",
    "ConvSetDraftParams",
    "ConvSubscribeParams",
    "ConvSubscribeResult",
    "ConvUnsubscribeParams",
    "ConvdErrCode",
    "DaemonBackupParams",
    "DaemonBackupResult",
    "DaemonStatus",
    "Draft",
    "DraftMessage",
    "EmptyParams",
    "EmptyResult",
    "ErrorInfo",
    "ErrorObject",
    "JsonRpcErrCode",
    "MessageElem",
    "MethodSpec",
    "Notification",
    "NotificationSpec",
    "Request",
    "RequestId",
    "Response",
    "SessionLoginParams",
    "SessionLoginResult",
    "StoreStatus",
    "TIMConvEvent",
    "TIMConvType",
    "TIMElemType",
    "TIMErrCode",
    "TIMResult",
    "__version__",
]
