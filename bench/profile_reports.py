"""Where a report's time goes, in-process: CPU per `POST /api/v1/proposals` against
the trivial authenticated endpoint (`POST /api/bench/noop`), measured alike in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python -m bench.profile_reports [--n=1000] [--top=40] [--worker-class=rq.worker.SimpleWorker] [--keep]

Creates its own database (BENCH_DB_PREFIX + `_reports_profile`), migrates it and adds
the two rules bench/gate.py adds and an API key, then, with DEBUG off and the gate
benchmark's settings (bench.gate_settings), posts through Django's test client:
N noop calls and N markdown reports built as bench/gate.py builds them (every tenth
held, so it opens a case), alternating in blocks so that noise hits both alike.
Prints, per request: CPU ms of this process (time.process_time) and of its
PostgreSQL backend (from /proc: the server must run on this machine), and wall ms;
the ratio; the SQL statements of a noop, an allowed and a held report
(CaptureQueriesContext); what draining the jobs the reports enqueued costs an
`rqworker --burst` (the bench's worker: a forked work horse per job; pass
--worker-class=rq.worker.SimpleWorker to see the same jobs without forks); then a
cProfile list of N more reports. Also: what authenticating the key costs alone
(both requests do it), and the statements of one `reviews.jobs.case_opened` job,
run in this process on the last case. The bench gate's 20,000 finished tasks are left
out: no rule that reports meet reads them. The machine is shared: compare figures
of one run, not across runs.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
import time

from bench.common import ROOT, bench_db, log, options, own_database, postgres_url_or_none, process_cpu

BENCH_DB = bench_db("reports_profile")
BLOCK = 50  # requests per block; noop and report blocks alternate


def configure(bench_url: str) -> None:
    os.environ.update({
        "DATABASE_URL": bench_url,
        "DJANGO_SETTINGS_MODULE": "bench.gate_settings",
        "DEBUG": "0",
        "SECRET_KEY": "bench-profile-not-a-real-secret-0123456789",
        "AUDIT_CHAIN_KEY": "bench-profile-audit-chain-key-not-a-real-one-0123456789",
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        "API_RATE_LIMIT_REQUESTS": "0",
        "DB_CONN_MAX_AGE": "600",
        "PYTHONWARNINGS": "ignore::UserWarning",
    })  # fmt: skip
    import django

    django.setup()


def setup() -> str:
    """Migrate, add bench/gate.py's two rules, create its API key; returns the secret."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from reviews.models import PolicyRule
    from tasks.services import api_key_create

    call_command("migrate", verbosity=0)
    PolicyRule.objects.create(name="blocked-customer", priority=5, customers=["blocked-co"], action="deny")
    PolicyRule.objects.create(
        name="experimental-models", priority=6, ai_model_glob="exp-*", metric="failure_rate",
        metric_threshold=0.2, metric_window=50, action="hold",
    )  # fmt: skip
    agent = get_user_model().objects.create_user(username="bench-agent")
    _key, secret = api_key_create(name="bench", owner=agent, scopes=["tasks", "reports", "read"])
    return secret


def measure(n: int, top: int, worker_class: str = "") -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.gate import report_markdown

    secret = setup()
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    state = {"i": 0, "posted": 0}

    def noop():
        response = client.post("/api/bench/noop", b"{}", content_type="application/json", **auth)
        assert response.status_code == 200, response.content

    def report():
        i = state["i"]
        state["i"] += 1
        state["posted"] += 1
        response = client.post(
            "/api/v1/proposals", report_markdown(f"bench-report-{i}", i), content_type="text/markdown", **auth
        )
        assert response.status_code == 201, response.content

    for _ in range(30):  # warm-up: connection, rule caches, imports
        noop()
        report()
    # Round trips: one allowed report, one held one (every tenth: i % 10 == 0).
    queries = {}
    for name, fn in (("noop", noop), ("report (allowed)", report), ("report (held)", report)):
        if fn is report:  # skip ids to the next one that is held (a multiple of ten) or not
            held = name.endswith("(held)")
            while (state["i"] % 10 == 0) != held:
                state["i"] += 1
        with CaptureQueriesContext(connection) as captured:
            fn()
        queries[name] = [q["sql"] for q in captured.captured_queries]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    import django_rq

    queue = django_rq.get_queue("default")
    queue.empty()  # this run's jobs only (the warm-up's too)
    state["posted"] = 0
    totals = {name: {"cpu": 0.0, "wall": 0.0, "db": 0.0} for name in ("noop", "report")}
    profiler = cProfile.Profile(time.process_time)
    for profiled in (False, True):
        done = 0
        while done < n:
            block = min(BLOCK, n - done)
            for name, fn in (("noop", noop), ("report", report)):
                if profiled and name == "report":
                    profiler.enable()
                    for _ in range(block):
                        fn()
                    profiler.disable()
                    continue
                if profiled:
                    continue
                db = process_cpu(backend)[1]
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(block):
                    fn()
                totals[name]["cpu"] += time.process_time() - cpu
                totals[name]["wall"] += time.perf_counter() - wall
                totals[name]["db"] += process_cpu(backend)[1] - db
            done += block
    per = {name: {k: v / n for k, v in t.items()} for name, t in totals.items()}
    log(f"{n} requests each through Django's test client, DEBUG off, PostgreSQL {connection.pg_version}")
    log("| request | CPU ms (this process) | PostgreSQL backend CPU ms | wall ms |")
    log("|---|---|---|---|")
    for name, p in per.items():
        log(f"| {name} | {p['cpu'] * 1000:.2f} | {p['db'] * 1000:.2f} | {p['wall'] * 1000:.2f} |")
    ratio = per["report"]["cpu"] / per["noop"]["cpu"]
    both = (per["report"]["cpu"] + per["report"]["db"]) / (per["noop"]["cpu"] + per["noop"]["db"])
    log(f"report / noop CPU: {ratio:.2f} in this process, {both:.2f} with the database backend's "
        "(300 reports/s at noop's 628-734 req/s needs <= ~2.2)")  # fmt: skip
    # What both requests spend authenticating the key (tasks.auth; the same for each), alone.
    from tasks.auth import find_active_key

    cpu = time.process_time()
    for _ in range(n):
        find_active_key(secret)
    log(f"of which authenticating the key (tasks.auth.find_active_key, in both): "
        f"{(time.process_time() - cpu) / n * 1000:.2f} ms")  # fmt: skip
    # One case_opened job's statements, run here on the last held report's case (the worker
    # runs it again below: it is safe to run twice, and sends nothing the second time).
    from reviews import jobs
    from reviews.models import Case

    case_id = Case.objects.order_by("-pk").values_list("pk", flat=True).first()
    with CaptureQueriesContext(connection) as captured:
        jobs.case_opened(case_id)
    queries["job reviews.jobs.case_opened (in this process)"] = [q["sql"] for q in captured.captured_queries]
    # The jobs the reports enqueued (held ones: a case's notification and quorum check), drained
    # as the bench's rqworker would (a forked work horse per job), outside the measured requests.
    jobs = queue.count
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    worker_class = ["--worker-class", worker_class] if worker_class else []
    subprocess.run([sys.executable, "manage.py", "rqworker", "default", "--burst", *worker_class], cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    posted = state["posted"]
    log(f"rqworker --burst {' '.join(worker_class)}: {jobs} jobs for {posted} reports in "
        f"{time.perf_counter() - wall:.1f} s, {worker * 1000:.0f} ms CPU (its forks included, not its database "
        f"backends; about 1.6 s of it is starting): {worker * 1000 / max(jobs, 1):.1f} ms per job, "
        f"{worker * 1000 / posted:.2f} ms per report")  # fmt: skip
    for name, sqls in queries.items():
        log(f"\n{name}: {len(sqls)} SQL statements")
        for sql in sqls:
            log(f"  {sql[:160]}")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    log(out.getvalue())


def main(argv: list[str]) -> int:
    opts = options(argv)
    url = postgres_url_or_none("profile_reports")
    if url is None:
        return 2
    with own_database(url, BENCH_DB, keep="--keep" in argv) as bench_url:
        configure(bench_url)
        measure(int(opts.get("n", 1000)), int(opts.get("top", 40)), opts.get("worker-class", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
