"""The committed OpenRPC document matches the wire types, and the daemon serves it."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from convd_schemas import ERROR_TABLE, METHODS, NOTIFICATIONS
from convd_schemas.openrpc import COMMITTED_PATH, build_openrpc, render_openrpc
from support import DaemonProcess


def _committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(COMMITTED_PATH.read_bytes())
    return document


def test_committed_document_is_current() -> None:
    assert COMMITTED_PATH.read_bytes() == render_openrpc(), (
        "schemas/openrpc.json is stale: run `python -m convd_schemas.openrpc --write`"
    )


def test_render_is_the_built_document() -> None:
    assert json.loads(render_openrpc()) == build_openrpc()


def test_document_has_every_method_once() -> None:
    document = _committed()
    names = [m["name"] for m in document["methods"]]
    assert names == [spec.name for spec in METHODS]
    assert len(set(names)) == len(names)
    assert [n["name"] for n in document["x-notifications"]] == [n.name for n in NOTIFICATIONS]


def test_every_method_describes_its_params_result_and_errors() -> None:
    document = _committed()
    schemas = document["components"]["schemas"]
    errors = document["components"]["errors"]
    by_name = {m["name"]: m for m in document["methods"]}
    for spec in METHODS:
        method = by_name[spec.name]
        assert method["paramStructure"] == "by-name"
        fields = {f.encode_name: f for f in msgspec.structs.fields(spec.params)}
        params = {p["name"]: p for p in method["params"]}
        assert set(params) == set(fields), spec.name
        for name, field in fields.items():
            required = field.required
            assert params[name]["required"] is required, (spec.name, name)
        assert "schema" in method["result"]
        assert method.get("x-requires-login", False) is spec.requires_login
        referenced = [e["$ref"].rsplit("/", 1)[-1] for e in method.get("errors", [])]
        assert referenced == [f"E{code}" for code in dict.fromkeys(spec.errors)]
        assert all(ref in errors for ref in referenced)
    for ref in _refs(document):
        assert ref.startswith("#/components/")
        section, name = ref.split("/")[2:4]
        assert name in document["components"][section], ref
    assert {e["code"] for e in errors.values()} == set(ERROR_TABLE)
    assert "ConvInfo" in schemas


def test_every_conv_method_requires_login() -> None:
    for spec in METHODS:
        assert spec.requires_login is spec.name.startswith("conv."), spec.name


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for value in node.values():
            found += _refs(value)
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_rpc_discover_serves_the_committed_document(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        assert client.call("rpc.discover") == _committed()
        assert client.call("rpc.discover", {}) == _committed()
        assert client.error("rpc.discover", {"x": 1})["code"] == -32602


def test_events_describe_the_conversations_they_carry() -> None:
    """conv.event's conv_array is typed in the contract, not a list of free-form objects: a
    client generated from the document knows each entry's fields."""
    schemas = _committed()["components"]["schemas"]
    item_types = {
        name: schemas[name]["properties"]["conv_array"]["items"]["$ref"].rsplit("/", 1)[1]
        for name in ("ConvEventAdd", "ConvEventUpdate", "ConvEventDel")
    }
    assert item_types == {
        "ConvEventAdd": "ConvInfo",
        "ConvEventUpdate": "ConvInfo",
        "ConvEventDel": "ConvKey",
    }
    assert "conv_id" in schemas["ConvInfo"]["properties"]
    assert "conv_draft" in schemas["ConvInfo"]["properties"]
