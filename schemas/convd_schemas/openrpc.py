"""Generates the OpenRPC 1.x document from the wire types, and checks the committed copy.

``python -m convd_schemas.openrpc --write`` regenerates ``schemas/openrpc.json``;
``--check`` exits 1 when the committed copy is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from . import __version__
from .errors import ERROR_TABLE
from .methods import METHODS, NOTIFICATIONS
from .types import ConvInfo, ConvKey, Draft

__all__ = ["COMMITTED_PATH", "build_openrpc", "render_openrpc"]

OPENRPC_VERSION = "1.3.2"
COMMITTED_PATH = Path(__file__).resolve().parent.parent / "openrpc.json"
_REF = "#/components/schemas/{name}"


def _param_descriptors(params: type[msgspec.Struct], schemas: dict[str, Any]) -> list[Any]:
    # Each struct field becomes one by-name content descriptor; required ones come first,
    # as OpenRPC asks.
    component = schemas[params.__name__]
    properties: dict[str, Any] = component.get("properties", {})
    required = set(component.get("required", []))
    descriptors = [
        {
            "name": name,
            "required": name in required,
            "schema": schema,
            **({"description": schema["description"]} if "description" in schema else {}),
        }
        for name, schema in properties.items()
    ]
    descriptors.sort(key=lambda d: not d["required"])
    return descriptors


def build_openrpc() -> dict[str, Any]:
    """Build the OpenRPC document describing every method, error and notification."""
    types: list[Any] = [ConvInfo, ConvKey, Draft]
    for spec in METHODS:
        types.extend((spec.params, spec.result))
    types.extend(n.params for n in NOTIFICATIONS)
    refs, schemas = msgspec.json.schema_components(types, ref_template=_REF)
    result_refs = dict(zip(map(id, types), refs, strict=True))

    methods = []
    for spec in METHODS:
        method: dict[str, Any] = {
            "name": spec.name,
            "summary": spec.summary,
            "paramStructure": "by-name",
            "params": _param_descriptors(spec.params, schemas),
            "result": {"name": "result", "schema": result_refs[id(spec.result)]},
        }
        if spec.params.__doc__:
            method["description"] = spec.params.__doc__.strip()
        if spec.errors:
            method["errors"] = [
                {"$ref": f"#/components/errors/E{code}"} for code in dict.fromkeys(spec.errors)
            ]
        if spec.requires_login:
            method["x-requires-login"] = True
        methods.append(method)

    errors = {
        f"E{info.code}": {"code": info.code, "message": info.message, "data": info.description}
        for info in ERROR_TABLE.values()
    }
    document = {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "convd",
            "version": __version__,
            "description": (
                "Conversations and drafts of the Tencent Cloud IM SDK's conversation API, served "
                "as JSON-RPC 2.0 over a Unix socket, one compact JSON text per line."
            ),
        },
        "methods": methods,
        "components": {"schemas": schemas, "errors": errors},
        "x-notifications": [
            {
                "name": n.name,
                "summary": n.summary,
                "params": result_refs[id(n.params)],
            }
            for n in NOTIFICATIONS
        ],
    }
    # JSON objects have string keys: the tagged event union's discriminator mapping is keyed
    # by the (integer) TIMConvEvent; one round trip through JSON spells the keys as strings.
    normalized: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(document))
    return normalized


def render_openrpc() -> bytes:
    """The document as committed: indented, key-sorted JSON with a trailing newline."""
    doc = msgspec.json.encode(build_openrpc(), order="sorted")
    return msgspec.json.format(doc, indent=2) + b"\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convd_schemas.openrpc")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help=f"write {COMMITTED_PATH}")
    group.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    rendered = render_openrpc()
    if args.write:
        COMMITTED_PATH.write_bytes(rendered)
        return 0
    if not COMMITTED_PATH.exists() or COMMITTED_PATH.read_bytes() != rendered:
        sys.stderr.write(
            f"{COMMITTED_PATH} is stale: run `python -m convd_schemas.openrpc --write`\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
