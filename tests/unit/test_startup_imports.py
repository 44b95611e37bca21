"""The daemon's start-up path imports only what accepting the first connection needs.

Start-up time is measured by ``bench/run.py --scenario startup``; this test keeps the modules
made lazy for it (issue 10, section 3.1) from being imported again by accident.
"""

from __future__ import annotations

import subprocess
import sys

#: Imported only when their feature is used: the named pipe (Windows), ctypes (BSD peer
#: credentials; malloc's thresholds, set once the daemon accepts), tempfile (the socket
#: fallback directory), secrets (backup and restore), sysconfig (install-units), hashlib (a
#: resuming sync), and jsonrpcserver (loaded on a thread once the daemon accepts).
LAZY = (
    "convd_schemas.winpipe",
    "convd.transport.pipe",
    "ctypes",
    "tempfile",
    "secrets",
    "sysconfig",
    "hashlib",
    "jsonrpcserver",
)


def _imported(imports: str, names: tuple[str, ...]) -> str:
    """Which of ``names`` a fresh interpreter has imported after ``import {imports}``."""
    program = (
        f"import sys, {imports}\nprint(sorted(name for name in {names!r} if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_the_startup_path_leaves_the_lazy_modules_unimported() -> None:
    assert _imported("convd.cli, convd.app", LAZY) == "[]"


#: What ``convd serve`` imports only after it has started the database's check
#: (store.StartedCheck), so that the check runs beside those imports: msgspec and the wire
#: contract too (~30 ms, convd_schemas loads its names on first use), and with them the
#: daemon's Config.
AFTER_THE_CHECK = (
    "anyio",
    "asyncio",
    "aiosqlite",
    "convd.app",
    "convd.rpc",
    "convd.store.sqlite",
    "msgspec",
    "convd_schemas.methods",
    "convd.config",
)


def test_the_contract_loads_its_names_on_first_use() -> None:
    program = (
        "import sys, convd_schemas\n"
        "assert 'msgspec' not in sys.modules and convd_schemas.__version__\n"
        "info = convd_schemas.ConvInfo\n"
        "assert 'msgspec' in sys.modules and info is sys.modules['convd_schemas.types'].ConvInfo\n"
        "assert set(convd_schemas._HOMES) | {'__version__'} == set(convd_schemas.__all__)\n"
        "assert all(getattr(convd_schemas, name) is not None for name in convd_schemas.__all__)\n"
        # A submodule is an attribute after a plain import, as the eager imports made it.
        "assert convd_schemas.limits is sys.modules['convd_schemas.limits']\n"
        "try:\n    convd_schemas.no_such_name\nexcept AttributeError:\n    pass\n"
        "else:\n    raise AssertionError('an unknown name resolved')\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True)


def test_the_command_line_starts_the_database_check_before_the_heavy_imports() -> None:
    assert _imported("convd.cli, convd.store.opening", AFTER_THE_CHECK) == "[]"
