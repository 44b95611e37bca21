"""The contract's methods as the client calls them: one :class:`Rpc` handle per ``MethodSpec``.

Each handle looks its ``MethodSpec`` up in ``convd_schemas.METHODS`` by name and decodes the
result with a decoder built from ``spec.result``; the params and result types it is declared
with (which give the client's typed methods their static types) are checked against the
spec when this module is imported, so the client cannot drift from the contract unnoticed.

A new method of the contract needs one handle here (naming the :class:`~convd_client.Client`
method that calls it) and that method; ``tests/client/test_contract.py`` fails until both
exist.
"""

from __future__ import annotations

from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from convd_schemas import (
    METHODS,
    ConvCancelDraftParams,
    ConvDeleteManyParams,
    ConvDraftHistoryParams,
    ConvDraftHistoryResult,
    ConvGetParams,
    ConvGroupAddParams,
    ConvGroupCreateParams,
    ConvGroupDeleteParams,
    ConvGroupRemoveParams,
    ConvGroupRenameParams,
    ConvInfo,
    ConvKeyParams,
    ConvListByFilterParams,
    ConvListParams,
    ConvListResult,
    ConvMarkParams,
    ConvOperationResult,
    ConvPinParams,
    ConvRestoreDraftParams,
    ConvSetCustomDataParams,
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
    SessionLoginParams,
    SessionLoginResult,
)

from ._connection import Connection
from .errors import ProtocolError

__all__ = [
    "CLIENT_METHODS",
    "CONV_CANCEL_DRAFT",
    "CONV_CREATE",
    "CONV_DELETE",
    "CONV_DELETE_MANY",
    "CONV_DRAFT_HISTORY",
    "CONV_GET",
    "CONV_GROUP_ADD",
    "CONV_GROUP_CREATE",
    "CONV_GROUP_DELETE",
    "CONV_GROUP_LIST",
    "CONV_GROUP_REMOVE",
    "CONV_GROUP_RENAME",
    "CONV_LIST",
    "CONV_LIST_BY_FILTER",
    "CONV_MARK",
    "CONV_PIN",
    "CONV_RESTORE_DRAFT",
    "CONV_SET_CUSTOM_DATA",
    "CONV_SET_DRAFT",
    "CONV_SUBSCRIBE",
    "CONV_UNSUBSCRIBE",
    "DAEMON_BACKUP",
    "DAEMON_STATUS",
    "RPC_DISCOVER",
    "SESSION_LOGIN",
    "SESSION_LOGOUT",
    "Rpc",
    "call_any",
    "call_on",
    "list_all_on",
]

P = TypeVar("P", bound=msgspec.Struct)
R = TypeVar("R")

_SPECS: dict[str, MethodSpec] = {spec.name: spec for spec in METHODS}
_HANDLES: dict[str, Rpc[Any, Any]] = {}


class Rpc(Generic[P, R]):
    """One method of the contract: its spec, the client method that calls it, its decoder.

    :param name: the method's name in ``convd_schemas.METHODS``
    :param params: the spec's params type (checked)
    :param result: the spec's result type (checked)
    :param client_method: the :class:`~convd_client.Client` coroutine that calls it
    :raises LookupError: the contract has no method of that name
    :raises TypeError: the contract's params or result type differ
    """

    __slots__ = ("_decoder", "client_method", "name", "spec")

    def __init__(self, name: str, params: type[P], result: type[R], *, client_method: str) -> None:
        spec = _SPECS.get(name)
        if spec is None:
            raise LookupError(f"{name!r} is not a method of the contract (convd_schemas.METHODS)")
        if spec.params is not params:
            raise TypeError(f"{name}: the contract's params are {spec.params!r}, not {params!r}")
        if spec.result != result:
            raise TypeError(f"{name}: the contract's result is {spec.result!r}, not {result!r}")
        if name in _HANDLES:
            raise ValueError(f"{name}: a second client handle")
        self.name = name
        self.spec = spec
        self.client_method = client_method
        # Built from the contract's own result type, once per method.
        self._decoder: msgspec.json.Decoder[R] = msgspec.json.Decoder(spec.result)
        _HANDLES[name] = self

    def decode(self, raw: msgspec.Raw) -> R:
        """The result, decoded and validated as the contract says.

        :raises ProtocolError: the daemon's result does not match the contract
        """
        try:
            return self._decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"{self.name}: unexpected result from convd: {exc}") from exc

    def __repr__(self) -> str:
        return f"Rpc({self.name!r})"


SESSION_LOGIN = Rpc("session.login", SessionLoginParams, SessionLoginResult, client_method="login")
SESSION_LOGOUT = Rpc("session.logout", EmptyParams, EmptyResult, client_method="logout")
CONV_CREATE = Rpc("conv.create", ConvKeyParams, ConvInfo, client_method="conv_create")
CONV_DELETE = Rpc("conv.delete", ConvKeyParams, EmptyResult, client_method="conv_delete")
CONV_LIST = Rpc("conv.list", ConvListParams, ConvListResult, client_method="conv_list")
CONV_GET = Rpc("conv.get", ConvGetParams, list[ConvInfo], client_method="conv_get")
CONV_SET_DRAFT = Rpc("conv.set_draft", ConvSetDraftParams, ConvInfo, client_method="conv_set_draft")
CONV_CANCEL_DRAFT = Rpc(
    "conv.cancel_draft", ConvCancelDraftParams, ConvInfo, client_method="conv_cancel_draft"
)
CONV_PIN = Rpc("conv.pin", ConvPinParams, EmptyResult, client_method="conv_pin")
CONV_DELETE_MANY = Rpc(
    "conv.delete_many",
    ConvDeleteManyParams,
    list[ConvOperationResult],
    client_method="conv_delete_many",
)
CONV_SET_CUSTOM_DATA = Rpc(
    "conv.set_custom_data",
    ConvSetCustomDataParams,
    list[ConvOperationResult],
    client_method="conv_set_custom_data",
)
CONV_DRAFT_HISTORY = Rpc(
    "conv.draft_history",
    ConvDraftHistoryParams,
    ConvDraftHistoryResult,
    client_method="conv_draft_history",
)
CONV_RESTORE_DRAFT = Rpc(
    "conv.restore_draft", ConvRestoreDraftParams, ConvInfo, client_method="conv_restore_draft"
)
CONV_MARK = Rpc("conv.mark", ConvMarkParams, list[ConvOperationResult], client_method="conv_mark")
CONV_LIST_BY_FILTER = Rpc(
    "conv.list_by_filter",
    ConvListByFilterParams,
    ConvListResult,
    client_method="conv_list_by_filter",
)
CONV_GROUP_CREATE = Rpc(
    "conv.group_create",
    ConvGroupCreateParams,
    list[ConvOperationResult],
    client_method="conv_group_create",
)
CONV_GROUP_LIST = Rpc("conv.group_list", EmptyParams, list[str], client_method="conv_group_list")
CONV_GROUP_DELETE = Rpc(
    "conv.group_delete", ConvGroupDeleteParams, EmptyResult, client_method="conv_group_delete"
)
CONV_GROUP_RENAME = Rpc(
    "conv.group_rename", ConvGroupRenameParams, EmptyResult, client_method="conv_group_rename"
)
CONV_GROUP_ADD = Rpc(
    "conv.group_add",
    ConvGroupAddParams,
    list[ConvOperationResult],
    client_method="conv_group_add",
)
CONV_GROUP_REMOVE = Rpc(
    "conv.group_remove",
    ConvGroupRemoveParams,
    list[ConvOperationResult],
    client_method="conv_group_remove",
)
CONV_SUBSCRIBE = Rpc(
    "conv.subscribe", ConvSubscribeParams, ConvSubscribeResult, client_method="subscribe"
)
CONV_UNSUBSCRIBE = Rpc(
    "conv.unsubscribe", ConvUnsubscribeParams, EmptyResult, client_method="unsubscribe"
)
DAEMON_STATUS = Rpc("daemon.status", EmptyParams, DaemonStatus, client_method="daemon_status")
DAEMON_BACKUP = Rpc(
    "daemon.backup", DaemonBackupParams, DaemonBackupResult, client_method="daemon_backup"
)
RPC_DISCOVER = Rpc("rpc.discover", EmptyParams, dict[str, Any], client_method="discover")

#: Every contract method the client has a handle for -> the Client coroutine that calls it.
CLIENT_METHODS: dict[str, str] = {name: rpc.client_method for name, rpc in _HANDLES.items()}

_ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


async def call_on(conn: Connection, rpc: Rpc[P, R], params: P, timeout: float) -> R:
    """Call ``rpc`` on ``conn`` and return its decoded result."""
    return rpc.decode(await conn.call(rpc.name, params, timeout=timeout))


async def call_any(conn: Connection, method: str, params: Any, timeout: float) -> Any:
    """Call any method by name; its result as plain JSON values."""
    raw = await conn.call(method, params, timeout=timeout)
    try:
        return _ANY.decode(raw)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"{method}: unexpected result from convd: {exc}") from exc


#: How many times :func:`list_all_on` may read the top of the list again after its pages.
LIST_ALL_REREADS = 5

_ConvKey = tuple[str, int]


class _PagesRead(NamedTuple):
    #: How many pages were read.
    read: int
    #: A conversation was new to what had been read before, or had moved.
    moved: bool


async def list_all_on(conn: Connection, page_size: int, timeout: float) -> list[ConvInfo]:
    """The whole conversation list, paging through ``conv.list`` (each conversation once, in
    list order: pinned first, then most recently activated first).

    The pages are read by cursor, so a conversation that moves above the cursor while they
    are read (a draft set activates it, a pin moves it among the pinned) is not on them, and
    one that moves below it is read twice. So after the last page the top of the list is
    read again (every pinned conversation, at most 50, then the others down to the first one
    still where it was read), again while that finds a conversation moved, at most
    :data:`LIST_ALL_REREADS` times; a later copy of a conversation replaces an earlier one.
    So a conversation that existed for the whole call is listed, unless the list kept moving
    through every re-read. A copy is as it was when last read: a change that does not move a
    conversation up (a draft cleared, an unpin) may be missed, as it may be by any read of a
    list that others change meanwhile; the events say what changed. A list that fits on one
    page is read once.
    """
    found: dict[_ConvKey, ConvInfo] = {}
    pages = await _read_list(conn, page_size, timeout, found, to_unmoved=False)
    if pages.read == 1:
        return list(found.values())
    for _ in range(LIST_ALL_REREADS):
        pages = await _read_list(conn, page_size, timeout, found, to_unmoved=True)
        if not pages.moved:
            break
    # conv_active_time is the list's order key (with the pinned bit): the moved ones in place.
    return sorted(found.values(), key=lambda conv: conv.conv_active_time, reverse=True)


async def _read_list(
    conn: Connection,
    page_size: int,
    timeout: float,
    found: dict[_ConvKey, ConvInfo],
    *,
    to_unmoved: bool,
) -> _PagesRead:
    """Read ``conv.list`` pages from the top into ``found`` (later copies replace earlier
    ones): to the end, or with ``to_unmoved`` only to the page holding the first unpinned
    conversation still where ``found`` has it."""
    moved = False
    read = 0
    next_seq = 0
    while True:
        params = ConvListParams(next_seq=next_seq, count=page_size)
        page = await call_on(conn, CONV_LIST, params, timeout)
        read += 1
        reached_unmoved = False
        for conv in page.conversation_list_result_conv_list:
            key = (conv.conv_id, int(conv.conv_type))
            known = found.get(key)
            if known is None or known.conv_active_time != conv.conv_active_time:
                moved = True
            elif not conv.conv_is_pinned:
                # Whatever moved up since it was read is above it: activating gives a
                # conversation the newest order key, pinning puts it among the pinned.
                reached_unmoved = True
            found[key] = conv
        if page.conversation_list_result_is_finished or (to_unmoved and reached_unmoved):
            return _PagesRead(read, moved)
        next_seq = page.conversation_list_result_next_seq
