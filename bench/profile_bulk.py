"""Where a 10,000-row `POST /api/v1/tasks/bulk` spends its time, phase by phase,
in-process against the database `bench metrics --keep` left (1M tasks).

    DEBUG=1 BENCH_DB_PREFIX=fsar_bench_<you> DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m bench.profile_bulk [--runs=N] [--profile] [--without-fold]

Each run: the whole request through Django's test client (wall and process time),
then the phases on their own (JSON parse, pydantic validation, row building,
validation, the idempotency read, the insert with its history rows and rollup fold,
the commit), each with new external_ids so that every insert is of 10,000 new rows.
In the same run, as the baseline: COPY of 10,000 such rows into execution_tasks
itself (rolled back) and into an empty copy of the table (dropped afterwards).
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from datetime import UTC, datetime

from bench.common import bench_db, log, options
from bench.metrics import bulk_body

ROWS = 10_000


class Timer:
    def __init__(self):
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def __call__(self, name, fn, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn(*args, **kwargs)
        self.wall.setdefault(name, []).append(time.perf_counter() - wall)
        self.cpu.setdefault(name, []).append(time.process_time() - cpu)
        return result

    def report(self):
        for name in self.wall:
            wall, cpu = statistics.median(self.wall[name]), statistics.median(self.cpu[name])
            log(f"  {name:<44} wall {wall * 1000:8.1f} ms   cpu {cpu * 1000:8.1f} ms   (n={len(self.wall[name])})")


def main(argv: list[str]) -> int:
    opts = options(argv)
    runs = int(opts.get("runs", 3))
    name = bench_db("metrics")
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fsar.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, transaction
    from django.test import Client

    settings.DEBUG = False

    from django.contrib.auth import get_user_model

    from bench.metrics import copy_into, copy_text, generate
    from tasks import api, backfill
    from tasks.services import Actor, api_key_create

    owner = get_user_model().objects.get(username="bench-operator")
    stamp = datetime.now(UTC).strftime("%H%M%S")
    key, secret = api_key_create(name=f"bench-profile-{stamp}", owner=owner, scopes=["read", "backfill"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    actor = Actor.for_key(key)
    now = datetime.now(UTC)
    t = Timer()

    def rows(tag, seed):
        return list(generate(ROWS, now, prefix=f"prof{stamp}{tag}-", seed=seed, finished_only=True))

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_profile_copy")
        cursor.execute("CREATE TABLE bench_profile_copy (LIKE execution_tasks INCLUDING ALL)")
    for run in range(runs):
        # The baselines.
        text = copy_text(rows(f"c{run}", 100 + run))
        with transaction.atomic():
            t("COPY into execution_tasks (rolled back)", copy_into, connection.connection, "execution_tasks", text)
            transaction.set_rollback(True)
        text.seek(0)
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE bench_profile_copy")
        t("COPY into an empty copy", copy_into, connection.connection, "bench_profile_copy", text)

        # The whole request.
        body = bulk_body(rows(f"r{run}", 200 + run))
        response = t("POST /api/v1/tasks/bulk (whole)", client.post, "/api/v1/tasks/bulk", body,
                     content_type="application/json")  # fmt: skip
        assert response.status_code == 200 and response.json()["created"] == ROWS, response.content[:300]
        if "--without-fold" in argv:
            # An experiment, not a mode of the code: the request with the rollup fold left out
            # (rolled back), what it would cost were the fold off the request path.
            folds = _folds()
            for module, name, _ in folds:
                setattr(module, name, lambda *args, **kwargs: 0)
            try:
                with transaction.atomic():
                    body = bulk_body(rows(f"n{run}", 400 + run))
                    response = t("POST /api/v1/tasks/bulk (without the fold)", client.post, "/api/v1/tasks/bulk",
                                 body, content_type="application/json")  # fmt: skip
                    assert response.status_code == 200, response.content[:300]
                    transaction.set_rollback(True)
            finally:
                for module, name, fold in folds:
                    setattr(module, name, fold)

        # The phases.
        body = bulk_body(rows(f"p{run}", 300 + run))
        data = t("json.loads", json.loads, body)
        t("BackfillIn.model_validate_json (for comparison)", api.BackfillIn.model_validate_json, body)
        parsed = t("BackfillIn.model_validate", api.BackfillIn.model_validate, data)
        built = t("rows built (api)", _build, parsed)
        t("backfill_validate", backfill.backfill_validate, built, now=datetime.now(UTC))
        new_rows, _ = t("backfill_compare (idempotency read)", backfill.backfill_compare, built)
        assert len(new_rows) == ROWS
        for name_, fn in _phases(backfill, new_rows, actor):
            t(name_, fn)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_profile_copy")
    t.report()
    if "--profile" in argv:
        body = bulk_body(rows("prof", 999))
        profiler = cProfile.Profile()
        profiler.enable()
        response = client.post("/api/v1/tasks/bulk", body, content_type="application/json")
        profiler.disable()
        assert response.status_code == 200
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    return 0


def _build(parsed):
    from tasks import backfill

    return [
        backfill.BackfillRow(
            external_id=row.external_id, task_type=row.task_type, status=row.status, started_at=row.started_at,
            finished_at=row.finished_at, ai_model=row.ai_model, customer_ref=row.customer,
            cost_micros=row.cost_micros, tokens=row.tokens, error=row.error,
        )
        for row in parsed.tasks
    ]  # fmt: skip


def _folds():
    """The rollup folds a backfill may call, as (module, name, function): the fold of
    Python rows (SQLite's path) and the one computed by PostgreSQL."""
    from tasks import rollup_fold, rollups

    return [(rollups, "fold_rows", rollups.fold_rows), (rollup_fold, "fold_select", rollup_fold.fold_select)]


def _server_cpu(connection):
    """A function giving the CPU seconds the connection's PostgreSQL backend has used,
    read from /proc when the server runs on this machine (else it gives None): less
    disturbed by other load than wall time, and PostgreSQL's share of a statement."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        stat = f"/proc/{cursor.fetchone()[0]}/stat"
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float | None:
        try:
            with open(stat) as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    return cpu


def _phases(backfill, rows, actor):
    """The insert, then the commit, in one transaction; the insert's statements and its
    rollup fold timed on their own (logged per run)."""
    from django.db import connection, transaction

    atomic = transaction.atomic()
    statements: list[tuple[str, float, float | None]] = []
    server_cpu = _server_cpu(connection)

    def timed_statement(execute, sql, params, many, context):
        start, cpu = time.perf_counter(), server_cpu()
        try:
            return execute(sql, params, many, context)
        finally:
            spent_cpu = server_cpu() - cpu if cpu is not None else None
            statements.append((" ".join(sql.split())[:60], time.perf_counter() - start, spent_cpu))

    def insert():
        atomic.__enter__()
        folds = _folds()
        spent = []

        def timed(fold):
            def timed_fold(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return fold(*args, **kwargs)
                finally:
                    spent.append(time.perf_counter() - start)

            return timed_fold

        for module, name, fold in folds:
            setattr(module, name, timed(fold))
        try:
            with connection.execute_wrapper(timed_statement):
                backfill._insert(rows, actor=actor)
        finally:
            for module, name, fold in folds:
                setattr(module, name, fold)
        log(f"    the rollup fold {sum(spent) * 1000:.1f} ms; statements:")
        for sql, seconds, cpu in statements:
            on_server = f"(server CPU {cpu * 1000:4.0f} ms)" if cpu is not None else ""
            log(f"      {seconds * 1000:8.1f} ms {on_server} {sql}")

    def commit():
        atomic.__exit__(None, None, None)

    return [("_insert (tasks, history, rollups)", insert), ("commit", commit)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
