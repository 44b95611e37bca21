"""The contract's method table is the one source: the daemon's handlers, and the README's
method table, must name exactly the methods of ``convd_schemas.METHODS``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from convd.domain import ConversationService, EventBus
from convd.rpc.handlers import Methods
from convd_schemas import METHODS
from support import fixed_status

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_methods() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Methods\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", section, flags=re.MULTILINE)


def test_the_readme_method_table_lists_exactly_the_contracts_methods() -> None:
    assert sorted(_readme_methods()) == sorted(spec.name for spec in METHODS)


def test_the_handlers_bind_exactly_the_contracts_methods() -> None:
    methods = Methods(ConversationService(None, EventBus()), fixed_status, {})  # type: ignore[arg-type]
    assert set(methods.table()) == {spec.name for spec in METHODS}
    assert Methods.writes() == {spec.name for spec in METHODS if spec.writes}


def test_a_contract_method_without_a_handler_stops_the_daemon_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import convd.rpc.handlers as handlers
    from convd_schemas import EmptyParams, EmptyResult, MethodSpec

    extra = MethodSpec(name="conv.mark_read", summary="x", params=EmptyParams, result=EmptyResult)
    monkeypatch.setattr(handlers, "METHODS", (*METHODS, extra))
    methods = Methods(ConversationService(None, EventBus()), fixed_status, {})  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"conv\.mark_read"):
        methods.table()
