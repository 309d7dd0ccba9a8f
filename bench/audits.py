"""Built-in audit suites at a million tasks, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench audits [--rows=N] [--keep]

Creates its own database (fsar_bench_audits), migrates it, loads N tasks
(default 1,000,000 over 30 days, bench/metrics.py's generator, COPY), builds
the metrics rollups, registers and approves the model versions, and times:

1. `assurance.selectors.builtin_figures` (task count, failure rate, p95, cost
   per task, held/denied share) for one model over a 24-hour and a 7-day window;
2. `assurance.services.builtin_run` (the figures, the verdict, the run with its
   history, evidence and chain entry), for a 24-hour suite;
3. the audit sweep over every approved version (what the periodic job does).

Each timing is the median of several runs after a warm-up; the goal is under a
second for a built-in suite at 1M tasks. It also prints whether any of the
figures' queries plans a sequential scan of execution_tasks. Drops the database
at the end unless --keep.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from bench.common import log, median_ms, options, own_database, postgres_url_or_none

BENCH_DB = "fsar_bench_audits"
RUNS = 5
MODEL = "gpt-5.1"


def main(argv: list[str]) -> int:
    rows = int(options(argv).get("rows", 1_000_000))
    url = postgres_url_or_none("audits")
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
    from django.test.utils import CaptureQueriesContext

    settings.DATABASES["default"]["NAME"] = BENCH_DB
    connection.close()
    connection.settings_dict["NAME"] = BENCH_DB
    settings.DEBUG = False
    call_command("migrate", verbosity=0)

    from bench.metrics import copy_into, copy_text, generate
    from bench.models_on import approve_model_versions

    now = datetime.now(UTC)
    text = copy_text(generate(rows, now, prefix="bench-"))
    connection.ensure_connection()
    start = time.perf_counter()
    copy_into(connection.connection, "execution_tasks", text)
    log(f"load: COPY {rows:,} rows in {time.perf_counter() - start:.1f} s")
    with connection.cursor() as cursor:
        # Half the tasks as FSAR saw them run through the API (cost per task reads those).
        cursor.execute("UPDATE execution_tasks SET source = 'api' WHERE id % 2 = 0")
        cursor.execute("VACUUM ANALYZE execution_tasks")
    from tasks import rollups

    rollups.rebuild(now - timedelta(days=31), now + timedelta(seconds=1))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    models = ["gpt-5.1", "claude-sonnet-5", "llama-4-70b", "claude-opus-5", "mistral-large-3"]
    approve_model_versions(models)

    from assurance import selectors, services
    from assurance.models import AuditSuite
    from deployments.models import ModelVersion

    suite = AuditSuite.objects.create(
        name="builtin-daily",
        source="builtin",
        criteria=[{"metric": "failure_rate", "comparison": "<=", "threshold": 0.2}],
        schedule="0 * * * *",
        grace_minutes=60,
        window_hours=24,
        family_glob="*",
    )
    version = ModelVersion.objects.get(ai_model=MODEL)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM execution_tasks WHERE ai_model = %s", [MODEL])
        model_rows = cursor.fetchone()[0]
    log(f"PostgreSQL, {rows:,} tasks, {model_rows:,} on {MODEL}")

    seq_scans = []
    log("| what | median ms | queries |")
    log("|---|---|---|")
    for label, hours in (("builtin_figures, 24 h", 24), ("builtin_figures, 7 days", 24 * 7)):

        def figures(hours=hours):
            return selectors.builtin_figures(ai_model=MODEL, since=now - timedelta(hours=hours), until=now)

        ms = median_ms(figures, RUNS)
        with CaptureQueriesContext(connection) as queries:
            result = figures()
        for q in queries.captured_queries:
            if "execution_tasks" in q["sql"] and q["sql"].lstrip().upper().startswith("SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN " + q["sql"])
                    plan = "\n".join(r[0] for r in cursor.fetchall())
                if "Seq Scan on execution_tasks" in plan:
                    seq_scans.append(plan)
        log(f"| {label} | {ms:.1f} | {len(queries.captured_queries)} |")
        log(f"  figures: {result}")
    ms = median_ms(lambda: services.builtin_run(suite, version), RUNS)
    log(f"| builtin_run (figures, verdict, run, evidence, chain entry), 24 h | {ms:.1f} | |")
    ms = median_ms(lambda: services.sweep(), 3)
    log(f"| audit sweep over {len(models)} approved versions | {ms:.1f} | |")
    if seq_scans:
        log("a sequential scan of execution_tasks was planned:\n" + "\n---\n".join(seq_scans))
        return 1
    log("no query plans a sequential scan of execution_tasks")
    return 0
