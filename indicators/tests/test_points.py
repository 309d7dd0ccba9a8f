"""Points from the tasks and reviews tables: API tasks only (a backfill cannot
dilute a trend), recomputing a bucket overwrites it, reads are index ranges."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fsar.testing import register_task
from indicators import selectors
from indicators.jobs import indicators_tick
from indicators.models import Period, Point, Series
from indicators.services.points import bucket_compute, bucket_start
from tasks.models import TaskMetricsRollup

pytestmark = pytest.mark.django_db
MODEL = "coder-2026-12"


def run_tasks(agent, clock, durations_s, *, prefix="t"):
    """Register, start and finish tasks through the API, each taking its duration."""
    for i, seconds in enumerate(durations_s):
        task_id = register_task(agent, f"{prefix}-{i}", ai_model=MODEL).json()["id"]
        agent.post(f"/api/v1/tasks/{task_id}/start", {}, content_type="application/json")
        clock.shift(timedelta(seconds=seconds))
        response = agent.post(
            f"/api/v1/tasks/{task_id}/finish", {"outcome": "succeeded"}, content_type="application/json"
        )
        assert response.status_code == 200, response.content


def p95_point(day):
    series = Series.objects.get(key="model.p95_ms", label_key=f"ai_model={MODEL},task_type=implement_idea")
    return Point.objects.get(series=series, period=Period.DAY, start=day).value


def test_a_backfill_cannot_dilute_the_p95_trend(agent, frozen_clock):
    """The AI client backfills many fast tasks into today to pull the p95 down: the
    rollups (and so the metrics page) take them, the indicator does not."""
    run_tasks(agent, frozen_clock, [30] * 10)
    day = bucket_start(Period.DAY, timezone.now())
    bucket_compute(Period.DAY, day)
    before = p95_point(day)
    assert before == pytest.approx(30_000, rel=0.01)
    finished = timezone.now() - timedelta(minutes=5)
    rows = [
        {
            "external_id": f"fast-{i}",
            "task_type": "implement_idea",
            "ai_model": MODEL,
            "status": "succeeded",
            "started_at": (finished - timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
            "finished_at": finished.isoformat().replace("+00:00", "Z"),
        }
        for i in range(200)
    ]
    response = agent.post("/api/v1/tasks/bulk", json.dumps({"tasks": rows}), content_type="application/json")
    assert response.status_code == 200, response.content
    # The door is real: the rollups (the metrics page's source) fold the backfilled tasks into today.
    rollup = TaskMetricsRollup.objects.get(period="day", start=day, task_type="implement_idea", model=MODEL)
    assert rollup.count >= 200
    bucket_compute(Period.DAY, day)
    assert p95_point(day) == before
    n = Point.objects.get(series__key="model.mean_ms", period=Period.DAY, start=day).n
    assert n == 10


def test_recomputing_a_bucket_overwrites_it(agent, frozen_clock):
    run_tasks(agent, frozen_clock, [10, 20])
    day = bucket_start(Period.DAY, timezone.now())
    bucket_compute(Period.DAY, day)
    count = Point.objects.count()
    bucket_compute(Period.DAY, day)
    assert Point.objects.count() == count
    run_tasks(agent, frozen_clock, [60], prefix="late")
    bucket_compute(Period.DAY, day)
    assert Point.objects.count() == count
    mean = Point.objects.get(series__key="model.mean_ms", period=Period.DAY, start=day)
    assert (mean.n, mean.value) == (3, pytest.approx(30_000, rel=0.01))
    assert selectors.latest_values(scopes=("model",))[0][3] == day


def test_the_tick_writes_hours_and_days_and_can_run_twice(agent, frozen_clock):
    run_tasks(agent, frozen_clock, [5, 7])
    first = indicators_tick()
    points = sorted(Point.objects.values_list("series_id", "period", "start", "value", "n"))
    second = indicators_tick()
    assert sorted(Point.objects.values_list("series_id", "period", "start", "value", "n")) == points
    assert first["points"] == second["points"] > 0
    assert {p for _, p, *_ in points} == {"hour", "day"}


def test_a_day_costs_a_fixed_number_of_queries(agent, frozen_clock):
    run_tasks(agent, frozen_clock, [5] * 3)
    day = bucket_start(Period.DAY, timezone.now())
    bucket_compute(Period.DAY, day)
    run_tasks(agent, frozen_clock, [6] * 2, prefix="few")
    with CaptureQueriesContext(connection) as few:
        bucket_compute(Period.DAY, day)
    run_tasks(agent, frozen_clock, [7] * 30, prefix="more")
    with CaptureQueriesContext(connection) as many:
        bucket_compute(Period.DAY, day)
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.postgres(reason="EXPLAIN of PostgreSQL query plans")
def test_the_reads_are_index_ranges(agent, frozen_clock):
    run_tasks(agent, frozen_clock, [5] * 3)
    day = bucket_start(Period.DAY, timezone.now())
    with CaptureQueriesContext(connection) as ctx:
        bucket_compute(Period.DAY, day)
    big_tables = (
        "execution_tasks",
        "tasks_historicalexecutiontask",
        "reviews_historicalvote",
        "reviews_historicalcase",
    )
    for query in ctx.captured_queries:
        sql = query["sql"]
        if not sql.startswith("SELECT") or not any(f'FROM "{t}"' in sql for t in big_tables):
            continue
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan" not in plan, (sql, plan)
