"""The client follows the contract: one typed coroutine per MethodSpec (and no other), each
result decoded as the spec says, and error codes only from the contract's enums."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable
from pathlib import Path

import msgspec
import pytest

import convd_client
from convd_client import Client, ProtocolError, RequestTimeout
from convd_client._rpc import CLIENT_METHODS, CONV_GET, SESSION_LOGIN, Rpc
from convd_schemas import (
    METHODS,
    ConvdErrCode,
    ConvInfo,
    ConvKeyParams,
    EmptyParams,
    EmptyResult,
    JsonRpcErrCode,
    MethodSpec,
    SessionLoginResult,
    TIMErrCode,
)

#: Client coroutines that are not one contract method: helpers over them, and the raw call.
HELPERS = {"conv_list_all", "wait_connected", "call"}


def mismatches(methods: Iterable[MethodSpec], client: type) -> list[str]:
    """Every way the client's methods and the contract's disagree."""
    names = {spec.name for spec in methods}
    problems = [
        f"{name}: in the contract, but no client handle in convd_client._rpc"
        for name in sorted(names - set(CLIENT_METHODS))
    ]
    problems += [
        f"{name}: a client handle, but not in the contract"
        for name in sorted(set(CLIENT_METHODS) - names)
    ]
    for name, method in sorted(CLIENT_METHODS.items()):
        if not inspect.iscoroutinefunction(getattr(client, method, None)):
            problems.append(f"{name}: no coroutine {client.__name__}.{method}")
    coroutines = {
        attr
        for attr, value in vars(client).items()
        if not attr.startswith("_") and inspect.iscoroutinefunction(value)
    }
    problems += [
        f"{client.__name__}.{method}: calls no method of the contract"
        for method in sorted(coroutines - set(CLIENT_METHODS.values()) - HELPERS)
    ]
    return problems


def test_every_method_of_the_contract_has_a_client_method_and_vice_versa() -> None:
    assert mismatches(METHODS, Client) == []


def test_a_method_added_to_the_contract_alone_is_reported() -> None:
    added = MethodSpec(name="conv.mark_read", summary="x", params=ConvKeyParams, result=EmptyResult)
    assert mismatches((*METHODS, added), Client) == [
        "conv.mark_read: in the contract, but no client handle in convd_client._rpc"
    ]

    class Extra(Client):
        async def conv_mark_read(self) -> None:
            """Not bound to the contract."""

    assert mismatches(METHODS, Extra) == ["Extra.conv_mark_read: calls no method of the contract"]


def test_handles_take_their_spec_and_decoder_from_the_contract() -> None:
    specs = {spec.name: spec for spec in METHODS}
    assert CONV_GET.spec is specs["conv.get"]
    assert CONV_GET.decode(msgspec.Raw(b"[]")) == []
    with pytest.raises(ProtocolError, match=r"conv\.get: unexpected result"):
        CONV_GET.decode(msgspec.Raw(b'[{"conv_id": "bob"}]'))
    # The result is validated as the spec says, not merely parsed.
    with pytest.raises(ProtocolError, match=r"session\.login: unexpected result"):
        SESSION_LOGIN.decode(msgspec.Raw(b'{"user_id": "alice"}'))
    assert SESSION_LOGIN.decode(
        msgspec.Raw(b'{"user_id": "alice", "sdk_app_id": 7}')
    ) == SessionLoginResult(user_id="alice", sdk_app_id=7)


def test_a_handle_that_disagrees_with_the_contract_is_refused() -> None:
    with pytest.raises(LookupError, match=r"conv\.mark_read"):
        Rpc("conv.mark_read", ConvKeyParams, EmptyResult, client_method="conv_mark_read")
    with pytest.raises(TypeError, match=r"conv\.create: the contract's result"):
        Rpc("conv.create", ConvKeyParams, EmptyResult, client_method="conv_create")
    with pytest.raises(TypeError, match=r"conv\.create: the contract's params"):
        Rpc("conv.create", EmptyParams, ConvInfo, client_method="conv_create")
    with pytest.raises(ValueError, match="second client handle"):
        Rpc("conv.create", ConvKeyParams, ConvInfo, client_method="conv_create")


def _literal_codes(source: str) -> list[tuple[int, int]]:
    codes = {
        abs(int(member))
        for family in (TIMErrCode, ConvdErrCode, JsonRpcErrCode)
        for member in family
        if int(member)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) in codes
    ]


_NOT_YET: set[str] = set()


def test_the_client_names_error_codes_only_through_the_contracts_enums() -> None:
    assert _literal_codes("x = ConvdError(6004, 'no')\ny = -32602\nz = 3") == [
        (1, 6004),
        (2, 32602),
    ]
    package = Path(convd_client.__file__).parent
    found = {
        path.name: codes
        for path in sorted(package.glob("*.py"))
        if path.name not in _NOT_YET and (codes := _literal_codes(path.read_text()))
    }
    assert found == {}
    assert RequestTimeout.CODE is TIMErrCode.ERR_REQUEST_TIMEOUT
