"""What every benchmark shares: its own PostgreSQL database, output, timing,
and the servers it starts (each stopped, by PID, when the benchmark ends)."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def bench_db(name: str) -> str:
    """The benchmark's own database name: `fsar_bench_<name>`, or BENCH_DB_PREFIX + `_<name>`
    (so that several people on one server each drop only their own)."""
    return f"{os.environ.get('BENCH_DB_PREFIX', 'fsar_bench')}_{name}"


def log(message: str) -> None:
    print(message, flush=True)


def options(argv: list[str]) -> dict[str, str]:
    """`--name=value` arguments as a dict (flags without a value are left to the caller)."""
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def postgres_url_or_none(name: str, *, needs_redis: bool = False) -> str | None:
    """DATABASE_URL when it is PostgreSQL (and REDIS_URL is set, if needed); otherwise say why and return None."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")) and (os.environ.get("REDIS_URL") or not needs_redis):
        return url
    needs = "DATABASE_URL=postgres://… (any database on the server; it creates its own)"
    log(f"bench {name} needs {needs}" + (" and REDIS_URL" if needs_redis else ""))
    return None


@contextmanager
def own_database(url: str, name: str, *, keep: bool = False) -> Iterator[str]:
    """Create database `name` on the server of `url` (dropping a leftover one), yield
    its URL, and drop it afterwards unless `keep`."""
    import psycopg

    server = urlparse(url)
    admin_dsn = (
        f"host={server.hostname or '127.0.0.1'} port={server.port or 5432} "
        f"user={server.username or 'postgres'} dbname=postgres"
    )
    if server.password:
        admin_dsn += f" password={server.password}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield server._replace(path=f"/{name}").geturl()
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # Django may not be set up in this process
            pass
        if not keep:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def autovacuum_on(env: dict) -> Iterator[str]:
    """Autovacuum as production runs it, for the length of a long benchmark. CI machines
    run PostgreSQL with `autovacuum = off` (a conf.d file: tests create and drop databases,
    nothing lives long), and then every update's dead row stays: the task rows (four
    versions each), the rollup rows the drain rewrites every ten seconds, the pending
    index; a soak would measure that bloat, which no deployment has. When the server's
    autovacuum is off this turns it on (ALTER SYSTEM, reload) and resets it afterwards;
    yields what it found and did, for the log."""
    with bench_connection(env) as conn:
        was = conn.execute("SHOW autovacuum").fetchone()[0]
    if was == "on":
        yield "autovacuum on (as the server runs)"
        return
    with bench_connection(env) as conn:
        conn.autocommit = True
        conn.execute("ALTER SYSTEM SET autovacuum = on")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield "autovacuum turned on for the run (the server had it off; reset afterwards)"
    finally:
        with bench_connection(env) as conn:
            conn.autocommit = True
            conn.execute("ALTER SYSTEM RESET autovacuum")
            conn.execute("SELECT pg_reload_conf()")


@contextmanager
def started_processes() -> Iterator[list[subprocess.Popen]]:
    """A list to append started servers to; each is stopped (TERM, then KILL) at exit."""
    processes: list[subprocess.Popen] = []
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


# As docs/deployment.md runs them: background workers below the web processes'
# CPU priority, so that answering (gate decisions, webhook acknowledgements) comes first.
WORKER_NICE = 10


def rqworker(env: dict, nice: int = WORKER_NICE) -> subprocess.Popen:
    """Start `manage.py rqworker default` at CPU priority `nice` (0: the web processes')."""
    command = [sys.executable, "manage.py", "rqworker", "default"]
    if nice:
        command = ["nice", "-n", str(nice), *command]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def bench_connection(env: dict):
    """A psycopg connection to the benchmark's database (env["DATABASE_URL"])."""
    import psycopg

    u = urlparse(env["DATABASE_URL"])
    return psycopg.connect(host=u.hostname, port=u.port or 5432, user=u.username, dbname=u.path[1:])


def checkpoint_stats(env: dict) -> tuple[int, float, int]:
    """PostgreSQL's checkpoints begun so far (timed and requested), the time spent in
    their sync phases (ms): a sync is what stalls commits, so a change in it tells that a
    checkpoint ended meanwhile; and the number of WAL segment files in pg_wal.

    A rise in the segment count means PostgreSQL created new segments meanwhile instead of
    reusing ones a checkpoint recycled: with `wal_init_zero` (the default) the backend that
    needs one writes 16 MB of zeros and syncs them while holding the WAL write lock, and
    every commit waits (44–95 ms each on this machine kind, 2026-12-01, against a 2 ms
    median commit: docs/deployment.md, "WAL segments")."""
    with bench_connection(env) as conn:
        row = conn.execute(
            "SELECT checkpoints_timed + checkpoints_req, checkpoint_sync_time, "
            "(SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$') FROM pg_stat_bgwriter"
        ).fetchone()
    return int(row[0]), float(row[1]), int(row[2])


class CommitProbe:
    """The disk's share of a commit's latency, watched while a benchmark runs: a thread
    that commits one tiny row every `every` seconds on its own connection, durably (as
    the app's commits are), and keeps each commit's start and latency.

    A commit waits for PostgreSQL's WAL flush, and on a shared machine the flush can
    stall for hundreds of milliseconds with nothing else running (2026-12-01: 10 stalls
    over 100 ms a minute on an idle machine, the worst 0.75 s, with synchronous_commit off
    none over 5 ms: docs/benchmarks.md). Every request that commits then waits, whatever
    its code does; requests that do not commit (the trivial endpoint) do not.
    `stalls(windows)` says how much of a phase (its time windows) the disk stalled, so a
    slow phase can be told from a slow request path. About 50 commits a second: a few percent of one core."""

    def __init__(self, env: dict, every: float = 0.02, stall_ms: float = 25.0) -> None:
        import threading

        self.env, self.every, self.stall_ms = env, every, stall_ms
        self.commits: list[tuple[float, float]] = []  # (time.monotonic() at start, ms)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-probe", daemon=True)

    def __enter__(self) -> CommitProbe:
        with bench_connection(self.env) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (id bigserial PRIMARY KEY, at timestamptz)")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with bench_connection(self.env) as conn:
            conn.autocommit = True
            while not self._stop.is_set():
                began = time.monotonic()
                conn.execute("INSERT INTO bench_commit_probe (at) VALUES (now())")
                self.commits.append((began, (time.monotonic() - began) * 1000))
                self._stop.wait(self.every)

    def stalls(self, windows: list[tuple[float, float]]) -> dict:
        """Over the time windows (time.monotonic() pairs): the probe's commits, how many
        took `stall_ms` or more, their summed time, and the worst."""
        inside = [ms for at, ms in self.commits if any(t0 <= at < t1 for t0, t1 in windows)]
        slow = [ms for ms in inside if ms >= self.stall_ms]
        return {
            "commits": len(inside),
            "stalls": len(slow),
            "stalled_ms": sum(slow),
            "worst_ms": max(inside, default=0),
        }

    def describe(self, windows: list[tuple[float, float]]) -> str:
        s = self.stalls(windows)
        seconds = sum(t1 - t0 for t0, t1 in windows)
        return (
            f"{s['stalls']} of the probe's {s['commits']} commits took {self.stall_ms:.0f} ms or more "
            f"({s['stalled_ms']:.0f} ms in all, {s['stalled_ms'] / 10 / max(seconds, 1e-9):.1f}% of "
            f"{seconds:.0f} s; worst {s['worst_ms']:.0f} ms)"
        )


def force_checkpoint(env: dict) -> float:
    """Write out what the setup dirtied now (a CHECKPOINT, as the superuser the bench
    connects as), so that a timed checkpoint does not flush the setup's bulk loads during
    the measurement, stalling every commit while it syncs (the soak saw 0.3–0.9 s);
    returns the seconds it took."""
    began = time.perf_counter()
    with bench_connection(env) as conn:
        conn.execute("CHECKPOINT")
    return time.perf_counter() - began


def drain(env: dict, timeout: float = 60) -> tuple[int, int]:
    """Wait until the RQ queue is empty and no job is running, `timeout` seconds at most;
    returns the jobs waiting or running before, and those left at the end (0 unless it
    timed out)."""
    import redis
    from rq import Queue

    queue = Queue("default", connection=redis.Redis.from_url(env["REDIS_URL"]))

    def jobs() -> int:
        return queue.count + queue.started_job_registry.count

    waiting = left = jobs()
    began = time.perf_counter()
    while left and time.perf_counter() - began < timeout:
        time.sleep(0.05)
        left = jobs()
    return waiting, left


def settle(env: dict, timeout: float = 120, before: str = "the paced load") -> None:
    """Wait until the RQ queue is empty and no job is running, then write out what was
    written before with a CHECKPOINT (force_checkpoint); log what was waiting, how long
    it took, and any autovacuum at work on the bench's database then."""
    began = time.perf_counter()
    waiting, left = drain(env, timeout)
    with bench_connection(env) as conn:
        vacuums = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        ).fetchone()[0]
    log(
        f"before {before}: {waiting} jobs queued or running, drained in "
        f"{time.perf_counter() - began:.1f} s ({left} left); autovacuum workers at work: {vacuums}; "
        f"a CHECKPOINT of what was written before it took {force_checkpoint(env):.1f} s"
    )


def cpu_profile(run: Callable[[], object], opts: dict[str, str]) -> None:
    """A cProfile top list of `run()` on stderr, timed in this process's CPU (as the
    profile_* scripts' figures): --sort=tottime|cumulative, --top=N."""
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats(opts.get("sort", "tottime")).print_stats(int(opts.get("top", 40)))


def pg_version(env: dict) -> str:
    with bench_connection(env) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


_GIVEN_PORTS: set[int] = set()  # handed out in this run: the first may not listen yet


def free_port() -> int:
    """A free loopback port: from BENCH_PORTS (`first-last`; BENCH_PORT_RANGE is the same) when
    set, else any the system gives."""
    span = os.environ.get("BENCH_PORTS") or os.environ.get("BENCH_PORT_RANGE") or ""
    first, _, last = span.partition("-")
    for candidate in range(int(first), int(last or first) + 1) if span else ():
        if candidate in _GIVEN_PORTS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            _GIVEN_PORTS.add(candidate)
            return candidate
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    index = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def median_ms(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of `fn` in ms over `runs` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def alternating_medians_ms(calls: dict[str, tuple[Callable[[], object], int]], rounds: int) -> dict[str, float]:
    """Median wall time in ms of each named call, the calls alternating: `rounds` rounds,
    each making every call its given number of times in turn, after one warm-up call each.
    A baseline and what is divided by it then see the same moments of a noisy host (timed
    one after the other, a 7-day raw query's median moved by a third between runs while
    the calls timed after it did not)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn, _ in calls.values():
        fn()
    for _ in range(rounds):
        for name, (fn, per_round) in calls.items():
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int, *, reaped_children: bool = False) -> tuple[str, float]:
    """A process's name and the CPU seconds it used so far (user + system; with
    `reaped_children`, plus those of its children it waited for), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    used = fields[11:15] if reaped_children else fields[11:13]  # utime, stime[, cutime, cstime]
    return comm, sum(int(x) for x in used) / CLOCK_TICKS
