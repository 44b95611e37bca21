"""Printing the benchmark's tables, and the issue-7 targets with this run's ratios."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from _common import OTHER_LOAD_LIMIT, fmt, fmt_ratio, ratio, table

CALIBRATION_TITLE = "== machine calibration: Unix socket round trip, no convd (us) =="
SET_DRAFT_TITLE = "== conv.set_draft round trip (latency in microseconds) =="
FANOUT_TITLE = "== conv.event fan-out: writer's set_draft -> receipt in every subscriber (us) =="
LIBRARY_TITLE = "== client library: conv.set_draft round trip through convd_client (us) =="
STARTUP_TITLE = "== start-up: spawning python -m convd -> socket accepting (ms) =="
SCALE_TITLE = "== a big account: populating through the daemon, then per-method p50 (us) =="
TARGETS_TITLE = "== issue 7 targets: ratios measured in this run =="

# Names of the systems, shared with run.py.
CONVD = {"full": "convd full", "everysec": "convd everysec"}
REDIS_2RT = "redis SET then PUBLISH"
REDIS_PIPE = "redis pipelined SET+PUBLISH"
REDIS = "redis"
REDIS_ALWAYS = "redis always"  # appendfsync always: fan-out only, for information
SQLITE = {"FULL": "sqlite FULL", "NORMAL": "sqlite NORMAL"}


@dataclass
class Results:
    calibration: list[Any] = field(default_factory=list)
    writes: list[Any] = field(default_factory=list)  # WriteRow, every system
    fanout: list[Any] = field(default_factory=list)  # FanoutRow, every system
    library: list[Any] = field(default_factory=list)
    startup: list[Any] = field(default_factory=list)
    scale: list[Any] = field(default_factory=list)
    peers_note: str = ""

    def write(self, system: str, placement: str) -> Any | None:
        for row in self.writes:
            if row.system == system and row.placement == placement:
                return row
        return None

    def fan(self, system: str, subscribers: int) -> Any | None:
        for row in self.fanout:
            if row.system == system and row.subscribers == subscribers:
                return row
        return None


def _pair(a: float, b: float) -> str:
    return f"{fmt(a)} / {fmt(b)}"


def print_calibration(rows: list[Any]) -> None:
    print(CALIBRATION_TITLE)
    print(
        "Two processes, 16-byte ping-pong over a socketpair, blocking Python, no JSON: the "
        "floor that placement\nalone sets. peer-baselines.md measured 136k ops/s p50 7.1 (same "
        "CPU) and 17.0k ops/s p50 67 (unpinned)\non its machine; compare through ratios, not "
        "absolute figures."
    )
    headers = ["placement", "ops/s", "p50", "p99"]
    body = [[r.placement, fmt(r.ops_per_s), fmt(r.p50_us, 1), fmt(r.p99_us, 1)] for r in rows]
    print(table(headers, body) + "\n")


def _hops(row: Any) -> str:
    hops = row.hops
    if not hops:
        return ""
    if hops.get("writer_hops_per_write") is None:
        return "n/a"
    return (
        f"{hops['writer_hops_per_write']:.2f} / {hops['reader_hops_per_write']:.2f}, "
        f"{hops['writes_per_batch']:.1f}"
    )


def print_writes(rows: list[Any]) -> None:
    print(SET_DRAFT_TITLE)
    print(
        "Each client: its own process and connection; convd: session.login as 'bench', "
        "sequential conv.set_draft (raw NDJSON,\nstdlib json) on its own 100 conversations; "
        "redis: SET draft:<id> + PUBLISH drafts (redis-py); sqlite: one UPSERT per\n"
        "transaction into one shared file. Every write is a new 200-byte UTF-8 text."
    )
    headers = ["system", "placement", "ops/s", "ops/s range", "p50", "p90", "p99", "max"]
    headers += ["errors", "CPU/op: server (main) clients", "hops/write w / r, writes/batch"]
    headers += ["busy % (other)"]
    body = [
        [
            r.system,
            r.placement,
            fmt(r.ops_per_s),
            f"{fmt(r.ops_per_s_min)}..{fmt(r.ops_per_s_max)}",
            fmt(r.p50_us),
            fmt(r.p90_us),
            fmt(r.p99_us),
            fmt(r.max_us),
            str(r.errors),
            f"{fmt(r.server_cpu_us_per_op)} ({fmt(r.server_main_cpu_us_per_op)}) "
            f"{fmt(r.client_cpu_us_per_op)}",
            _hops(r),
            f"{fmt(r.machine_busy_pct)} ({fmt(r.other_load_pct)})",
        ]
        for r in rows
    ]
    print(table(headers, body))
    print(
        "ops/s: median over rounds (rounds alternate the systems); p50: median of the rounds' "
        "p50s; p90..max pool every\nround's samples. 'same CPU' pins every thread of the server "
        "and the client to one vCPU (like taskset -a -c).\nCPU/op: all server threads "
        "(schedstat), in brackets its main thread (convd: the event loop; the rest is SQLite's\n"
        "threads), then all clients. hops: daemon.status store counters, deltas over the rounds "
        "(n/a: this build has none).\nbusy %: both vCPUs = 100 (/proc/stat); (other) = busy not "
        "explained by server + clients: other load on the machine.\n"
    )


def print_fanout(rows: list[Any], interval_ms: float, events: int, warmup: int) -> None:
    print(FANOUT_TITLE)
    print(
        f"One writer process writes every {interval_ms:g} ms ({events} measured events after "
        f"{warmup} warm-up; convd: set_draft, redis: pipelined\nSET+PUBLISH); N subscriber "
        "processes (convd: conv.subscribe, same account; redis: SUBSCRIBE drafts via redis-py),\n"
        "all subscribed before the first write; unpinned. send = writer about to send; ack = "
        "writer has its reply;\nrecv = the subscriber has the event. Pairs are p50 / p99."
    )
    headers = ["system", "subs", "receipts", "missing", "send->recv p50 / p99"]
    headers += ["last sub send->recv", "ack->recv", "writer RTT"]
    headers += ["CPU/event: server (main) clients", "main's CPU wait", "busy % (other)"]
    body = [
        [
            r.system,
            str(r.subscribers),
            fmt(r.receipts),
            str(r.missing),
            _pair(r.send_p50_us, r.send_p99_us),
            _pair(r.send_last_p50_us, r.send_last_p99_us),
            _pair(r.ack_p50_us, r.ack_p99_us),
            _pair(r.writer_rtt_p50_us, r.writer_rtt_p99_us),
            f"{fmt(r.server_cpu_us_per_event)} ({fmt(r.server_main_cpu_us_per_event)}) "
            f"{fmt(r.client_cpu_us_per_event)}",
            fmt(r.server_main_wait_us_per_event),
            f"{fmt(r.machine_busy_pct)} ({fmt(r.other_load_pct)})",
        ]
        for r in rows
    ]
    print(table(headers, body))
    print(
        "Percentiles over all receipts (events x subscribers); 'last sub' = the slowest "
        "subscriber of each event.\nsend->recv includes the whole write (convd: the SQLite "
        "commit). ack->recv is negative when the event reached\nthe subscriber before the writer "
        "had read its own reply. main's CPU wait = per event, how long the server's main\n"
        "thread (convd: the event loop) waited runnable for a CPU (schedstat run-queue wait): "
        "mostly behind the\nsubscribers it had just woken.\n"
    )
    extra = []
    for system in dict.fromkeys(r.system for r in rows):
        mine = sorted((r for r in rows if r.system == system), key=lambda r: r.subscribers)
        low, high = mine[0], mine[-1]
        if high.subscribers > low.subscribers:
            cpu = high.server_cpu_us_per_event - low.server_cpu_us_per_event
            extra.append(f"{system} {fmt(cpu / (high.subscribers - low.subscribers), 1)}")
    if extra:
        print("server CPU per event per extra subscriber (us): " + ", ".join(extra) + "\n")
    for r in rows:
        for note in r.notes:
            print(f"note ({r.system}, N={r.subscribers}): {note}")


def print_library(rows: list[Any]) -> None:
    print(LIBRARY_TITLE)
    print(
        "One process per client kind and round, unpinned, sequential conv.set_draft on 100 "
        "conversations; the kinds\nalternate round by round. vs raw = p50 / the raw socket "
        "client's p50 on the same daemon (targets: Client\n<= 1.3x, BlockingClient <= 1.6x)."
    )
    headers = ["durability", "client", "rounds", "calls", "p50", "p99", "vs raw"]
    body = [
        [r.durability, r.client, str(r.rounds), fmt(r.calls), fmt(r.p50_us), fmt(r.p99_us),
         fmt_ratio(r.vs_raw)]
        for r in rows
    ]  # fmt: skip
    print(table(headers, body) + "\n")


def print_startup(rows: list[Any]) -> None:
    print(STARTUP_TITLE)
    print(
        "Spawn -> the socket accepts a connection (polled every 1 ms) -> daemon.status "
        "answered; then SIGTERM -> exit.\nMedians of several starts (goal, issue 10: < 150 ms "
        "to accepting; an idle daemon exits within 200 ms). Bytecode is compiled first, as\n"
        "pip install does; the peer row is the interpreter importing the libraries convd needs.\n"
        "A restart finds the file as the last clean stop left it and skips the quick_check; a "
        "'checked' start runs it\n(the first start after a crash, a change by anything else, "
        "or a day)."
    )
    headers = ["database", "starts", "accepting", "min..max", "status answered", "SIGTERM->exit"]
    body = [
        [r.database, str(r.starts), fmt(r.accept_ms, 1),
         f"{fmt(r.accept_min_ms, 1)}..{fmt(r.accept_max_ms, 1)}", fmt(r.status_ms, 1),
         fmt(r.exit_ms, 1)]
        for r in rows
    ]  # fmt: skip
    print(table(headers, body) + "\n")


def print_scale(steps: list[Any], durability: str, methods: tuple[str, ...]) -> None:
    print(SCALE_TITLE)
    print(
        f"One account on convd --durability={durability}, populated through the daemon: "
        "JSON-RPC batches of 100 conv.set_draft\non one connection, half with a draft; once the "
        "daemon is idle again (its checkpoint done, and synced), each\nmethod on random "
        "conversations (interleaved), p50 over the repetitions. growth = p50 at the largest\n"
        "size / p50 at the smallest (a request's cost should not grow with the account except "
        "where its answer does)."
    )
    headers = ["", *(f"{s.size:,}" for s in steps), "growth"]
    rows: list[list[str]] = [
        ["populate: conversations/s", *(fmt(s.populate.rate) for s in steps), ""],
        ["populate: writes per batch (status)",
         *(fmt(s.hops.get("writes_per_batch"), 1) if s.hops.get("writes") is not None else "n/a"
           for s in steps), ""],
        ["start-up to accepting, ms (median)",
         *(fmt(s.start.accept_ms, 1) if s.start else "-" for s in steps), ""],
    ]  # fmt: skip
    for method in methods:
        values = [s.methods.p50_us(method) for s in steps]
        rows.append([method, *(fmt(v) for v in values), fmt_ratio(ratio(values[-1], values[0]))])
    print(table(headers, rows))
    deep = ", ".join(f"{s.methods.deep_position:,} of {s.size:,}" for s in steps)
    print(f"deep page starts after: {deep}\n")


# -- targets -------------------------------------------------------------------------------------


@dataclass
class Target:
    scenario: str
    convd: str
    peer: str
    value: float  # the ratio (or an absolute figure) compared with the goals
    shown: str
    target: str
    stretch: str
    verdict: str


def _verdict(value: float, goal: float, stretch: float, higher_is_better: bool) -> str:
    if value != value:
        return "not measured"

    def meets(limit: float) -> bool:
        return value >= limit if higher_is_better else value <= limit

    if meets(stretch):
        return "meets target" if stretch == goal else "meets stretch"
    if meets(goal):
        return "meets target"
    return f"misses (x{value / goal:.2f} of target)" if goal else "misses"


def target_rows(results: Results, clients: int) -> list[Target]:
    rows: list[Target] = []
    one = "1 client, unpinned"
    many = f"{clients} clients, unpinned"

    def add(
        scenario: str, convd: float, peer: float | None, goal: float | None,
        stretch: float | None, *, higher: bool = False, unit: str = "x",
    ) -> None:  # fmt: skip
        """A row; goal None: for information (no target, no verdict)."""
        if unit == "x" and peer is None:
            rows.append(Target(scenario, fmt(convd), "-", float("nan"), "-", "", "",
                               "no peer measured"))  # fmt: skip
            return
        value = ratio(convd, peer) if peer is not None else convd
        sign = ">=" if higher else "<="
        shown = fmt_ratio(value) if unit == "x" else f"{fmt(value, 1)} {unit}"

        def limit(v: float | None) -> str:
            if v is None:
                return ""
            return f"{sign} {v:g}x" if unit == "x" else f"{sign} {v:g} {unit}"

        verdict = "" if goal is None or stretch is None else _verdict(value, goal, stretch, higher)
        peer_shown = "-" if peer is None else fmt(peer)
        rows.append(
            Target(scenario, fmt(convd), peer_shown, value, shown, limit(goal), limit(stretch),
                   verdict)
        )  # fmt: skip

    def val(row: Any | None, name: str) -> float:
        return float("nan") if row is None else float(getattr(row, name))

    redis_1 = results.write(REDIS_2RT, one)
    redis_pipe_n = results.write(REDIS_PIPE, many)
    redis_fan = results.fan(REDIS, 50)
    redis_always_fan = results.fan(REDIS_ALWAYS, 50)
    for mode, goals in (("full", (4, 3, 0.15, 0.3)), ("everysec", (2.5, 1.5, 0.2, 0.4))):
        name = CONVD[mode]
        row1 = results.write(name, one)
        fan50 = results.fan(name, 50)
        if row1 is None and fan50 is None:
            continue
        if row1 is not None:  # not measured in a fan-out-only run
            peer = None if redis_1 is None else redis_1.p50_us
            add(f"1 client p50 us, {mode} / redis SET then PUBLISH", row1.p50_us, peer,
                goals[0], goals[1])  # fmt: skip
            rown = results.write(name, many)
            peer = None if redis_pipe_n is None else redis_pipe_n.ops_per_s
            add(f"{clients} clients writes/s, {mode} / redis pipelined",
                val(rown, "ops_per_s"), peer, goals[2], goals[3], higher=True)  # fmt: skip
            errors = 0 if rown is None else rown.errors
            add(f"{clients} writers: max latency ms, {mode} ({errors} errors)",
                val(rown, "max_us") / 1000 if errors == 0 else float("inf"), None, 50, 10,
                unit="ms")  # fmt: skip
            peer = None if redis_1 is None else redis_1.server_cpu_us_per_op
            add(f"daemon CPU us per set_draft, {mode} / redis-server per SET+PUBLISH",
                row1.server_cpu_us_per_op, peer, 10, 6)  # fmt: skip
        if fan50 is not None:  # not measured in a set_draft-only run
            peer = None if redis_fan is None else redis_fan.send_p99_us
            add(f"fan-out to 50 p99 us, {mode} / redis pub/sub", fan50.send_p99_us, peer,
                1.0, 0.5)  # fmt: skip
            fan1 = results.fan(name, 1)
            if fan1 is not None:
                extra = (fan50.server_cpu_us_per_event - fan1.server_cpu_us_per_event) / 49
                add(f"daemon CPU per event per extra subscriber, {mode}", extra, None, 10, 5,
                    unit="us")  # fmt: skip
        # For information: the other peers and figures of the same run.
        if row1 is not None and redis_1 is not None:
            pipe_1 = results.write(REDIS_PIPE, one)
            add(f"(info) 1 client p50 us, {mode} / redis pipelined", row1.p50_us,
                val(pipe_1, "p50_us"), None, None)  # fmt: skip
        sqlite = SQLITE["FULL" if mode == "full" else "NORMAL"]
        for placement, label in ((one, "1 client"), (many, f"{clients} clients")):
            peer_row = results.write(sqlite, placement)
            if peer_row is not None:
                add(f"(info) {label} writes/s, {mode} / {sqlite} (direct)",
                    val(results.write(name, placement), "ops_per_s"), peer_row.ops_per_s,
                    None, None)  # fmt: skip
        if fan50 is not None and redis_fan is not None:
            add(f"(info) fan-out to 50 p50 us, {mode} / redis pub/sub", fan50.send_p50_us,
                redis_fan.send_p50_us, None, None)  # fmt: skip
        if mode == "full" and fan50 is not None and redis_always_fan is not None:
            # The same promise on both sides: on disk before any subscriber hears of it.
            add(f"(info) fan-out to 50 p99 us, {mode} / redis always", fan50.send_p99_us,
                redis_always_fan.send_p99_us, None, None)  # fmt: skip
        for placement, label in ((one, "1 client"), (many, f"{clients} clients")):
            row = results.write(name, placement)
            if row is not None:
                hops = _hops(row) or "n/a"
                rows.append(
                    Target(
                        f"(info) thread hops per write w / r, writes/batch, {label}, {mode}",
                        hops,
                        "",
                        float("nan"),
                        "",
                        "",
                        "",
                        "",
                    )
                )
    for lib in results.library:
        if lib.client == "raw socket":
            continue
        goal = 1.3 if lib.client == "Client (async)" else 1.6
        raw = next(
            r
            for r in results.library
            if r.durability == lib.durability and r.client == "raw socket"
        )
        add(f"{lib.client} p50 us / raw socket, {lib.durability}", lib.p50_us, raw.p50_us,
            goal, goal)  # fmt: skip
    for start in results.startup:
        if start.database.startswith("peer:"):
            continue
        add(f"start-up to accepting, {start.database}", start.accept_ms, None, 150, 150,
            unit="ms")  # fmt: skip
    for step in results.scale:
        if step.size == 10_000:
            whole = step.methods.p50_us("conv.list (whole account, pages of 1,000)")
            add("conv.list: whole account of 10,000, pages of 1,000", whole / 1000, None, 20,
                20, unit="ms")  # fmt: skip
    return rows


def print_targets(rows: list[Target], peers_note: str) -> None:
    print(TARGETS_TITLE)
    print(
        "convd and its peer from this run (unpinned); ratio = convd / peer. Targets and "
        "stretch goals from issue 7 (and issue 10\nfor start-up). Single runs are noisy: quote "
        "medians of 3 runs and look at 'busy % (other)' above."
    )
    if peers_note:
        print(f"peers: {peers_note}")
    headers = ["scenario", "convd", "peer", "ratio / value", "target", "stretch", "verdict"]
    body = [[t.scenario, t.convd, t.peer, t.shown, t.target, t.stretch, t.verdict] for t in rows]
    print(table(headers, body) + "\n")


def warn_other_load(results: Results) -> None:
    loaded = [
        f"{r.system} {r.placement} ({r.other_load_pct:.0f} %)"
        for r in results.writes
        if r.other_load_pct > OTHER_LOAD_LIMIT
    ]
    loaded += [
        f"fan-out {r.system} N={r.subscribers} ({r.other_load_pct:.0f} %)"
        for r in results.fanout
        if r.other_load_pct > OTHER_LOAD_LIMIT
    ]
    if loaded:
        print(
            "WARNING: something else was using the CPUs during: "
            + ", ".join(loaded)
            + ".\nThose rows are not clean; rerun on an idle machine.\n"
        )


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value
