"""The README's shell session runs against a real daemon and prints exactly what it shows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import DaemonProcess

README = Path(__file__).resolve().parents[2] / "README.md"


def _session_blocks() -> tuple[str, list[str]]:
    text = README.read_text()
    match = re.search(
        r"<!-- socat-session:begin -->\s*```sh\n(.*?)```\s*```json\n(.*?)```\s*"
        r"<!-- socat-session:end -->",
        text,
        re.S,
    )
    assert match, "README lost its socat session markers"
    return match.group(1), match.group(2).strip().splitlines()


def test_readme_socat_session(daemon: DaemonProcess) -> None:
    if shutil.which("socat") is None:
        pytest.fail("socat is not installed: `bash .ci/run` installs it (apt-get install socat)")
    script, expected = _session_blocks()
    env = daemon.env  # the session calls `convctl socket-path`: this virtualenv's, first on PATH
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().strip().splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(line) for line in expected]
    # The daemon answers in exactly the README's form, byte for byte (compact, same key order).
    assert lines == expected
