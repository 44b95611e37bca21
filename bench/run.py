"""Benchmark the real convd daemon, in both durability modes, next to its peers in the same run.

    python bench/run.py --peers               # everything but 'scale', with Redis and SQLite
    python bench/run.py                       # convd alone (both durability modes)
    python bench/run.py --quick               # smoke run, well under 20 s (the test suite runs it)
    python bench/run.py --scenario scale      # a big account: 100 / 10k / 100k conversations
    python bench/run.py --scenario fanout     # one scenario (see --help for the list)

The script starts its own daemons (``python -m convd``, one per durability mode: the default
``--durability=full`` and ``--durability=everysec``) on sockets and databases in a fresh
directory under /tmp and, with ``--peers``, its own ``redis-server`` (AOF, ``appendfsync
everysec``, private Unix socket), and for the fan-out a second one with ``appendfsync always``
(full's promise, for information). Every client is its own OS process (forked); convd's is a raw
NDJSON client (stdlib json + socket), Redis's is redis-py (+hiredis). It prints tables, then the
issue-7 targets with the ratios measured in this run, stops everything (a convd that does not
exit 0 on SIGTERM fails the run) and removes the directory. bench/README.md explains each row.

Scenarios: calibration and latency (1 client, sequential; also daemon CPU per write and thread
hops), throughput (8 client processes), fanout (1 writer, 1/10/50 subscriber processes),
client (the convd_client library's overhead), startup (spawn to accepting), scale.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _redis
import _scale
import _sqlite_peer
from _clients import (
    LIBRARY_KINDS,
    WriteSpec,
    echo_client,
    echo_server,
    library_client,
    subscriber,
    timed_writer,
    writer,
)
from _common import (
    OTHER_LOAD_LIMIT,
    BenchError,
    Meter,
    children,
    idle_check,
    median,
    percentile,
    ratio,
    set_affinity,
    sleep_until,
    us,
)
from _convd import Daemon, Hops
from _report import (
    CONVD,
    REDIS,
    REDIS_2RT,
    REDIS_ALWAYS,
    REDIS_PIPE,
    SQLITE,
    Results,
    finite,
    print_calibration,
    print_fanout,
    print_library,
    print_scale,
    print_startup,
    print_targets,
    print_writes,
    target_rows,
    warn_other_load,
)

MODES = ("full", "everysec")
USER = "bench"


# -- plan ----------------------------------------------------------------------------------------


@dataclass
class Plan:
    quick: bool
    clients: int
    rounds: int  # rounds of every alternation (latency, throughput, client library)
    latency_seconds: float
    throughput_seconds: float
    warmup_ops: int
    fanout_sizes: tuple[int, ...]
    fanout_events: int
    fanout_warmup: int
    fanout_interval_ms: float
    calibration_seconds: float
    library_seconds: float
    starts: int
    startup_sizes: tuple[int, ...]
    scale_sizes: tuple[int, ...]
    scale_repeats: int

    @classmethod
    def make(cls, quick: bool, clients: int, rounds: int | None) -> Plan:
        if quick:
            return cls(
                quick, clients, rounds or 1, 0.4, 0.8, 20, (1, 10, 50), 30, 5, 5.0, 0.3,
                0.3, 2, (), (100, 1000), 20,
            )  # fmt: skip
        return cls(
            quick, clients, rounds or 3, 2.0, 4.0, 300, (1, 10, 50), 1200, 20, 5.0, 1.0,
            1.5, 7, (100_000,), (100, 10_000, 100_000), 200,
        )  # fmt: skip


# -- what is measured ----------------------------------------------------------------------------


@dataclass
class Server:
    """One thing under measurement with a process of its own (a convd, redis-server)."""

    name: str
    pid: int
    address: str  # its socket
    daemon: Daemon | None = None

    def check_alive(self) -> None:
        if self.daemon is not None:
            self.daemon.check_alive()
        else:
            os.kill(self.pid, 0)


@dataclass
class System:
    """One kind of acknowledged write: who serves it (None: no server) and how to do it."""

    name: str
    server: Server | None
    spec: WriteSpec

    @property
    def durability(self) -> str:
        return self.server.daemon.durability if self.server and self.server.daemon else ""


@dataclass
class Round:
    latencies: list[int]
    ops: int  # completed inside the timed window
    errors: int
    seconds: float
    meter: Meter


@dataclass
class WriteRow:
    system: str
    durability: str
    placement: str
    clients: int
    rounds: int
    ops: int
    ops_per_s: float  # median over rounds
    ops_per_s_min: float
    ops_per_s_max: float
    p50_us: float  # median of the rounds' p50s
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    errors: int
    server_cpu_us_per_op: float
    server_main_cpu_us_per_op: float
    client_cpu_us_per_op: float
    machine_busy_pct: float
    other_load_pct: float  # the worst round
    hops: dict[str, float | None] = field(default_factory=dict)


def _run_round(system: System, plan: Plan, clients: int, cpu: int | None, seconds: float) -> Round:
    meter = Meter(system.server.pid if system.server else None)
    with children() as group:
        for index in range(clients):
            group.spawn(timed_writer, system.spec, index, cpu, plan.warmup_ops)
        group.receive_all("ready")
        start_ns = time.monotonic_ns() + 50_000_000
        end_ns = start_ns + int(seconds * 1e9)
        group.send_all((start_ns, end_ns))
        sleep_until(start_ns)
        meter.start()
        sleep_until(end_ns)
        meter.stop()
        results = group.receive_all("done")
    if system.server:
        system.server.check_alive()
    meter.client_cpu_ns = sum(r[3] for r in results)
    latencies = [value for r in results for value in r[0]]
    return Round(latencies, sum(r[1] for r in results), sum(r[2] for r in results), seconds, meter)


def _write_row(
    system: System, placement: str, clients: int, rounds: list[Round], hops: Hops
) -> WriteRow:
    latencies = sorted(v for r in rounds for v in r.latencies)
    rates = [r.ops / r.seconds for r in rounds]
    ops = sum(r.ops for r in rounds)
    cpu = sum(r.meter.cpu_ns for r in rounds)
    main_cpu = sum(r.meter.loop_cpu_ns for r in rounds)
    client_cpu = sum(r.meter.client_cpu_ns for r in rounds)

    def per_op(ns: int) -> float:
        return us(ns / ops) if ops and system.server else float("nan")

    return WriteRow(
        system=system.name,
        durability=system.durability,
        placement=placement,
        clients=clients,
        rounds=len(rounds),
        ops=len(latencies),
        ops_per_s=median(rates),
        ops_per_s_min=min(rates),
        ops_per_s_max=max(rates),
        p50_us=median(us(percentile(sorted(r.latencies), 50)) for r in rounds),
        p90_us=us(percentile(latencies, 90)),
        p99_us=us(percentile(latencies, 99)),
        p999_us=us(percentile(latencies, 99.9)),
        max_us=us(latencies[-1]) if latencies else float("nan"),
        errors=sum(r.errors for r in rounds),
        server_cpu_us_per_op=per_op(cpu),
        server_main_cpu_us_per_op=per_op(main_cpu),
        client_cpu_us_per_op=us(client_cpu / ops) if ops else float("nan"),
        machine_busy_pct=median(r.meter.busy for r in rounds),
        other_load_pct=max(r.meter.other_pct for r in rounds),
        hops=hops.summary() if system.server and system.server.daemon else {},
    )


@dataclass(frozen=True)
class Placement:
    name: str
    server_cpu: int | None  # every thread of the server; None: unpinned
    client_cpu: int | None


def _placements(allowed: set[int]) -> list[Placement]:
    """Same CPU and split (when there are two CPUs to use), then unpinned."""
    cpus = sorted(allowed)
    placements = []
    if len(cpus) > 1:
        a, b = cpus[:2]
        placements.append(Placement(f"1 client, same CPU ({a})", a, a))
        placements.append(Placement(f"1 client, split (server {a}, client {b})", a, b))
    placements.append(Placement("1 client, unpinned", None, None))
    return placements


def _alternate(
    systems: list[System], plan: Plan, clients: int, placement: Placement, seconds: float
) -> list[WriteRow]:
    """``plan.rounds`` rounds, each running every system once (so drift hits them alike)."""
    allowed = os.sched_getaffinity(0)
    rounds: dict[str, list[Round]] = {s.name: [] for s in systems}
    hops = {s.name: Hops() for s in systems}
    for _ in range(plan.rounds):
        for system in systems:
            server = system.server
            daemon = server.daemon if server else None
            # Only a placement that pins the server touches its threads (and gives them back
            # every CPU after): unpinned, the daemon places its own threads (convd.placement).
            pinned = server if server and placement.server_cpu is not None else None
            if pinned:
                set_affinity(pinned.pid, {placement.server_cpu})
            try:
                before = daemon.store_counters() if daemon else None
                rounds[system.name].append(
                    _run_round(system, plan, clients, placement.client_cpu, seconds)
                )
                if daemon:
                    hops[system.name].add(before, daemon.store_counters())
            finally:
                if pinned:
                    set_affinity(pinned.pid, allowed)
    return [_write_row(s, placement.name, clients, rounds[s.name], hops[s.name]) for s in systems]


def scenario_latency(
    convd: list[System], peers: list[System], sqlite: list[System], plan: Plan
) -> list[WriteRow]:
    rows: list[WriteRow] = []
    for placement in _placements(os.sched_getaffinity(0)):
        # The SQLite peer has no server to place: it runs in the unpinned placement only.
        extra = sqlite if placement.server_cpu is None else []
        rows += _alternate(convd + peers + extra, plan, 1, placement, plan.latency_seconds)
    return rows


def scenario_throughput(
    convd: list[System], peers: list[System], sqlite: list[System], plan: Plan
) -> list[WriteRow]:
    placement = Placement(f"{plan.clients} clients, unpinned", None, None)
    systems = convd + [p for p in peers if p.spec[2] is True] + sqlite  # Redis: pipelined
    return _alternate(systems, plan, plan.clients, placement, plan.throughput_seconds)


# -- calibration ---------------------------------------------------------------------------------


@dataclass
class EchoRow:
    placement: str
    ops_per_s: float
    p50_us: float
    p99_us: float


def scenario_calibration(plan: Plan) -> list[EchoRow]:
    rows = []
    for placement in _placements(os.sched_getaffinity(0)):
        server_end, client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with children() as server, children() as client:
            server.spawn(echo_server, server_end, placement.server_cpu)
            server.receive_all("ready")
            client.spawn(echo_client, client_end, placement.client_cpu, plan.calibration_seconds)
            server_end.close()
            client_end.close()
            ((latencies, seconds),) = client.receive_all("done")
            server.receive_all("done")
        latencies.sort()
        rows.append(
            EchoRow(
                placement.name.replace("server", "daemon"),
                len(latencies) / seconds,
                us(percentile(latencies, 50)),
                us(percentile(latencies, 99)),
            )
        )
    return rows


# -- fan-out -------------------------------------------------------------------------------------


@dataclass
class FanoutRow:
    system: str
    durability: str
    subscribers: int
    events: int
    receipts: int
    missing: int
    send_p50_us: float
    send_p99_us: float
    ack_p50_us: float
    ack_p99_us: float
    ack_last_p50_us: float
    ack_last_p99_us: float
    send_last_p50_us: float
    send_last_p99_us: float
    before_ack_pct: float
    writer_rtt_p50_us: float
    writer_rtt_p99_us: float
    server_cpu_us_per_event: float
    server_main_cpu_us_per_event: float
    #: How long the server's main thread waited runnable for a CPU, per event.
    server_main_wait_us_per_event: float
    client_cpu_us_per_event: float  # the writer and all subscribers
    machine_busy_pct: float
    other_load_pct: float
    notes: list[str] = field(default_factory=list)


def _fanout_once(server: Server, plan: Plan, subscribers: int) -> FanoutRow:
    total = plan.fanout_warmup + plan.fanout_events
    interval_ns = int(plan.fanout_interval_ms * 1e6)
    meter = Meter(server.pid)
    notes: list[str] = []
    daemon = server.daemon
    # Write back what the scenarios before left dirty (the set_draft ones leave ~100 MB: AOF,
    # WALs, the SQLite peer), or the kernel does it during the measurement, in the way of
    # convd full's fsyncs and of every system's CPU time.
    os.sync()
    with children() as subs, children() as pen:
        for _ in range(subscribers):
            if daemon is not None:
                subs.spawn(subscriber, str(daemon.socket), f"fan{subscribers}", total)
            else:
                subs.spawn(_redis.subscriber, server.address, total)
        start_seqs = set(subs.receive_all("ready"))
        if len(start_seqs) != 1:
            notes.append(f"subscribers started at different seqs {sorted(start_seqs)}")
        if daemon is not None:
            pen.spawn(writer, str(daemon.socket), f"fan{subscribers}", total, interval_ns)
        else:
            pen.spawn(_redis.writer, server.address, total, interval_ns)
        pen.receive_all("ready")
        meter.start()
        pen.send_all("go")
        ((records, writer_cpu),) = pen.receive_all("done")
        meter.stop()
        sub_results = subs.receive_all("done")
    server.check_alive()
    receipts = [r for r, _ in sub_results]
    meter.client_cpu_ns = writer_cpu + sum(cpu for _, cpu in sub_results)

    measured = records[plan.fanout_warmup :]
    by_seq = {seq: (sent, acked) for seq, sent, acked in measured}
    start_seq = min(start_seqs)
    expected = list(range(start_seq + 1, start_seq + total + 1))
    if [seq for seq, _, _ in records] != expected:
        notes.append("the writer's seqs are not consecutive")
    from_send: list[int] = []
    from_ack: list[int] = []
    last_recv: dict[int, int] = {}
    missing = 0
    for per_sub in receipts:
        got = dict(per_sub)
        for seq, (sent, acked) in by_seq.items():
            stamp = got.get(seq)
            if stamp is None:
                missing += 1
                continue
            from_send.append(stamp - sent)
            from_ack.append(stamp - acked)
            last_recv[seq] = max(last_recv.get(seq, stamp), stamp)
    from_send.sort()
    from_ack.sort()
    last_ack = sorted(last_recv[seq] - by_seq[seq][1] for seq in last_recv)
    last_send = sorted(last_recv[seq] - by_seq[seq][0] for seq in last_recv)
    rtt = sorted(acked - sent for _, sent, acked in measured)
    before_ack = sum(1 for value in from_ack if value < 0)
    return FanoutRow(
        system=server.name,
        durability=daemon.durability if daemon else "",
        subscribers=subscribers,
        events=len(measured),
        receipts=len(from_ack),
        missing=missing,
        send_p50_us=us(percentile(from_send, 50)),
        send_p99_us=us(percentile(from_send, 99)),
        ack_p50_us=us(percentile(from_ack, 50)),
        ack_p99_us=us(percentile(from_ack, 99)),
        ack_last_p50_us=us(percentile(last_ack, 50)),
        ack_last_p99_us=us(percentile(last_ack, 99)),
        send_last_p50_us=us(percentile(last_send, 50)),
        send_last_p99_us=us(percentile(last_send, 99)),
        before_ack_pct=100.0 * before_ack / len(from_ack) if from_ack else float("nan"),
        writer_rtt_p50_us=us(percentile(rtt, 50)),
        writer_rtt_p99_us=us(percentile(rtt, 99)),
        server_cpu_us_per_event=us(meter.cpu_ns / total),
        server_main_cpu_us_per_event=us(meter.loop_cpu_ns / total),
        server_main_wait_us_per_event=us(meter.loop_wait_ns / total),
        client_cpu_us_per_event=us(meter.client_cpu_ns / total),
        machine_busy_pct=meter.busy,
        other_load_pct=meter.other_pct,
        notes=notes,
    )


def scenario_fanout(servers: list[Server], plan: Plan) -> list[FanoutRow]:
    rows = []
    for size in plan.fanout_sizes:  # sizes outside, servers inside: drift hits them alike
        rows += [_fanout_once(server, plan, size) for server in servers]
    return rows


# -- the client library --------------------------------------------------------------------------


@dataclass
class LibraryRow:
    durability: str
    client: str
    rounds: int
    calls: int
    p50_us: float  # median of the rounds' p50s
    p99_us: float
    vs_raw: float  # p50 / the raw socket client's p50, same daemon, same run


def scenario_client(daemons: list[Daemon], plan: Plan) -> list[LibraryRow]:
    samples: dict[tuple[str, str], list[list[int]]] = {}
    for _ in range(plan.rounds):
        for daemon in daemons:
            for kind in LIBRARY_KINDS:
                with children() as group:
                    group.spawn(
                        library_client, kind, str(daemon.socket), USER, plan.library_seconds,
                        plan.warmup_ops,
                    )  # fmt: skip
                    (latencies,) = group.receive_all("done")
                daemon.check_alive()
                samples.setdefault((daemon.durability, kind), []).append(sorted(latencies))
    rows = []
    for daemon in daemons:
        raw_p50 = median(us(percentile(s, 50)) for s in samples[(daemon.durability, "raw socket")])
        for kind in LIBRARY_KINDS:
            per_round = samples[(daemon.durability, kind)]
            pooled = sorted(v for s in per_round for v in s)
            p50 = median(us(percentile(s, 50)) for s in per_round)
            rows.append(
                LibraryRow(
                    daemon.durability, kind, len(per_round), len(pooled), p50,
                    us(percentile(pooled, 99)), ratio(p50, raw_p50),
                )
            )  # fmt: skip
    return rows


# -- start-up and scale --------------------------------------------------------------------------


def _populated_db(workdir: Path, size: int, durability: str) -> tuple[Path, _scale.PopulateResult]:
    """A stopped convd database with ``size`` conversations, populated through a daemon."""
    daemon = Daemon(workdir / f"populate-{size}", durability)
    try:
        daemon.start()
        client = _scale.open_client(daemon)
        result = _scale.populate(client, 0, size)
        client.close()
        _stop(daemon)
    finally:
        daemon.ensure_stopped()
    if result.errors:
        raise BenchError(f"{result.errors} errors while populating {size} conversations")
    return daemon.db, result


def _stop(daemon: Daemon) -> None:
    code = daemon.stop()
    if code != 0:
        raise BenchError(f"{daemon.name} exited with {code} on SIGTERM:\n{daemon.logs()}")
    if daemon.complaints():
        raise BenchError(f"{daemon.name} logged:\n" + "\n".join(daemon.complaints()[:20]))


def scenario_startup(workdir: Path, plan: Plan) -> list[_scale.StartRow]:
    _scale.compile_bytecode()
    rows = [
        _scale.measure_floor(plan.starts),
        _scale.measure_starts(workdir, "new (no file)", None, plan.starts, "full"),
    ]
    for size in plan.startup_sizes:
        db, _ = _populated_db(workdir, size, "everysec")
        rows.append(
            _scale.measure_starts(workdir, f"{size:,} conversations", db, plan.starts, "full")
        )
        rows.append(
            _scale.measure_starts(
                workdir, f"{size:,} conversations, checked", db, plan.starts, "full", checked=True
            )
        )
    return rows


def scenario_scale(workdir: Path, plan: Plan, durability: str) -> list[_scale.ScaleStep]:
    steps = []
    db = workdir / "scale" / "data" / "convd.db"
    done = 0
    for size in plan.scale_sizes:
        daemon = Daemon(workdir / "scale", durability, db=db)  # the same database, grown
        try:
            daemon.start()
            client = _scale.open_client(daemon)
            before = daemon.store_counters()
            populated = _scale.populate(client, done, size)
            hops = Hops()
            hops.add(before, daemon.store_counters())
            if populated.errors:
                raise BenchError(f"{populated.errors} errors while populating to {size}")
            _scale.check_sample(client, done)
            assert daemon.proc is not None
            _scale.settle(daemon.proc.pid)
            methods = _scale.measure_methods(client, size, plan.scale_repeats)
            client.close()
            _stop(daemon)
        finally:
            daemon.ensure_stopped()
        starts = max(2, plan.starts // 2)
        start = _scale.measure_starts(workdir, f"{size:,}", db, starts, durability)
        steps.append(_scale.ScaleStep(size, populated, methods, hops.summary(), start))
        done = size
    return steps


# -- main ----------------------------------------------------------------------------------------

SCENARIOS = (
    "latency", "throughput", "set_draft", "fanout", "client", "startup", "scale", "all",
)  # fmt: skip
# 'all' is everything but 'scale' (which populates 100k conversations: minutes, not seconds).
ALL = {"latency", "throughput", "fanout", "client", "startup"}


def _environment() -> str:
    parts = [
        f"python {platform.python_version()}",
        f"{platform.system()} {platform.release()}",
        f"{os.cpu_count()} CPUs (allowed {sorted(os.sched_getaffinity(0))})",
        _sqlite_peer.version(),
        "load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    ]
    return ", ".join(parts)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 20 s)")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also measure the peers in the same run: Redis (redis-server + redis-py, when "
        "installed) and every process writing one SQLite file directly",
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="all",
        help="'all' (the default) is everything but 'scale'; 'set_draft' = latency + throughput",
    )
    parser.add_argument(
        "--durability",
        choices=["both", *MODES],
        default="both",
        help="which convd durability modes to measure (default: both, a daemon for each)",
    )
    parser.add_argument(
        "--scale-durability", choices=MODES, default="full", help="convd's mode for 'scale'"
    )
    parser.add_argument("--clients", type=int, default=8, help="client processes for throughput")
    parser.add_argument("--rounds", type=int, help="rounds of each alternation (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser.parse_args(argv)


class Run:
    """The servers of one run and what they measured."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.plan = Plan.make(args.quick, args.clients, args.rounds)
        self.modes = MODES if args.durability == "both" else (args.durability,)
        self.daemons: list[Daemon] = []
        self.redis: _redis.RedisServer | None = None
        # The fan-out's second Redis, appendfsync always: for information, next to convd full.
        self.redis_always: _redis.RedisServer | None = None
        self.results = Results()

    def start_servers(self, wanted: set[str]) -> None:
        if wanted & {"latency", "throughput", "fanout", "client"}:
            for mode in self.modes:
                daemon = Daemon(self.root / f"convd-{mode}", mode)
                self.daemons.append(daemon)
                daemon.start()
                print(f"{daemon.name}: pid {daemon.pid}, socket {daemon.socket}")
        if not self.args.peers:
            self.results.peers_note = "not measured (pass --peers)"
            return
        reason = _redis.unavailable()
        if reason is not None:
            self.results.peers_note = f"Redis skipped: {reason}"
            print(f"NOTE: {self.results.peers_note}")
        elif wanted & {"latency", "throughput", "fanout"}:
            self.redis = _redis.RedisServer(self.root / "redis")
            self.redis.start()
            note = f"redis-server pid {self.redis.pid} ({_redis.versions()}), AOF everysec"
            self.results.peers_note = note
            print(f"{note}, socket {self.redis.socket}")
            if "fanout" in wanted and "full" in self.modes:  # compared with full only
                self.redis_always = _redis.RedisServer(self.root / "redis-always", "always")
                self.redis_always.start()
                always = f"redis-server pid {self.redis_always.pid}, AOF always (fan-out only)"
                self.results.peers_note += f"; {always}"
                print(f"{always}, socket {self.redis_always.socket}")

    def stop_servers(self) -> bool:
        """Stop everything; False if a convd misbehaved (bad exit code, warnings in its log)."""
        ok = True
        for redis in (self.redis, self.redis_always):
            if redis is not None:
                redis.stop()
        for daemon in self.daemons:
            if daemon.proc is None:
                continue
            try:
                _stop(daemon)
            except BenchError as exc:
                print(str(exc), file=sys.stderr)
                ok = False
            finally:
                daemon.ensure_stopped()
        return ok

    def measure(self, wanted: set[str]) -> None:
        plan, results = self.plan, self.results
        servers = [Server(d.name, d.pid, str(d.socket), d) for d in self.daemons]
        convd = [convd_system(s) for s in servers]
        redis: list[System] = []
        if self.redis is not None:
            server = Server(REDIS, self.redis.pid, str(self.redis.socket))
            servers.append(server)
            redis = [
                System(REDIS_2RT, server, ("redis", server.address, False)),
                System(REDIS_PIPE, server, ("redis", server.address, True)),
            ]
        sqlite: list[System] = []
        if self.args.peers:
            for sync in ("FULL", "NORMAL"):
                path = self.root / f"sqlite-peer-{sync}.db"
                _sqlite_peer.create(path)
                sqlite.append(System(SQLITE[sync], None, ("sqlite", str(path), sync)))
        print()
        if "latency" in wanted:
            results.calibration = scenario_calibration(plan)
            print_calibration(results.calibration)
            results.writes += scenario_latency(convd, redis, sqlite, plan)
        if "throughput" in wanted:
            results.writes += scenario_throughput(convd, redis, sqlite, plan)
        if results.writes:
            print_writes(results.writes)
        if "fanout" in wanted:
            fanned = list(servers)
            if self.redis_always is not None:
                r = self.redis_always
                fanned.append(Server(REDIS_ALWAYS, r.pid, str(r.socket)))
            results.fanout = scenario_fanout(fanned, plan)
            print_fanout(results.fanout, plan.fanout_interval_ms, plan.fanout_events,
                         plan.fanout_warmup)  # fmt: skip
        if "client" in wanted:
            results.library = scenario_client(self.daemons, plan)
            print_library(results.library)
        if "startup" in wanted:
            results.startup = scenario_startup(self.root, plan)
            print_startup(results.startup)
        if "scale" in wanted:
            results.scale = scenario_scale(self.root, plan, self.args.scale_durability)
            print_scale(results.scale, self.args.scale_durability, _scale.METHODS)
        targets = target_rows(results, plan.clients)
        if targets:
            print_targets(targets, results.peers_note)
        warn_other_load(results)

    def summary(self) -> dict[str, Any]:
        results = self.results
        default = CONVD["full"] if "full" in self.modes else CONVD[self.modes[0]]
        scale = [
            {
                "size": s.size,
                "populate_per_s": s.populate.rate,
                "populate_errors": s.populate.errors,
                "hops": s.hops,
                "start": asdict(s.start) if s.start else None,
                "p50_us": {m: s.methods.p50_us(m) for m in _scale.METHODS},
                "p99_us": {m: s.methods.p99_us(m) for m in _scale.METHODS},
            }
            for s in results.scale
        ]
        return finite(
            {
                "quick": self.args.quick,
                "environment": _environment(),
                "peers": results.peers_note,
                "calibration": [asdict(r) for r in results.calibration],
                # convd's rows (both modes); "writes" has every system's.
                "set_draft": [asdict(r) for r in results.writes if r.system.startswith("convd")],
                # The default durability's fan-out rows; "fanout_all" has every system's.
                "fanout": [asdict(r) for r in results.fanout if r.system == default],
                "writes": [asdict(r) for r in results.writes],
                "fanout_all": [asdict(r) for r in results.fanout],
                "client_library": [asdict(r) for r in results.library],
                "startup": [asdict(r) for r in results.startup],
                "scale": scale,
                "targets": [asdict(t) for t in target_rows(results, self.plan.clients)],
            }
        )


def convd_system(server: Server) -> System:
    return System(server.name, server, ("convd", server.address, USER))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    wanted = {args.scenario}
    if args.scenario == "all":
        wanted = set(ALL)
    elif args.scenario == "set_draft":
        wanted = {"latency", "throughput"}

    began = time.monotonic()
    print(f"convd benchmark ({'quick' if args.quick else 'full'} run): {_environment()}")
    idle = idle_check()
    print(f"machine {idle:.0f} % busy just before the start", end="")
    print(" (NOT idle: expect noisy results)" if idle > OTHER_LOAD_LIMIT else "")
    root = Path(tempfile.mkdtemp(prefix="cvb-", dir="/tmp"))
    root.chmod(0o700)
    run = Run(args, root)
    failed = False
    try:
        run.start_servers(wanted)
        run.measure(wanted)
    except BenchError as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        failed = True
    finally:
        if not run.stop_servers():
            failed = True
        shutil.rmtree(root, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(run.summary(), indent=2) + "\n")
    idle = idle_check()
    outcome = "FAILED" if failed else "daemon stopped (SIGTERM, exit 0)"
    print(f"machine {idle:.0f} % busy just after the end")
    print(f"total {time.monotonic() - began:.1f} s; {outcome}; {root} removed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
