"""CPU per request of the agent API's hot endpoints against the trivial one, in process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fsar_bench_reg_profile REDIS_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python -m bench.profile_api [--n=300] [--rounds=3] [--setup] [--profile=register] [--queries]

The wall-clock gate benchmark (bench/gate.py) is noisy on a shared machine; this
measures what each request costs the process itself (time.process_time), with
Django's test client, DEBUG off, against the database bench/gate.py loads (its
`setup_database`: six rules, 20,000 finished tasks, model versions approved, audits
on). The database named by DATABASE_URL is created and loaded when it does not
exist, or again with --setup; it is kept for the next run.

Each round runs, N times each: `POST /api/bench/noop` (the baseline: the same API
key, authenticated the same way), `POST /api/v1/tasks` (registration, through the
real gate), `POST /api/v1/tasks/{id}/start` on the tasks just registered (the
gate's re-check), then `/finish` on them. Rounds alternate so that noise hits all
alike; the report gives CPU ms per request (the best round's and the median's) and
each endpoint's ratio to noop as throughput (noop ms / endpoint ms), the figure
bench/gate.py's goal is stated in. Also the SQL statements one request of each makes,
and the CPU PostgreSQL's backend spent per request (its /proc/PID/schedstat, when the
server runs on this machine; 0 where it does not), with the ratio counting both, as
bench/gate.py's CPU figures do (which also count its clients and anything else).

--profile=NAME (noop, register, start, finish): a cProfile top list of that
endpoint over one more round of N requests (--sort=tottime|cumulative, --top=40).
--queries: print each endpoint's SQL.
The report also gives the CPU each request spent in Python's cyclic garbage collector
(gc.callbacks), and --gc-freeze calls gc.freeze() after the warm-up, as a gunicorn
master could before it forks a worker (the objects the project imported then never
scanned again; gunicorn.conf.py does not, as it measured to save nothing).
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import sys
import time
import uuid
from urllib.parse import urlparse

ENV = {
    "DJANGO_SETTINGS_MODULE": "bench.gate_settings",
    "DEBUG": "0",
    "SECRET_KEY": "bench-gate-not-a-real-secret-0123456789",
    "AUDIT_CHAIN_KEY": "bench-gate-audit-chain-key-not-a-real-one-0123456789",
    "ALLOWED_HOSTS": "127.0.0.1,testserver",
    "SECURE_SSL_REDIRECT": "0",
    "LOG_LEVEL": "WARNING",
    "API_RATE_LIMIT_REQUESTS": "0",
    "DB_CONN_MAX_AGE": "600",
    "PYTHONWARNINGS": "ignore::UserWarning",
}
MODELS = ["gpt-5.1", "claude-sonnet-5", "llama-4-70b", "exp-1"]
TASK_TYPES = ["implement_idea", "idea_implementation", "self_improvement"]
ENDPOINTS = ("noop", "register", "start", "finish")


def _admin_dsn(url: str) -> str:
    server = urlparse(url)
    dsn = f"host={server.hostname or '127.0.0.1'} port={server.port or 5432} user={server.username or 'postgres'}"
    return dsn + (f" password={server.password}" if server.password else "") + " dbname=postgres"


def ensure_database(url: str, *, again: bool) -> None:
    """Create and load the profile database (bench/gate.py's setup) unless it is there."""
    import psycopg

    from bench.common import log

    name = urlparse(url).path.lstrip("/")
    with psycopg.connect(_admin_dsn(url), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
        if exists and not again:
            return
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    from bench.gate import setup_database

    log(f"loading {name} as bench/gate.py does (a minute or two) …")
    setup_database({**os.environ, **ENV, "DATABASE_URL": url})


def main(argv: list[str]) -> int:
    from bench.common import cpu_profile, log, options

    opts = options(argv)
    n = int(opts.get("n", 300))
    rounds = int(opts.get("rounds", 3))
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        log("bench.profile_api needs DATABASE_URL=postgres://…/<a database of its own>")
        return 2
    ensure_database(url, again="--setup" in argv)
    os.environ.update(ENV)

    import django

    django.setup()

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tasks.services import api_key_create

    run = uuid.uuid4().hex[:8]
    owner = get_user_model().objects.get_or_create(username="bench-profile")[0]
    _, secret = api_key_create(name=f"profile-{run}", owner=owner, scopes=["tasks", "read"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    counter = iter(range(10**9))
    registered: list[int] = []
    to_start: list[int] = []
    to_finish: list[int] = []
    finish_body = {"outcome": "succeeded", "cost_micros": 1200, "tokens": 900}

    def expect(response, *statuses):
        if response.status_code not in statuses:
            raise SystemExit(f"{response.status_code}: {response.content[:500]!r}")
        return response

    def noop():
        expect(client.post("/api/bench/noop", {}, content_type="application/json"), 200)

    def register():
        i = next(counter)
        body = {
            "external_id": f"profile-{run}-{i}",
            "task_type": TASK_TYPES[i % 3],
            "ai_model": MODELS[i % len(MODELS)],
            "customer": f"cust-{i % 7}",
        }
        answer = expect(client.post("/api/v1/tasks", body, content_type="application/json"), 201).json()
        if answer["status"] != "registered":
            raise SystemExit(f"registration not allowed: {answer['gate']}")
        registered.append(answer["id"])

    def start():
        task_id = to_start.pop()
        expect(client.post(f"/api/v1/tasks/{task_id}/start"), 200)
        to_finish.append(task_id)

    def finish():
        task_id = to_finish.pop()
        expect(client.post(f"/api/v1/tasks/{task_id}/finish", finish_body, content_type="application/json"), 200)

    calls = {"noop": noop, "register": register, "start": start, "finish": finish}

    in_gc = [0.0, 0.0]  # CPU seconds in the collector so far; when the current collection began

    def collecting(stage: str, _info: dict) -> None:
        if stage == "start":
            in_gc[1] = time.process_time()
        else:
            in_gc[0] += time.process_time() - in_gc[1]

    gc.callbacks.append(collecting)
    gc_ms: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
    pg_ms: dict[str, list[float]] = {name: [] for name in ENDPOINTS}

    def backend() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    def backend_cpu(pid: int) -> float:
        """CPU seconds PostgreSQL's backend `pid` (on this machine) has run, from the
        scheduler's nanosecond count (0 where /proc does not show it)."""
        try:
            with open(f"/proc/{pid}/schedstat") as stat:
                return int(stat.read().split()[0]) / 1e9
        except OSError:
            return 0.0

    def phase(name: str, count: int) -> float:
        """CPU ms per request of `count` requests of one endpoint (and, in gc_ms, the
        collector's share of it)."""
        if name == "start":
            to_start[:] = registered[-count:]
        call = calls[name]
        pid = backend()
        pg_before = backend_cpu(pid)
        gc_before = in_gc[0]
        began = time.process_time()
        for _ in range(count):
            call()
        spent = time.process_time() - began
        gc_ms[name].append((in_gc[0] - gc_before) * 1000 / count)
        # The same backend throughout (the connection is kept: DB_CONN_MAX_AGE), or no figure.
        pg_ms[name].append((backend_cpu(pid) - pg_before) * 1000 / count if backend() == pid else math.nan)
        return spent * 1000 / count

    for name in ENDPOINTS:  # warm-up: imports, caches, the connection
        phase(name, 20)
    if "--gc-freeze" in argv:
        gc.freeze()
    queries = {}
    for name in ENDPOINTS:
        if name == "start":
            to_start[:] = registered[-1:]
        with CaptureQueriesContext(connection) as captured:
            calls[name]()
        queries[name] = [q["sql"] for q in captured.captured_queries]

    figures: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
    for series in (*gc_ms.values(), *pg_ms.values()):
        series.clear()
    for _ in range(rounds):
        for name in ENDPOINTS:
            figures[name].append(phase(name, n))

    log(f"{rounds} rounds of {n} requests each, CPU ms per request (process_time; Django test client, DEBUG off)")
    log(f"gc.freeze() after the warm-up: {'yes' if '--gc-freeze' in argv else 'no'}")
    log(
        "| endpoint | best ms | median ms | of which GC (median) | SQL statements "
        "| ratio to noop (best) | ratio (median) | PostgreSQL ms (median) | with it: ratio (median) |"
    )
    log("|---|---|---|---|---|---|---|---|---|")
    noop_best, noop_median = min(figures["noop"]), statistics.median(figures["noop"])
    both = {name: [py + pg for py, pg in zip(figures[name], pg_ms[name], strict=True)] for name in ENDPOINTS}
    for name in ENDPOINTS:
        best, median = min(figures[name]), statistics.median(figures[name])
        log(
            f"| {name} | {best:.3f} | {median:.3f} | {statistics.median(gc_ms[name]):.3f} | {len(queries[name])} | "
            f"{noop_best / best:.2f} | {noop_median / median:.2f} | {statistics.median(pg_ms[name]):.3f} | "
            f"{statistics.median(both['noop']) / statistics.median(both[name]):.2f} |"
        )
    log(
        "SUMMARY "
        + " ".join(f"{name}={statistics.median(figures[name]):.3f}ms" for name in ENDPOINTS)
        + " "
        + " ".join(f"{name}/noop={noop_median / statistics.median(figures[name]):.2f}" for name in ENDPOINTS[1:])
        + " pg "
        + " ".join(f"{name}={statistics.median(pg_ms[name]):.3f}ms" for name in ENDPOINTS)
        + " with pg "
        + " ".join(
            f"{name}/noop={statistics.median(both['noop']) / statistics.median(both[name]):.2f}"
            for name in ENDPOINTS[1:]
        )
    )
    if "--queries" in argv:
        for name in ENDPOINTS:
            log(f"-- {name}: {len(queries[name])} statements")
            for sql in queries[name]:
                log(f"   {sql[:300]}")

    profiled = opts.get("profile")
    if profiled:
        if profiled == "start":
            phase("register", n)
        elif profiled == "finish":
            phase("register", n)
            phase("start", n)
        cpu_profile(lambda: phase(profiled, n), opts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
