"""The benchmark must keep working: run ``bench/run.py --quick`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_quick_run(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    command = [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--scenario", "all"]
    completed = subprocess.run(
        [*command, "--json", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=55,
    )
    output = completed.stdout
    assert completed.returncode == 0, f"stdout:\n{output}\nstderr:\n{completed.stderr}"
    for expected in (
        "== machine calibration: Unix socket round trip, no convd (us) ==",
        "== conv.set_draft round trip (latency in microseconds) ==",
        "== conv.event fan-out: writer's set_draft -> receipt in every subscriber (us) ==",
        "1 client, unpinned",
        "8 clients, unpinned",
        "send->recv p50 / p99",
        "daemon stopped (SIGTERM, exit 0)",
    ):
        assert expected in output, f"missing {expected!r} in:\n{output}"

    summary = json.loads(results.read_text())
    assert [row["clients"] for row in summary["set_draft"]][-1] == 8
    assert all(row["ops"] > 0 for row in summary["set_draft"])
    fanout = summary["fanout"]
    assert [row["subscribers"] for row in fanout] == [1, 10, 50]
    for row in fanout:
        assert row["missing"] == 0, row
        assert row["receipts"] == row["events"] * row["subscribers"], row
