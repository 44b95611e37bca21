"""JSON-RPC 2.0 message envelopes, as they travel one per line."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["ErrorObject", "Notification", "Request", "RequestId", "Response"]

#: JSON-RPC 2.0 allows a String, a Number (fractional parts discouraged, not forbidden) or
#: null; a reply echoes the request's id.
RequestId = int | float | str | None


class Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A call (with ``id``) or a notification (without)."""

    jsonrpc: Literal["2.0"]
    method: str
    params: dict[str, Any] | list[Any] | msgspec.UnsetType = msgspec.UNSET
    id: RequestId | msgspec.UnsetType = msgspec.UNSET


class ErrorObject(msgspec.Struct, kw_only=True):
    """The ``error`` member of a failed response."""

    code: int
    message: str
    data: Any = msgspec.UNSET


class Response(msgspec.Struct, kw_only=True):
    """A reply: exactly one of ``result`` and ``error`` is present."""

    jsonrpc: Literal["2.0"]
    id: RequestId
    result: Any = msgspec.UNSET
    error: ErrorObject | msgspec.UnsetType = msgspec.UNSET


class Notification(msgspec.Struct, kw_only=True):
    """A server-to-client notification (no ``id``)."""

    jsonrpc: Literal["2.0"]
    method: str
    params: Any
