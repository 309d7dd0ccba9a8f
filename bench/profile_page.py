"""CPU per request of the operator metrics page against a plain page, in process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres BENCH_DB_PREFIX=page \\
        nice -n 19 .venv/bin/python -m bench.profile_page [--rows=N] [--setup] [--n=30] [--rounds=5]
        [--window=7d] [--profile] [--sort=tottime] [--top=40] [--html=PATH]

`bench metrics` times the page (wall clock) against the raw `percentile_cont` query
on a million tasks; on a shared machine that is noisy. This measures what one page
request costs the process itself (time.process_time, Django's test client, DEBUG
off, an operator logged in) on a database loaded as bench/metrics.py loads its own
(`generate`, COPY, `rollups.rebuild`), kept between runs as
BENCH_DB_PREFIX + `_profile_page` (created when missing, or again with --setup).

The page reads the rollups: an hour, six-hour and day row per type × model, and the
raw rows of the window's two partial edge hours, so its cost grows with the tasks
per hour only there (the default 1,000,000 rows over 30 days is bench metrics' own
density).

Each round runs, N times each, and alternating so that noise hits all alike:
`GET /healthz` (the baseline, "noop": the same middleware and session, `SELECT 1`
and a Redis ping, no template), `GET /tasks/held/` ("plain": a logged-in page of the
site layout, one small query), `GET /tasks/metrics/?window=<window>`, and
`metrics_overview` alone (the page's data without the view and template). Reported:
CPU ms per request (best round, median), the ratios to both baselines, statements
per request, and the
raw `percentile_cont` query's wall ms (bench metrics' denominator: the server's
work, not this process's). --profile: a cProfile list of the page over one more
round; --html=PATH writes the page's body (to compare before and after a change).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

ENV = {
    "DJANGO_SETTINGS_MODULE": "fsar.settings",
    # As `make bench` runs bench metrics: DEBUG on while the settings load (plain static
    # files storage, no collectstatic), then off (no query log).
    "DEBUG": "1",
    "SECRET_KEY": "bench-page-not-a-real-secret-0123456789",
    "AUDIT_CHAIN_KEY": "bench-page-audit-chain-key-not-a-real-one-0123456789",
    "ALLOWED_HOSTS": "127.0.0.1,testserver",
    "SECURE_SSL_REDIRECT": "0",
    "LOG_LEVEL": "WARNING",
    "DB_CONN_MAX_AGE": "600",
    "PYTHONWARNINGS": "ignore::UserWarning",
}


def _admin_dsn(url: str) -> str:
    server = urlparse(url)
    dsn = f"host={server.hostname or '127.0.0.1'} port={server.port or 5432} user={server.username or 'postgres'}"
    return dsn + (f" password={server.password}" if server.password else "") + " dbname=postgres"


def ensure_database(url: str, name: str, rows: int, *, again: bool) -> str:
    """The profile database's URL: created and loaded as bench/metrics.py loads its own,
    unless it is there already."""
    import psycopg

    from bench.common import log

    with psycopg.connect(_admin_dsn(url), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
        if not exists or again:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    own_url = urlparse(url)._replace(path=f"/{name}").geturl()
    os.environ.update(ENV)
    os.environ["DATABASE_URL"] = own_url
    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False
    if exists and not again:
        return own_url
    from django.core.management import call_command
    from django.db import connection

    from bench.metrics import copy_into, copy_text, generate
    from tasks import rollups

    log(f"loading {name}: {rows:,} tasks over 30 days, then the rollups (a few minutes) …")
    call_command("migrate", verbosity=0)
    now = datetime.now(UTC)
    connection.ensure_connection()
    copy_into(connection.connection, "execution_tasks", copy_text(generate(rows, now, prefix="bench-")))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE execution_tasks")
    # Up to a day ahead, so that the window ending "now" stays covered on later runs of the
    # same day (a later day's run misses its newest hours: load again with --setup).
    rollups.rebuild(now - timedelta(days=31), now + timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE tasks_metrics_rollup")
    return own_url


def main(argv: list[str]) -> int:
    from bench.common import bench_db, cpu_profile, log, options

    opts = options(argv)
    n = int(opts.get("n", 30))
    rounds = int(opts.get("rounds", 5))
    rows = int(opts.get("rows", 1_000_000))
    window = opts.get("window", "7d")
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        log("bench.profile_page needs DATABASE_URL=postgres://… (any database on the server; it creates its own)")
        return 2
    ensure_database(url, bench_db("profile_page"), rows, again="--setup" in argv)

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.metrics import raw_sql
    from core.roles import OPERATORS
    from tasks import metrics, metrics_display

    operator = get_user_model().objects.get_or_create(username="bench-page-operator", is_staff=True)[0]
    operator.groups.add(Group.objects.get_or_create(name=OPERATORS)[0])
    client = Client()
    client.force_login(operator)
    days = metrics_display.WINDOW_CHOICES[window][1]

    def noop():
        response = client.get("/healthz")
        assert response.status_code == 200, response.status_code

    def plain():
        response = client.get("/tasks/held/")
        assert response.status_code == 200, response.status_code

    def page():
        response = client.get("/tasks/metrics/", {"window": window})
        assert response.status_code == 200, response.status_code
        return response

    def overview():
        metrics_display.metrics_overview(window=metrics.default_window(datetime.now(UTC), days))

    calls = {"noop": noop, "plain": plain, "page": page, "overview": overview}

    def phase(call, count: int) -> float:
        began = time.process_time()
        for _ in range(count):
            call()
        return (time.process_time() - began) * 1000 / count

    for call in calls.values():  # warm-up: imports, template loading, the connection
        phase(call, 5)
    statements = {}
    for name, call in calls.items():
        with CaptureQueriesContext(connection) as captured:
            call()
        statements[name] = len(captured.captured_queries)
    if opts.get("html"):
        with open(opts["html"], "wb") as out:
            out.write(page().content)

    figures: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            figures[name].append(phase(call, n))

    until = datetime.now(UTC)
    sql, params = raw_sql(until - days, until)

    def raw():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            cursor.fetchall()

    raw()
    walls = []
    for _ in range(5):
        began = time.perf_counter()
        raw()
        walls.append((time.perf_counter() - began) * 1000)

    log(f"{rounds} rounds of {n} requests each, CPU ms per request (process_time; test client, as bench metrics)")
    log("| request | best ms | median ms | SQL statements | ratio to noop (median) | ratio to plain (median) |")
    log("|---|---|---|---|---|---|")
    noop_median = statistics.median(figures["noop"])
    plain_median = statistics.median(figures["plain"])
    for name, label in (("noop", "GET /healthz"), ("plain", "GET /tasks/held/"),
                        ("page", f"GET /tasks/metrics/?window={window}"),
                        ("overview", "metrics_overview alone")):  # fmt: skip
        best, median = min(figures[name]), statistics.median(figures[name])
        log(
            f"| {label} | {best:.2f} | {median:.2f} | {statements[name]} | {median / noop_median:.2f} "
            f"| {median / plain_median:.2f} |"
        )
    raw_ms = statistics.median(walls)
    page_median = statistics.median(figures["page"])
    log(
        f"SUMMARY page={page_median:.2f}ms noop={noop_median:.2f}ms page/noop={page_median / noop_median:.2f} "
        f"plain={plain_median:.2f}ms page/plain={page_median / plain_median:.2f} "
        f"overview={statistics.median(figures['overview']):.2f}ms raw_percentile_cont_wall={raw_ms:.1f}ms "
        f"page_cpu/raw_wall={page_median / raw_ms:.3f}"
    )
    if "--profile" in argv:
        cpu_profile(lambda: phase(page, n), opts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
