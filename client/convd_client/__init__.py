"""convd_client: the client library of convd, the IM conversation and draft daemon.

One async core and two SDK faces over it:

* :class:`Client` (async, anyio) and :class:`BlockingClient` (for code that is not async):
  one typed method per JSON-RPC method, per-call timeouts, events, and automatic
  reconnection that logs in again and resumes the events where they stopped;
* :mod:`convd_client.tim`: the SDK's C-style API (``TIMInit``, ``TIMLogin``,
  ``TIMConvSetDraft``, ``TIMSetConvEventCallback``, ...), JSON strings in and out;
* :mod:`convd_client.v2`: the SDK's V2 API (``V2TIMManager``,
  ``V2TIMConversationManager``, ``V2TIMConversation``, listeners and callbacks).

The daemon is found at ``$CONVD_SOCKET``, else at the per-user default path
(``$XDG_RUNTIME_DIR/convd/convd.sock``, or ``${TMPDIR:-/tmp}/convd-$UID/convd.sock`` when
``XDG_RUNTIME_DIR`` is unset). Callbacks and listeners run on a daemon thread; one that raises
is reported and, by default, interrupts the main thread (:func:`set_callback_error_handler`).
The wire types (``ConvInfo``, ``Draft``, ...) are
``convd_schemas``'s and are re-exported here. The ``convctl`` command is
:mod:`convd_client.cli`.

What this package exports below is its public API; the modules starting with ``_`` are not.
Inside, :class:`Client` is a typed facade over ``_supervisor`` (connecting, the uid check,
backoff, the connection state), ``_feed`` (subscribe, resume, resync, listeners), ``_rpc``
(each method's ``MethodSpec`` from ``convd_schemas.METHODS`` and its result decoder) and
``_connection`` (one JSON-RPC connection over a byte stream); :class:`BlockingClient` derives
its methods from Client's.
"""

from __future__ import annotations

from convd_schemas import (
    ConvInfo,
    ConvKey,
    ConvListFilter,
    ConvListResult,
    ConvOperationResult,
    ConvSubscribeResult,
    DaemonBackupResult,
    DaemonStatus,
    Draft,
    DraftMessage,
    MessageElem,
    SessionLoginResult,
    TIMConvEvent,
    TIMConvType,
    TIMElemType,
    TIMResult,
    __version__,
)

from ._threads import CallbackErrorHandler, set_callback_error_handler
from .blocking import BlockingClient
from .client import (
    DEFAULT_TIMEOUT,
    Client,
    ConnectionState,
    Connector,
    ConvEvent,
    EventListener,
    GroupEvent,
    GroupEventListener,
    Resync,
    ResyncListener,
    StateListener,
    connect,
)
from .drafts import draft_text, text_draft
from .errors import (
    BackupFailed,
    ClientClosed,
    ConnectionLost,
    ConvdClientError,
    ConvdError,
    ConversationNotFound,
    DaemonUnavailable,
    DraftVersionNotFound,
    InvalidIdentifier,
    InvalidParameters,
    NotLoggedIn,
    PinLimitExceeded,
    ProtocolError,
    RequestTimeout,
    RevisionConflict,
    SeqTooOld,
    SubscriptionNotFound,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "BackupFailed",
    "BlockingClient",
    "CallbackErrorHandler",
    "Client",
    "ClientClosed",
    "ConnectionLost",
    "ConnectionState",
    "Connector",
    "ConvEvent",
    "ConvInfo",
    "ConvKey",
    "ConvListFilter",
    "ConvListResult",
    "ConvOperationResult",
    "ConvSubscribeResult",
    "ConvdClientError",
    "ConvdError",
    "ConversationNotFound",
    "DaemonBackupResult",
    "DaemonStatus",
    "DaemonUnavailable",
    "Draft",
    "DraftMessage",
    "DraftVersionNotFound",
    "EventListener",
    "GroupEvent",
    "GroupEventListener",
    "InvalidIdentifier",
    "InvalidParameters",
    "MessageElem",
    "NotLoggedIn",
    "PinLimitExceeded",
    "ProtocolError",
    "RequestTimeout",
    "Resync",
    "ResyncListener",
    "RevisionConflict",
    "SeqTooOld",
    "SessionLoginResult",
    "StateListener",
    "SubscriptionNotFound",
    "TIMConvEvent",
    "TIMConvType",
    "TIMElemType",
    "TIMResult",
    "__version__",
    "connect",
    "draft_text",
    "set_callback_error_handler",
    "text_draft",
]
