"""The systemd user units, and ``convd install-units`` that writes them for this install.

``systemd/`` in the source tree holds the same units rendered for a convd in
``~/.local/bin`` (where ``pipx`` puts it); a test keeps the two in step.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path
from typing import Final

__all__ = [
    "SERVICE_NAME",
    "SOCKET_NAME",
    "convd_command",
    "default_unit_dir",
    "render_units",
    "write_units",
]

SOCKET_NAME: Final = "convd.socket"
SERVICE_NAME: Final = "convd.service"

_SOCKET_UNIT: Final = """\
# convd's socket, for the systemd user manager. Enable this unit, not convd.service:
#   systemctl --user enable --now convd.socket
# systemd then owns the socket file, and starts convd.service on the first connection.

[Unit]
Description=convd socket (IM conversations and drafts over JSON-RPC)

[Socket]
# %t is $XDG_RUNTIME_DIR (/run/user/UID): the default path convd and convctl use.
ListenStream=%t/convd/convd.sock
# Only the user: a private directory and a private socket (systemd's defaults are 0755/0666).
# convd also checks every peer's uid and closes connections from anyone else.
SocketMode=0600
DirectoryMode=0700
# convd picks its socket by this name from LISTEN_FDNAMES.
FileDescriptorName=convd
Accept=no
# Clients see ENOENT, not ECONNREFUSED, once the socket is stopped.
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
"""

_SERVICE_UNIT: Final = """\
# convd, started by convd.socket on the first connection. Do not enable this unit; enable
# convd.socket. `convd install-units` writes this file with ExecStart naming the convd that
# ran it; to change the options, override it:
#   systemctl --user edit convd.service
#     [Service]
#     ExecStart=
#     ExecStart=/path/to/convd serve --durability everysec

[Unit]
Description=convd: IM conversations and drafts over JSON-RPC
# Started only through its socket, never on its own (a manual start would bind elsewhere).
Requires=convd.socket
After=convd.socket

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start} serve
# Stops on SIGTERM: in-flight requests finish (up to 10 s), then the database is closed.
TimeoutStopSec=30
Restart=on-failure
RestartSec=1
# convd sends WATCHDOG=1 every WatchdogSec/2; a daemon whose event loop hangs is restarted.
# Remove (or set WatchdogSec=0 in an override) to turn it off.
WatchdogSec=30

# Sandboxing that needs no user namespaces, so it works in every user manager. The database
# ($XDG_DATA_HOME/convd) and backups go wherever the user says, so the file system is left
# writable: ProtectSystem=/ProtectHome= would need them listed (and user namespaces).
UMask=0077
NoNewPrivileges=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
RestrictAddressFamilies=AF_UNIX
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
# ... but for the two calls of convd's thread placement (--same-cpu, the default): pinning its
# own threads to one CPU and making them SCHED_BATCH while writes queue up (RestrictRealtime=
# still refuses realtime policies).
SystemCallFilter=sched_setaffinity sched_setscheduler
SystemCallErrorNumber=EPERM
"""


def _quote(word: str) -> str:
    """One word of a unit's command line: ``%`` escaped, quoted if it has blanks or quotes."""
    word = word.replace("%", "%%")
    if any(ch in word for ch in " \t\"'\\"):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def convd_command() -> str:
    """How systemd is to run this convd: the ``convd`` script installed beside this
    interpreter (a virtualenv's, pipx's or ``pip install --user``'s), else ``python -m convd``.
    """
    for scheme in (None, f"{os.name}_user"):
        scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        candidate = Path(scripts) / "convd"
        if os.access(candidate, os.X_OK) and candidate.is_file():
            return _quote(str(candidate.absolute()))
    beside = Path(sys.executable).parent / "convd"
    if os.access(beside, os.X_OK) and beside.is_file():
        return _quote(str(beside.absolute()))
    return f"{_quote(str(Path(sys.executable).absolute()))} -m convd"


def default_unit_dir() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/systemd/user``)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def render_units(exec_start: str) -> dict[str, str]:
    """The two units, their file names as keys; ``exec_start`` runs convd (without ``serve``)."""
    return {
        SOCKET_NAME: _SOCKET_UNIT,
        SERVICE_NAME: _SERVICE_UNIT.replace("{exec_start}", exec_start),
    }


def write_units(directory: Path, exec_start: str) -> list[Path]:
    """Write (or replace) both units in ``directory``; each file appears whole or not at all."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_units(exec_start).items():
        target = directory / name
        temporary = directory / f".{name}.tmp-{os.getpid()}"
        temporary.write_text(text)
        os.chmod(temporary, 0o644)  # a unit holds no secret; systemd-analyze expects it readable
        os.replace(temporary, target)
        written.append(target)
    return written
