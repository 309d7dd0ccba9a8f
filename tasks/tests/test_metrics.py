"""Task performance metrics: definitions, the API, and both engines agreeing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tasks import metrics, metrics_display, rollups
from tasks.models import ExecutionTask, TaskSource, TaskStatus

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
URL = "/api/v1/metrics/tasks"
SERIES_URL = "/api/v1/metrics/tasks/series"

_counter = iter(range(10**9))


def make_task(
    *,
    finished_at: datetime | None,
    duration_ms: int | None = 1000,
    task_type: str = "implement_idea",
    ai_model: str | None = "gpt-5.1",
    status: str = TaskStatus.SUCCEEDED,
) -> ExecutionTask:
    started_at = finished_at - timedelta(milliseconds=duration_ms or 0) if finished_at else None
    return ExecutionTask(
        external_id=f"m-{next(_counter)}",
        task_type=task_type,
        status=status,
        payload={},
        created_at=started_at or NOW,
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=duration_ms,
        ai_model=ai_model,
        source=TaskSource.BACKFILL,
    )


def store(*tasks: ExecutionTask) -> None:
    """Insert tasks the way bulk paths do (backfill, demo): rows, then their rollups."""
    ExecutionTask.objects.bulk_create(tasks)
    rollups.fold_tasks(tasks)


def random_tasks(rng: random.Random, count: int, *, days: int = 16) -> list[ExecutionTask]:
    models = {
        "implement_idea": ["gpt-5.1", "claude-sonnet-5", None],
        "idea_implementation": ["gpt-5.1", "mistral-large-3"],
        "self_improvement": ["claude-opus-5", None],
    }
    statuses = [TaskStatus.SUCCEEDED] * 8 + [TaskStatus.FAILED, TaskStatus.RUNNING, TaskStatus.CANCELLED]
    tasks = []
    for _ in range(count):
        task_type = rng.choice(list(models))
        status = rng.choice(statuses)
        finished = NOW - timedelta(seconds=rng.uniform(0, days * 86400))
        duration = int(rng.lognormvariate(12, 0.6)) if rng.random() > 0.02 else None
        tasks.append(
            make_task(
                finished_at=None if status == TaskStatus.RUNNING else finished,
                duration_ms=None if status in (TaskStatus.RUNNING, TaskStatus.CANCELLED) else duration,
                task_type=task_type,
                ai_model=rng.choice(models[task_type]),
                status=status,
            )
        )
    return tasks


def get(agent, url: str, **params):
    response = agent.get(url, params)
    return response, response.json()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- Definitions ---------------------------------------------------------------------


def test_percentile_cont_interpolates_linearly_between_ranks():
    values = [100, 200, 300, 400, 1000]
    assert metrics.percentile_cont(values, 0.5) == 300
    assert metrics.percentile_cont(values, 0.95) == pytest.approx(880)  # 400 + 0.8 × 600
    assert metrics.percentile_cont([7], 0.95) == 7
    assert metrics.percentile_cont([], 0.5) is None


@pytest.mark.django_db
def test_it_counts_finished_tasks_by_finished_at_with_since_inclusive_and_until_exclusive(agent):
    since, until = NOW - timedelta(days=1), NOW
    store(
        make_task(finished_at=since, duration_ms=100),  # on the start: counts
        make_task(finished_at=since + timedelta(hours=1), duration_ms=200, status=TaskStatus.FAILED),
        make_task(finished_at=until - timedelta(microseconds=1), duration_ms=300),
        make_task(finished_at=until, duration_ms=10_000),  # on the end: next window
        make_task(finished_at=since - timedelta(microseconds=1), duration_ms=10_000),
        make_task(finished_at=since + timedelta(hours=2), duration_ms=None, status=TaskStatus.CANCELLED),
        make_task(finished_at=None, duration_ms=None, status=TaskStatus.RUNNING),
    )
    response, body = get(agent, URL, since=iso(since), until=iso(until))
    assert response.status_code == 200, body
    assert body["window"] == {"since": "2026-11-19T12:00:00Z", "until": "2026-11-20T12:00:00Z"}
    assert body["groups"] == [
        {
            "task_type": "implement_idea",
            "ai_model": None,
            "count": 3,
            "mean_ms": 200.0,
            "p50_ms": 200.0,
            "p95_ms": 290.0,
            "max_ms": 300,
            "failure_rate": 0.3333,
            "mean_ms_change": -0.98,  # against the one task just before `since`: 10 s
        }
    ]


@pytest.mark.django_db
def test_group_by_ai_model_gives_one_group_per_type_and_model_with_no_model_apart(agent):
    at = NOW - timedelta(hours=1)
    store(
        make_task(finished_at=at, ai_model="gpt-5.1", duration_ms=100),
        make_task(finished_at=at, ai_model="gpt-5.1", duration_ms=300),
        make_task(finished_at=at, ai_model=None, duration_ms=5000, status=TaskStatus.FAILED),
        make_task(finished_at=at, ai_model="gpt-5.1", task_type="self_improvement", duration_ms=700),
    )
    with time_machine.travel(NOW, tick=False):
        _, body = get(agent, URL, group_by="ai_model")
    got = [(g["task_type"], g["ai_model"], g["count"], g["mean_ms"], g["failure_rate"]) for g in body["groups"]]
    assert got == [
        ("implement_idea", "gpt-5.1", 2, 200.0, 0.0),
        ("implement_idea", None, 1, 5000.0, 1.0),
        ("self_improvement", "gpt-5.1", 1, 700.0, 0.0),
    ]


@pytest.mark.django_db
def test_the_default_window_is_the_seven_days_ending_now(agent):
    store(
        make_task(finished_at=NOW - timedelta(days=6, hours=23), duration_ms=100),
        make_task(finished_at=NOW - timedelta(days=7, hours=1), duration_ms=999),
    )
    with time_machine.travel(NOW, tick=False):
        _, body = get(agent, URL)
    assert body["window"] == {"since": "2026-11-13T12:00:00Z", "until": "2026-11-20T12:00:00Z"}
    assert [g["count"] for g in body["groups"]] == [1]


@pytest.mark.django_db
def test_mean_ms_change_compares_with_the_previous_window_of_the_same_length(agent):
    since = NOW - timedelta(days=2)
    store(
        make_task(finished_at=since + timedelta(hours=1), duration_ms=1120),  # current, mean 1120
        make_task(finished_at=since - timedelta(hours=1), duration_ms=900),  # previous window
        make_task(finished_at=since - timedelta(hours=3), duration_ms=1100),  # previous, mean 1000
        make_task(finished_at=since - timedelta(days=2, hours=1), duration_ms=1),  # before both
        make_task(finished_at=since + timedelta(hours=1), task_type="self_improvement", duration_ms=50),
    )
    _, body = get(agent, URL, since=iso(since), until=iso(NOW))
    changes = {g["task_type"]: g["mean_ms_change"] for g in body["groups"]}
    assert changes == {"implement_idea": 0.12, "self_improvement": None}


# --- Validation and access -------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url,params,field",
    [
        (URL, {"since": "2026-11-20T00:00:00Z", "until": "2026-11-19T00:00:00Z"}, "since"),
        (URL, {"since": "2026-11-20T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, "since"),
        (URL, {"group_by": "customer"}, "group_by"),
        (URL, {"since": "2026-11-20T00:00:00"}, "since"),  # no timezone
        (URL, {"until": "yesterday"}, "until"),
        (URL, {"since": "2020-01-01T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, "until"),
        (SERIES_URL, {"bucket": "week"}, "bucket"),
        (SERIES_URL, {"task_type": "nap"}, "task_type"),
        (SERIES_URL, {"bucket": "hour", "since": "2026-01-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "bucket"),
    ],
)
def test_bad_queries_answer_422_naming_the_parameter(agent, url, params, field):
    response, body = get(agent, url, **params)
    assert response.status_code == 422, body
    assert body["detail"].startswith(f"{field}:"), body


@pytest.mark.django_db
def test_metrics_need_a_key_with_the_read_scope(client, make_api_key):
    assert client.get(URL).status_code == 401
    _, secret = make_api_key(scopes=["tasks"])
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 403
    assert "read" in response.json()["detail"]


@pytest.mark.django_db
def test_the_metrics_endpoint_makes_the_same_queries_for_ten_tasks_and_for_a_thousand(agent):
    rng = random.Random(3)
    store(*random_tasks(rng, 10, days=5))
    with time_machine.travel(NOW, tick=False):
        get(agent, URL)  # the key's first use of the minute also records last_used_at
        with CaptureQueriesContext(connection) as small:
            get(agent, URL, group_by="ai_model")
        store(*random_tasks(rng, 1000, days=5))
        with CaptureQueriesContext(connection) as large:
            get(agent, URL, group_by="ai_model")
    assert len(small) == len(large), [q["sql"] for q in large]


# --- Series ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_series_has_every_bucket_of_the_window_with_empty_ones_at_zero(agent):
    since = datetime(2026, 11, 17, 6, 0, tzinfo=UTC)
    until = datetime(2026, 11, 19, 18, 0, tzinfo=UTC)
    store(
        make_task(finished_at=datetime(2026, 11, 17, 5, 0, tzinfo=UTC), duration_ms=9999),  # before since, same day
        make_task(finished_at=datetime(2026, 11, 17, 7, 0, tzinfo=UTC), duration_ms=100),
        make_task(finished_at=datetime(2026, 11, 17, 8, 0, tzinfo=UTC), duration_ms=300, status=TaskStatus.FAILED),
        make_task(finished_at=datetime(2026, 11, 19, 9, 0, tzinfo=UTC), duration_ms=400),
        make_task(finished_at=datetime(2026, 11, 19, 9, 0, tzinfo=UTC), duration_ms=500, task_type="self_improvement"),
    )
    _, body = get(agent, SERIES_URL, since=iso(since), until=iso(until), task_type="implement_idea", bucket="day")
    points = [(p["start"], p["count"], p["mean_ms"], p["failure_rate"], p["mean_ms_change"]) for p in body["points"]]
    assert points == [
        ("2026-11-17T00:00:00Z", 2, 200.0, 0.5, None),
        ("2026-11-18T00:00:00Z", 0, None, None, None),
        ("2026-11-19T00:00:00Z", 1, 400.0, 0.0, None),
    ]
    _, everything = get(agent, SERIES_URL, since=iso(since), until=iso(until), bucket="day")
    assert [p["count"] for p in everything["points"]] == [2, 0, 2]
    assert everything["points"][2]["mean_ms"] == 450.0


@pytest.mark.django_db
def test_the_series_filters_by_model_and_an_empty_model_means_no_model(agent):
    at = NOW - timedelta(minutes=30)
    store(
        make_task(finished_at=at, ai_model="gpt-5.1", duration_ms=100),
        make_task(finished_at=at, ai_model=None, duration_ms=700),
    )
    window = {"since": iso(NOW - timedelta(hours=2)), "until": iso(NOW), "bucket": "hour"}
    _, gpt = get(agent, SERIES_URL, ai_model="gpt-5.1", **window)
    _, none = get(agent, SERIES_URL, ai_model="", **window)
    assert [p["mean_ms"] for p in gpt["points"]] == [None, 100.0]
    assert [p["mean_ms"] for p in none["points"]] == [None, 700.0]
    assert none["ai_model"] is None and gpt["ai_model"] == "gpt-5.1"
    assert gpt["points"][1]["mean_ms_change"] is None  # the hour before was empty


# --- Both engines ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_python_engine_gives_exact_figures_on_any_database():
    rng = random.Random(11)
    tasks = random_tasks(rng, 400)
    store(*tasks)
    window = metrics.Window(NOW - timedelta(days=7), NOW)
    got = metrics.task_metrics(window=window, group_by="ai_model", engine="python")
    for group in got["groups"]:
        durations = sorted(
            t.duration_ms
            for t in tasks
            if t.status in metrics.FINISHED
            and window.since <= t.finished_at < window.until
            and t.task_type == group["task_type"]
            and t.ai_model == group["ai_model"]
            and t.duration_ms is not None
        )
        assert group["max_ms"] == durations[-1]
        assert group["mean_ms"] == round(sum(durations) / len(durations), 1)
        # Nearest-rank cross-check: p50 lies between the two middle values.
        assert durations[(len(durations) - 1) // 2] <= group["p50_ms"] <= durations[len(durations) // 2]


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_percentile_cont_and_the_python_engine_give_the_same_numbers():
    store(*random_tasks(random.Random(5), 3000))
    window = metrics.Window(NOW - timedelta(days=7, hours=5), NOW - timedelta(minutes=17))
    for group_by in ("task_type", "ai_model"):
        sql = metrics.task_metrics(window=window, group_by=group_by, engine="sql")
        python = metrics.task_metrics(window=window, group_by=group_by, engine="python")
        assert sql == python
        assert len(sql["groups"]) >= 3
    for bucket in ("hour", "day"):
        for task_type in (None, "implement_idea"):
            sql = metrics.task_series(window=window, bucket=bucket, task_type=task_type, engine="sql")
            python = metrics.task_series(window=window, bucket=bucket, task_type=task_type, engine="python")
            assert sql == python
    assert metrics_display.metrics_overview(window=window, engine="sql") == metrics_display.metrics_overview(
        window=window, engine="python"
    )
    assert metrics_display.dashboard_summary(now=NOW, engine="sql") == metrics_display.dashboard_summary(
        now=NOW, engine="python"
    )


@pytest.mark.postgres(reason="EXPLAIN after VACUUM")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_window_is_read_through_a_finished_at_index_and_the_covering_one_exists():
    store(*random_tasks(random.Random(4), 500))
    window = metrics.Window(NOW - timedelta(days=7), NOW)
    with CaptureQueriesContext(connection) as queries:
        metrics.aggregate(metrics.Query(window=window, by_model=True), engine="sql")
    (query,) = queries.captured_queries
    with connection.cursor() as cursor:
        # As a live table is (and as the bench reads it): vacuumed, so that an index-only
        # scan needs no heap visits, and without the dead entries earlier tests left.
        cursor.execute("VACUUM ANALYZE execution_tasks")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + query["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        # The only index over every finished row that leads with finished_at (migration 0012
        # dropped tasks_finished, which a fresh table's planner used to prefer).
        assert "Seq Scan" not in plan and "tasks_finished_at_cover" in plan, plan
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'tasks_finished_at_cover'")
        (definition,) = cursor.fetchone()
    assert "(finished_at) INCLUDE (task_type, ai_model, status, duration_ms) WHERE (finished_at IS NOT NULL)" in (
        definition
    )
