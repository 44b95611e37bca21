"""The benchmark must keep working: run ``bench/run.py --quick`` end to end."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run_quick(results: Path, *options: str) -> str:
    """``bench/run.py --quick OPTIONS --json RESULTS``; its standard output, once it passed."""
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=55,
    )
    output = completed.stdout
    assert completed.returncode == 0, f"stdout:\n{output}\nstderr:\n{completed.stderr}"
    return output


def test_bench_quick_run(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    output = _run_quick(results, "--scenario", "all", "--json", str(results))
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


def _redis_missing() -> str | None:
    """Why the bench's Redis peer cannot run here (as bench/_redis.py decides), or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    if importlib.util.find_spec("redis") is None:
        return "the redis package is not installed (pip install -e '.[bench]')"
    return None


def test_bench_quick_run_with_peers(tmp_path: Path) -> None:
    # 'latency' is the smallest scenario that has every peer (Redis both ways, the processes
    # sharing one SQLite file) next to convd in both modes, with the daemon's CPU and hops.
    redis_missing = _redis_missing()  # `bash .ci/run` installs it (apt-get, '.[test,bench]')
    results = tmp_path / "bench.json"
    output = _run_quick(results, "--peers", "--scenario", "latency", "--json", str(results))
    for expected in (
        "== conv.set_draft round trip (latency in microseconds) ==",
        "CPU/op: server (main) clients",
        "hops/write w / r, writes/batch",
        "== issue 7 targets: ratios measured in this run ==",
        "daemon stopped (SIGTERM, exit 0)",
    ):
        assert expected in output, f"missing {expected!r} in:\n{output}"

    summary = json.loads(results.read_text())
    unpinned = [row for row in summary["writes"] if row["placement"] == "1 client, unpinned"]
    by_system = {row["system"]: row for row in unpinned}
    for row in unpinned:
        assert row["ops"] > 0 and row["errors"] == 0, row
    # The direct-SQLite peer: every process writes the one file, no server in between.
    assert {"sqlite FULL", "sqlite NORMAL"} <= by_system.keys(), sorted(by_system)
    # convd in both modes, each with the daemon's CPU per request and its thread hops
    # (None here is the bench's "n/a": the figure was not measured).
    for mode in ("full", "everysec"):
        row = by_system[f"convd {mode}"]
        assert row["durability"] == mode, row
        assert row["server_cpu_us_per_op"] is not None, row
        assert row["server_main_cpu_us_per_op"] is not None, row
        for name in (
            "writes",
            "writes_per_batch",
            "writer_hops_per_write",
            "reader_hops_per_write",
        ):
            assert row["hops"].get(name) is not None, row

    targets = {t["scenario"]: t for t in summary["targets"]}
    for mode, sqlite in (("full", "sqlite FULL"), ("everysec", "sqlite NORMAL")):
        assert targets[f"1 client p50 us, {mode} / redis SET then PUBLISH"]["convd"] != "-"
        direct = targets[f"(info) 1 client writes/s, {mode} / {sqlite} (direct)"]
        assert direct["value"] is not None, direct
        hops_row = targets[f"(info) thread hops per write w / r, writes/batch, 1 client, {mode}"]
        assert hops_row["convd"] not in ("", "n/a"), hops_row

    if redis_missing is not None:
        assert summary["peers"].startswith("Redis skipped"), summary["peers"]
        pytest.skip(f"Redis rows not checked: {redis_missing}")
    assert summary["peers"].startswith("redis-server pid"), summary["peers"]
    assert {"redis SET then PUBLISH", "redis pipelined SET+PUBLISH"} <= by_system.keys()
    for mode in ("full", "everysec"):
        for scenario in (
            f"1 client p50 us, {mode} / redis SET then PUBLISH",
            f"daemon CPU us per set_draft, {mode} / redis-server per SET+PUBLISH",
        ):
            target = targets[scenario]
            assert target["peer"] != "-" and target["value"] is not None, target
            assert target["verdict"] not in ("no peer measured", "not measured"), target
