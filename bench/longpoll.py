"""The decision long-poll with many waiting clients, under gunicorn gthread, PostgreSQL and Redis.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python -m bench longpoll [--clients=200] [--workers=2] [--threads=128] [--pool=4] [--rate=20] \\
        [--keep]

Creates its own database (fsar_bench_longpoll) and, through the services, N
held tasks each waiting on its own committee case (N FSAR reports of severity
30) and N more all waiting on one case. Starts gunicorn as docs/deployment.md
runs the long-poll (gthread worker class, a pool of --pool database connections
per worker: DB_POOL_MAX_SIZE, DEBUG off) and an
rqworker at nice 10 (the decisions' notification jobs). Then:

1. N clients (one connection each, started 10 ms apart) long-poll
   `GET /api/v1/tasks/{id}/decision?wait=60` on the first N tasks. Once all wait,
   it counts this database's connections in pg_stat_activity for 3 s.
2. A separate process decides the N cases one after another (`case_decide`,
   approved) at --rate per second; each client's wake-up is measured from its
   case's commit (the first moment a client may learn of it).
3. N clients wait on the second N tasks, and one decision of their shared case
   releases all of them at once: the burst.

Reports connections held while waiting and while deciding, and the wake-up
latency p50/p99/max per phase (goal: every client within 1 s of its decision).
Drops the database at the end unless --keep.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench.common import (
    ROOT,
    WORKER_NICE,
    bench_connection,
    bench_db,
    free_port,
    log,
    options,
    own_database,
    percentile,
    pg_version,
    postgres_url_or_none,
    rqworker,
    started_processes,
    wait_for,
)

BENCH_DB = bench_db("longpoll")
WAIT_SECONDS = 60


def report_markdown(report_id: str) -> bytes:
    return (
        f"# FSAR Proposal Report\n- id: {report_id}\n- timestamp: 2026-11-30T10:00:00Z\n- severity: 30\n"
        f"- block_execution: false\n- proposal:\n\nimplement_idea: long-poll benchmark {report_id}\n\n"
        "## Risks\n- slow failure\n\n## Mitigations\n- audits\n"
    ).encode()


def in_django(env: dict, call: str) -> str:
    """Run `call` (an expression over this module) in a process with Django set up; its stdout."""
    code = f"import django; django.setup()\nfrom bench import longpoll\nlongpoll.{call}"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return out.stdout


def seed(clients: int) -> None:
    """(In the Django process.) Migrate; a committee member and an API key; `clients`
    tasks each held on its own case, and `clients` more held on one shared case."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection

    from core.roles import COMMITTEE
    from reviews import services
    from tasks.services import Actor, api_key_create, task_register

    call_command("migrate", verbosity=0)
    member = get_user_model().objects.create_user(username="bench-member")
    member.groups.add(Group.objects.get_or_create(name=COMMITTEE)[0])
    agent = get_user_model().objects.create_user(username="bench-agent")
    key, secret = api_key_create(name="bench", owner=agent, scopes=["tasks", "reports"])
    actor = Actor.for_key(key)

    def held(external_id: str, report_id: str) -> int:
        task, _ = task_register(
            actor=actor, external_id=external_id, task_type="implement_idea", proposal_ref=report_id
        )
        assert task.status == "held", task.gate_reason
        return task.pk

    def case_of(report_id: str) -> int:
        return services.report_ingest(raw=report_markdown(report_id), api_key=key).report.case_id

    one_each = []
    for i in range(clients):
        case = case_of(f"r-each-{i}")  # the report first: a task naming an unknown report is refused
        one_each.append([held(f"each-{i}", f"r-each-{i}"), case])
    shared = case_of("r-shared")
    burst = [held(f"shared-{i}", "r-shared") for i in range(clients)]
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(json.dumps({"secret": secret, "one_each": one_each, "shared_case": shared, "burst": burst}))


def decide_cases(cases: list[int], rate: float) -> None:
    """(In the Django process.) Approve `cases` one after another at `rate`/s, printing
    `[case, wall time before, at the commit, after]` for each."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from reviews import services

    member = get_user_model().objects.get(username="bench-member")
    start = time.monotonic() + 0.2
    for i, case_id in enumerate(cases):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        committed = []
        before = time.time()
        with transaction.atomic():
            # Registered first, so it runs first after the commit: the moment clients may learn of it.
            transaction.on_commit(lambda stamps=committed: stamps.append(time.time()))
            services.case_decide(case_id=case_id, decision="approved", by=member, rationale="Benchmark: approved.")
        print(json.dumps([case_id, before, committed[0], time.time()]), flush=True)


def decide(env: dict, cases: list[int], rate: float) -> dict[int, tuple[float, float, float]]:
    """Decide `cases` in a separate process at `rate`/s; {case: (wall clock before the decision,
    at its commit, after it returned)}."""
    out = in_django(env, f"decide_cases({cases!r}, {rate!r})")
    lines = [line for line in out.splitlines() if line.startswith("[")]
    return {case: (before, committed, after) for case, before, committed, after in map(json.loads, lines)}


async def long_poll(port: int, task_id: int, secret: str) -> tuple[float, dict, int]:
    """Long-poll one task until it is not held; (wall time of the answer, its JSON, polls made)."""
    polls = 0
    while True:
        polls += 1
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /api/v1/tasks/{task_id}/decision?wait={WAIT_SECONDS} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {secret}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        data = await reader.read()
        answered = time.time()
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"task {task_id}: {head[:200]!r} {body[:300]!r}")
        answer = json.loads(body)
        if answer["status"] != "held":
            return answered, answer, polls


def connection_count(env: dict, database: str) -> tuple[int, dict[str, int]]:
    """This database's connections other than the counting one: total and by state."""
    with bench_connection(env) as conn:
        rows = conn.execute(
            "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() GROUP BY 1",
            [database],
        ).fetchall()
    by_state = {state: n for state, n in rows}
    return sum(by_state.values()), by_state


class ConnectionSampler:
    """Samples connection_count every 0.1 s in a thread until stopped."""

    def __init__(self, env: dict, database: str) -> None:
        self.env, self.database = env, database
        self.samples: list[tuple[int, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(connection_count(self.env, self.database))
            self._stop.wait(0.1)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        totals = [total for total, _ in self.samples]
        busiest = max(self.samples, key=lambda s: s[0])[1]
        return (
            f"max {max(totals)}, mean {sum(totals) / len(totals):.1f} over {len(totals)} samples "
            f"(busiest sample by state: {busiest})"
        )


async def phase(
    port: int, secret: str, task_ids: list[int], waiting_ready: Callable[[], None]
) -> list[tuple[float, dict, int]]:
    """Start one long-poll per task (10 ms apart), call `waiting_ready()` in a thread once all
    are sent and settled, and return every client's (answer time, answer, polls)."""
    polls = []
    for task_id in task_ids:
        polls.append(asyncio.ensure_future(long_poll(port, task_id, secret)))
        await asyncio.sleep(0.01)
    await asyncio.sleep(2.0)  # every request has reached its wait
    if any(p.done() for p in polls):
        raise RuntimeError("a client was answered before any decision: " + repr([p for p in polls if p.done()][:1]))
    await asyncio.get_running_loop().run_in_executor(None, waiting_ready)
    return await asyncio.gather(*polls)


def latencies_ms(results, task_decided: dict[int, float]) -> list[float]:
    return sorted((answered - task_decided[answer["task_id"]]) * 1000 for answered, answer, _ in results)


def describe(name: str, values: list[float], results) -> str:
    late = sum(1 for v in values if v > 1000)
    extra_polls = sum(polls - 1 for _, _, polls in results)
    return (
        f"| {name} | {len(values)} | {percentile(values, 50):.0f} | {percentile(values, 99):.0f} | "
        f"{max(values):.0f} | {late} | {extra_polls} |"
    )


def main(argv: list[str]) -> int:
    opts = options(argv)
    clients = int(opts.get("clients", 200))
    workers = int(opts.get("workers", 2))
    threads = int(opts.get("threads", 128))
    pool = int(opts.get("pool", 4))
    rate = float(opts.get("rate", 20))
    url = postgres_url_or_none("longpoll", needs_redis=True)
    if url is None:
        return 2
    with own_database(url, BENCH_DB, keep="--keep" in argv) as bench_url, started_processes() as processes:
        env = {
            **os.environ,
            "DATABASE_URL": bench_url,
            "DJANGO_SETTINGS_MODULE": "fsar.settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-longpoll-not-a-real-secret-0123456789",
            "AUDIT_CHAIN_KEY": "bench-longpoll-audit-chain-key-not-a-real-one-0123456789",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",  # plain HTTP on the loopback
            "LOG_LEVEL": "WARNING",
            "API_RATE_LIMIT_REQUESTS": "0",
            "DB_CONN_MAX_AGE": "0",
            "PYTHONWARNINGS": "ignore::UserWarning",
        }
        return run(env, processes, clients=clients, workers=workers, threads=threads, pool=pool, rate=rate)


def run(env: dict, processes: list, *, clients: int, workers: int, threads: int, pool: int, rate: float) -> int:
    load_before = os.getloadavg()
    log(f"setting up {BENCH_DB}: {2 * clients} held tasks, {clients + 1} cases …")
    data = json.loads(in_django(env, f"seed({clients})").strip().splitlines()[-1])
    secret = data["secret"]
    port = free_port()
    gunicorn = [sys.executable, "-m", "gunicorn", "fsar.wsgi", "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    gunicorn += ["--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads)]
    gunicorn += ["--no-control-socket"]  # one path per user (~/.gunicorn): others' servers may use it
    # As docs/deployment.md runs the long-poll: threads share a small connection pool per process.
    processes.append(subprocess.Popen(gunicorn, cwd=ROOT, env={**env, "DB_POOL_MAX_SIZE": str(pool)}))
    processes.append(rqworker(env))
    wait_for(port)
    baseline, _ = connection_count(env, BENCH_DB)
    waiting: dict[str, str] = {}
    deciding: dict[str, str] = {}
    decided: dict[int, tuple[float, float, float]] = {}

    def then_decide(name: str, cases: list[int]) -> Callable[[], None]:
        def step() -> None:
            with ConnectionSampler(env, BENCH_DB) as sampler:
                time.sleep(3)
            waiting[name] = sampler.summary()
            with ConnectionSampler(env, BENCH_DB) as sampler:
                decided.update(decide(env, cases, rate))
            deciding[name] = sampler.summary()

        return step

    one_each = {task: case for task, case in data["one_each"]}
    log(f"phase 1: {clients} clients wait, then {clients} cases are decided one by one at {rate:g}/s …")
    first = asyncio.run(phase(port, secret, list(one_each), then_decide("each", list(one_each.values()))))
    first_latency = latencies_ms(first, {task: decided[case][1] for task, case in one_each.items()})
    log(f"phase 2: {clients} clients wait on one case, then its decision releases them all at once …")
    shared = data["shared_case"]
    second = asyncio.run(phase(port, secret, data["burst"], then_decide("burst", [shared])))
    shared_before, shared_committed, shared_after = decided[shared]
    second_latency = latencies_ms(second, {task: shared_committed for task in data["burst"]})

    load_after = os.getloadavg()
    log(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"PostgreSQL {pg_version(env)}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average (1, 5, 15 min) "
        f"{' '.join(f'{x:.1f}' for x in load_before)} before, {' '.join(f'{x:.1f}' for x in load_after)} after"
    )
    log(
        f"gunicorn gthread: {workers} workers x {threads} threads, "
        + (f"a pool of at most {pool} database connections per worker" if pool else "no pool (a connection per thread)")
        + f"; 1 rqworker at nice {WORKER_NICE}; this database's connections before the clients: {baseline}"
    )
    log(f"connections while {clients} clients wait (one case each): {waiting['each']}")
    log(f"connections while deciding {clients} cases at {rate:g}/s: {deciding['each']}")
    log(f"connections while {clients} clients wait (one shared case): {waiting['burst']}")
    log(f"connections while deciding the shared case: {deciding['burst']}")
    commit_ms, announce_ms = (shared_committed - shared_before) * 1000, (shared_after - shared_committed) * 1000
    log(
        f"the shared case's decision (releasing {clients} tasks) took {commit_ms:.0f} ms to commit, "
        f"{announce_ms:.0f} ms more to announce; wake-ups count from the commit"
    )
    log("| phase | clients | wake p50 ms | p99 ms | max ms | later than 1 s | extra polls |")
    log("|---|---|---|---|---|---|---|")
    log(describe(f"one case each, decided at {rate:g}/s", first_latency, first))
    log(describe("one case releasing all at once", second_latency, second))
    statuses = {answer["status"] for _, answer, _ in first + second}
    if statuses != {"registered"}:
        log(f"unexpected statuses: {statuses}")
        return 1
    return 0 if max(first_latency + second_latency) <= 1000 else 1
