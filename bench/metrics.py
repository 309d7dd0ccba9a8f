"""Task metrics at a million tasks, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench metrics [--rows=N] [--keep]

Creates its own database (fsar_bench_metrics), migrates it, loads N tasks
(default 1,000,000, spread over the 30 days ending now, like the demo data)
with COPY, then in the same run:

1. builds the metrics rollups of all rows (`rebuild_metrics`, timed);
2. times `GET /api/v1/metrics/tasks` (through Django's test client: routing,
   API-key auth, all queries, JSON) from the rollups, and with `exact=true`
   (raw rows, percentile_cont), against the equivalent raw SQL aggregate,
   `percentile_cont` grouped the same way, for a 7-day and a 30-day window
   ending now (ragged edges), and the operator page `/tasks/metrics/`; checks
   the rollup answer against the exact one (counts, means, maxima, failure
   rates equal; percentiles within the stated bound) and reports the worst
   percentile error seen;
3. times one call of the rollup fold (one task, its own transaction): what a
   backfill's fold costs per call (finishing a task no longer folds: it marks the
   task pending for the drain, docs/metrics.md);
4. times `POST /api/v1/tasks/bulk` ingest (10,000 tasks a request, with
   history rows and rollups) against `COPY` of as many rows into
   execution_tasks itself (same indexes, same million rows; rolled back), once
   before and once after, averaged. It also reports COPY into an empty copy of
   the table, the earlier baseline: it pays for indexes of 20,000 entries where
   the API pays for indexes of a million, 4-7 times less on this machine.

Each timing is the median of several runs after one warm-up; the raw query and the
rollup reads divided by it are timed alternating, round by round (since 2026-12-01 21:00;
before, one after the other). Drops the
database at the end unless --keep.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from bench.common import alternating_medians_ms, bench_db, log, median_ms, options, own_database, postgres_url_or_none

BENCH_DB = bench_db("metrics")
RUNS = 7
INGEST_ROWS = 20_000

TYPES = {
    "implement_idea": (5, [("gpt-5.1", 240, 0.04, 5), ("claude-sonnet-5", 200, 0.03, 4), ("llama-4-70b", 420, 0.11, 2),
                           (None, 300, 0.06, 1)]),
    "idea_implementation": (3, [("gpt-5.1", 900, 0.05, 4), ("claude-sonnet-5", 780, 0.04, 4),
                                ("mistral-large-3", 1500, 0.14, 2), (None, 1100, 0.07, 1)]),
    "self_improvement": (2, [("claude-opus-5", 600, 0.02, 3), ("gpt-5.1", 720, 0.05, 2), (None, 800, 0.08, 1)]),
}  # fmt: skip
COLUMNS = (
    "external_id, task_type, status, payload, created_at, started_at, finished_at, duration_ms, "
    "cost_micros, tokens, error, ai_model, customer_ref, source"
)


def generate(count: int, now: datetime, *, prefix: str, days: int = 30, seed: int = 1, finished_only: bool = False):
    """Tuples in COPY column order: demo-like types, models and log-normal durations."""
    rng = random.Random(seed)
    type_names = list(TYPES)
    type_weights = [TYPES[t][0] for t in type_names]
    for i in range(count):
        task_type = rng.choices(type_names, type_weights)[0]
        models = TYPES[task_type][1]
        model, median_s, failure_rate, _ = rng.choices(models, [m[3] for m in models])[0]
        duration = int(median_s * 1000 * math.exp(rng.gauss(0, 0.55)))
        finished = now - timedelta(seconds=rng.uniform(1, days * 86400))
        started = finished - timedelta(milliseconds=duration)
        roll = rng.random()
        if not finished_only and roll < 0.01:
            status, finished_at, duration_ms = "running", None, None
        elif not finished_only and roll < 0.015:
            status, finished_at, duration_ms = "cancelled", finished, None
        else:
            status = "failed" if rng.random() < failure_rate else "succeeded"
            finished_at, duration_ms = finished, duration
        tokens = duration // 1000 * 40
        yield (
            f"{prefix}{i:07d}",
            task_type,
            status,
            started,
            finished_at,
            duration_ms,
            tokens * 5,
            tokens,
            "model returned an invalid patch" if status == "failed" else "",
            model,
            rng.choice(["cust_acme", "cust_globex", "cust_initech", None]),
        )


def copy_text(rows) -> io.StringIO:
    out = io.StringIO()
    for external_id, task_type, status, started, finished, duration, cost, tokens, error, model, customer in rows:
        out.write(
            "\t".join(
                (
                    external_id,
                    task_type,
                    status,
                    "{}",
                    started.isoformat(),
                    started.isoformat(),
                    finished.isoformat() if finished else r"\N",
                    str(duration) if duration is not None else r"\N",
                    str(cost),
                    str(tokens),
                    error,
                    model or r"\N",
                    customer or r"\N",
                    "backfill",
                )
            )
        )
        out.write("\n")
    out.seek(0)
    return out


def copy_into(connection, table: str, text: io.StringIO) -> None:
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({COLUMNS}) FROM STDIN") as copy:
            while chunk := text.read(1 << 20):
                copy.write(chunk)


def raw_sql(since: datetime, until: datetime) -> tuple[str, list]:
    """The raw aggregate the endpoint is measured against: the same figures, same groups."""
    return (
        """
        SELECT task_type, ai_model, count(*), avg(duration_ms), max(duration_ms),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms),
               avg((status = 'failed')::int)
          FROM execution_tasks
         WHERE finished_at >= %s AND finished_at < %s AND status IN ('succeeded', 'failed')
         GROUP BY task_type, ai_model
        """,
        [since, until],
    )


def main(argv: list[str]) -> int:
    rows = int(options(argv).get("rows", 1_000_000))
    url = postgres_url_or_none("metrics")
    if url is None:
        return 2
    with own_database(url, BENCH_DB, keep="--keep" in argv) as bench_url:
        os.environ["DATABASE_URL"] = bench_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fsar.settings")
        return run(rows)


def run(rows: int) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    settings.DATABASES["default"]["NAME"] = BENCH_DB
    connection.close()
    connection.settings_dict["NAME"] = BENCH_DB
    settings.DEBUG = False  # no query log in memory
    call_command("migrate", verbosity=0)

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from core.roles import OPERATORS
    from tasks.services import api_key_create

    now = datetime.now(UTC)
    log(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, {connection.vendor}")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        log(f"PostgreSQL {cursor.fetchone()[0]}; date {now:%Y-%m-%d %H:%M} UTC; rows {rows:,}")

    start = time.perf_counter()
    text = copy_text(generate(rows, now, prefix="bench-"))
    generated = time.perf_counter() - start
    connection.ensure_connection()
    start = time.perf_counter()
    copy_into(connection.connection, "execution_tasks", text)
    loaded = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE execution_tasks")
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('execution_tasks'))")
        size = cursor.fetchone()[0]
    log(f"load: generated in {generated:.1f} s, COPY {rows:,} rows in {loaded:.1f} s ({rows / loaded:,.0f} rows/s)")
    log(f"execution_tasks with its indexes: {size}")

    from tasks import rollups

    start = time.perf_counter()
    counted = rollups.rebuild(now - timedelta(days=31), now + timedelta(seconds=1))
    built = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE tasks_metrics_rollup")
        cursor.execute(
            "SELECT count(*), pg_size_pretty(pg_total_relation_size('tasks_metrics_rollup')) FROM tasks_metrics_rollup"
        )
        rollup_rows, rollup_size = cursor.fetchone()
    log(
        f"rollups: rebuilt from {counted:,} finished tasks in {built:.1f} s ({counted / built:,.0f} tasks/s); "
        f"{rollup_rows:,} rows (hours, six hours and days × type × model), {rollup_size}"
    )

    owner = get_user_model().objects.create_user(username="bench-operator", is_staff=True)
    owner.groups.add(Group.objects.get_or_create(name=OPERATORS)[0])
    _, secret = api_key_create(name="bench", owner=owner, scopes=["read", "backfill"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    page_client = Client()
    page_client.force_login(owner)

    for label, days, window in (("7 days (default)", 7, "7d"), ("30 days", 30, "30d")):
        measure_window(connection, client, page_client, label=label, days=days, window=window)
    from tasks import metrics_display

    summary_ms = median_ms(lambda: metrics_display.dashboard_summary(now=datetime.now(UTC)), runs=21)
    summary_exact_ms = median_ms(
        lambda: metrics_display.dashboard_summary(now=datetime.now(UTC), engine="exact"), runs=3
    )
    log(
        f"dashboard summary (per type, last 24 h against the 24 before; selector only): from rollups "
        f"{summary_ms:.1f} ms, exact {summary_exact_ms:.0f} ms"
    )

    finish_benchmark(connection, now)
    ingest_benchmark(connection, client, now)
    return 0


def finish_benchmark(connection, now: datetime) -> None:
    """What the rollups add to finishing one task: the upsert of its hour and day rows."""
    from django.db import transaction

    from tasks import rollups
    from tasks.models import ExecutionTask

    task = ExecutionTask(
        task_type="implement_idea", ai_model="gpt-5.1", status="succeeded", finished_at=now, duration_ms=1234
    )

    def fold():
        with transaction.atomic():
            rollups.fold_tasks([task])

    fold_ms = median_ms(fold, runs=51)
    log(f"rollup fold of one task (hour, six-hour and day rows in one upsert, own transaction): {fold_ms:.2f} ms")


def bulk_body(rows) -> str:
    """The JSON body of `POST /api/v1/tasks/bulk` for rows as `generate` makes them."""
    return json.dumps(
        {
            "tasks": [
                {
                    "external_id": external_id,
                    "task_type": task_type,
                    "ai_model": model,
                    "customer": customer,
                    "status": status,
                    "started_at": started.isoformat(),
                    "finished_at": finished.isoformat(),
                    "cost_micros": cost,
                    "tokens": tokens,
                    "error": error,
                }
                for (external_id, task_type, status, started, finished, _, cost, tokens, error, model, customer) in rows
            ]
        }
    )


def ingest_benchmark(connection, client, now: datetime) -> None:
    """POST /api/v1/tasks/bulk against COPY of the same rows."""
    ingest = list(generate(INGEST_ROWS, now, prefix="ingest-", seed=2, finished_only=True))
    bodies = [bulk_body(ingest[start_row : start_row + 10_000]) for start_row in range(0, len(ingest), 10_000)]
    from django.db import transaction

    def copy_same_table(seed: int) -> float:
        """COPY the same number of rows into execution_tasks itself (same indexes, same
        size: the 1M rows already there), in a transaction rolled back afterwards."""
        rows = list(generate(INGEST_ROWS, now, prefix=f"copy{seed}-", seed=seed, finished_only=True))
        text = copy_text(rows)
        with transaction.atomic():
            start = time.perf_counter()
            copy_into(connection.connection, "execution_tasks", text)
            elapsed = time.perf_counter() - start
            transaction.set_rollback(True)
        return elapsed

    copy_before = copy_same_table(3)
    start = time.perf_counter()
    for body in bodies:
        response = client.post("/api/v1/tasks/bulk", body, content_type="application/json")
        assert response.status_code == 200 and response.json()["created"] == 10_000, response.content[:300]
    bulk_s = time.perf_counter() - start
    copy_after = copy_same_table(4)
    copy_s = (copy_before + copy_after) / 2
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_copy (LIKE execution_tasks INCLUDING ALL)")
    # The API recomputes duration_ms from the timestamps; COPY stores the same value.
    text = copy_text(ingest)
    start = time.perf_counter()
    copy_into(connection.connection, "bench_copy", text)
    empty_s = time.perf_counter() - start
    log(
        f"ingest {INGEST_ROWS:,} tasks: POST /api/v1/tasks/bulk {INGEST_ROWS / bulk_s:,.0f} tasks/s "
        f"({bulk_s:.1f} s, 10,000 a request, with history rows and rollups); COPY into execution_tasks "
        f"(same table and indexes, {INGEST_ROWS:,} rows, rolled back; before {copy_before:.2f} s, after "
        f"{copy_after:.2f} s) {INGEST_ROWS / copy_s:,.0f} tasks/s; **bulk/COPY {copy_s / bulk_s:.3f}**; "
        f"COPY into an empty copy of the table (the earlier baseline) {INGEST_ROWS / empty_s:,.0f} tasks/s "
        f"({empty_s:.2f} s), bulk/that {empty_s / bulk_s:.3f}"
    )


def measure_window(connection, client, page_client, *, label: str, days: int, window: str) -> None:
    until = datetime.now(UTC)
    since = until - timedelta(days=days)
    params = {"since": since.isoformat(), "until": until.isoformat(), "group_by": "ai_model"}
    sql, sql_params = raw_sql(since, until)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM execution_tasks WHERE finished_at >= %s AND finished_at < %s "
            "AND status IN ('succeeded', 'failed')",
            [since, until],
        )
        in_window = cursor.fetchone()[0]

    def raw():
        with connection.cursor() as cursor:
            cursor.execute(sql, sql_params)
            cursor.fetchall()

    def endpoint():
        response = client.get("/api/v1/metrics/tasks", params)
        assert response.status_code == 200, response.content
        assert response.json()["groups"]

    def endpoint_exact():
        response = client.get("/api/v1/metrics/tasks", {**params, "exact": "true"})
        assert response.status_code == 200, response.content

    def by_type():
        assert client.get("/api/v1/metrics/tasks", {**params, "group_by": "task_type"}).status_code == 200

    def page():
        assert page_client.get("/tasks/metrics/", {"window": window}).status_code == 200

    from tasks import histograms

    rollup_body = client.get("/api/v1/metrics/tasks", params).json()
    exact_body = client.get("/api/v1/metrics/tasks", {**params, "exact": "true"}).json()
    worst = check_agreement(rollup_body["groups"], exact_body["groups"], histograms.MAX_RELATIVE_ERROR)

    # The raw query (the baseline) and the rollup reads alternate, so that both see the same
    # moments of the host: the fast calls get more runs, their medians being the noisier.
    timed = alternating_medians_ms(
        {"raw": (raw, 1), "endpoint": (endpoint, 3), "by_type": (by_type, 3), "page": (page, 2)}, rounds=RUNS
    )
    raw_ms, endpoint_ms, by_type_ms, page_ms = timed["raw"], timed["endpoint"], timed["by_type"], timed["page"]
    exact_ms = median_ms(endpoint_exact, runs=3)
    log(
        f"window {label}: {in_window:,} finished tasks; raw percentile_cont SQL {raw_ms:.1f} ms; "
        f"GET /metrics/tasks?group_by=ai_model from rollups {endpoint_ms:.1f} ms (ratio {endpoint_ms / raw_ms:.3f}), "
        f"exact=true {exact_ms:.0f} ms (ratio {exact_ms / raw_ms:.2f}); group_by=task_type {by_type_ms:.1f} ms; "
        f"page /tasks/metrics/?window={window} {page_ms:.1f} ms (ratio {page_ms / raw_ms:.3f}); "
        f"worst percentile error vs exact {worst:.3%} over {len(exact_body['groups'])} groups"
    )
    phases(connection, endpoint, page, window=window, days=days)


def cpu_ms(fn, runs: int) -> float:
    """In-process CPU per call in ms (time.process_time, after one warm-up): what a shared,
    noisy machine changes least."""
    fn()
    start = time.process_time()
    for _ in range(runs):
        fn()
    return (time.process_time() - start) / runs * 1000


def phases(connection, endpoint, page, *, window: str, days: int) -> None:
    """Where the endpoint's and the page's time goes: statements per request, and the
    in-process CPU of the whole request against that of the metrics call alone (the rest
    is routing, authentication, middleware, JSON or the template)."""
    from django.test.utils import CaptureQueriesContext

    from tasks import metrics, metrics_display

    counted = {}
    for name, fn in (("endpoint", endpoint), ("page", page)):
        with CaptureQueriesContext(connection) as queries:
            fn()
        counted[name] = len(queries.captured_queries)

    def ending_now():
        return metrics.default_window(datetime.now(UTC), timedelta(days=days))

    def engine():
        metrics.task_metrics(window=ending_now(), group_by="ai_model")

    def overview():
        metrics_display.metrics_overview(window=ending_now())

    log(
        f"  phases ({window}, in-process CPU per call): endpoint {cpu_ms(endpoint, 21):.1f} ms in "
        f"{counted['endpoint']} statements, of which metrics.task_metrics {cpu_ms(engine, 21):.1f} ms; page "
        f"{cpu_ms(page, 9):.1f} ms in {counted['page']} statements, of which metrics_overview "
        f"{cpu_ms(overview, 9):.1f} ms"
    )


def check_agreement(got: list[dict], want: list[dict], bound: float) -> float:
    """Rollup answer vs exact answer: exact fields equal, percentiles within the bound."""
    assert [(g["task_type"], g["ai_model"]) for g in got] == [(g["task_type"], g["ai_model"]) for g in want]
    worst = 0.0
    for a, b in zip(got, want, strict=True):
        for field in ("count", "mean_ms", "max_ms", "failure_rate", "mean_ms_change"):
            assert a[field] == b[field], (field, a, b)
        for field in ("p50_ms", "p95_ms"):
            error = abs(a[field] - b[field]) / b[field]
            assert abs(a[field] - b[field]) <= bound * b[field] + 0.1, (field, a, b)
            worst = max(worst, error)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
