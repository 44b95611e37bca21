"""A package's names loaded on first use (PEP 562), for the packages on the daemon's start-up
path (``convd_schemas``, ``convd.store``): importing one costs nothing until a name is used."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__getattr__`` and ``__dir__``: a name of ``homes`` comes from its
    module (relative to ``package``) on first use and is then kept in the package; any other
    public name is tried as a submodule, which an eager import would have made an attribute
    too. Assign them under ``if not TYPE_CHECKING:``, with the names imported for type
    checkers, so that those still see an unknown name as an error."""

    def get(name: str) -> Any:
        module = sys.modules[package]
        home = homes.get(name)
        if home is not None:
            value = getattr(importlib.import_module(home, package), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}"):
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(module, name, value)  # once: later lookups find it directly
        return value

    def names() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return get, names
