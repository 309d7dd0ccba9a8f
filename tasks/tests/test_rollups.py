"""Metrics rollups: kept in step with the raw rows by every path that finishes tasks,
repairable from them, and giving the exact engine's numbers (percentiles within the
stated 0.99%)."""

from __future__ import annotations

import json
import math
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from tasks import histograms, metrics, metrics_display, metrics_rollup, rollups
from tasks.backfill import BackfillRow, tasks_backfill
from tasks.demo import seed_demo_tasks
from tasks.jobs import rebuild_metrics_rollups
from tasks.models import ExecutionTask, TaskMetricsRollup, TaskStatus
from tasks.services import Actor, fail_abandoned_tasks
from tasks.tests.test_metrics import make_task, random_tasks, store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BOUND = histograms.MAX_RELATIVE_ERROR


def post(client, url: str, body: dict):
    return client.post(url, json.dumps(body), content_type="application/json")


def assert_rollups_match_raw(since: datetime = NOW - timedelta(days=60), until: datetime = NOW + timedelta(days=2)):
    stored, recomputed = rollups.stored(since, until), rollups.recompute(since, until)
    assert stored == recomputed
    return recomputed


def assert_close(rollup: dict, exact: dict) -> None:
    """Same groups, same exact figures; percentiles within the stated bound (plus the
    0.05 ms each side may lose rounding to 0.1 ms)."""
    for field in ("count", "mean_ms", "max_ms", "failure_rate", "mean_ms_change"):
        assert rollup[field] == exact[field], (field, rollup, exact)
    for field in ("p50_ms", "p95_ms"):
        if exact[field] is None:
            assert rollup[field] is None
        else:
            assert abs(rollup[field] - exact[field]) <= BOUND * abs(exact[field]) + 0.1, (field, rollup, exact)


# --- Buckets and the error bound ---------------------------------------------------------


def test_every_duration_is_within_the_stated_error_of_its_buckets_representative():
    assert BOUND < 0.01
    values = list(range(0, 20_000)) + [int(1.37**k) for k in range(20, 130)] + [2**62, 2**63 - 1]
    for value in values:
        index = histograms.bucket_index(value)
        assert histograms.BOUNDS[index] <= value < histograms.BOUNDS[index + 1]
        assert abs(histograms.representative(index) - value) <= BOUND * value + 1e-9 * value, value
        assert histograms.representative(histograms.bucket_index(-value)) == -histograms.representative(index)
    # Below 50 ms every bucket is one integer: exact.
    assert all(histograms.representative(histograms.bucket_index(v)) == v for v in range(50))


@pytest.mark.parametrize("seed", range(6))
def test_histogram_percentiles_stay_within_the_bound_of_percentile_cont_on_skewed_data(seed):
    rng = random.Random(seed)
    n = rng.choice([1, 2, 3, 17, 1000, 20_000])
    shape = seed % 3
    if shape == 0:  # heavy log-normal tail
        values = [int(rng.lognormvariate(11, 1.6)) for _ in range(n)]
    elif shape == 1:  # Pareto: a few enormous outliers
        values = [int(50 * rng.paretovariate(0.8)) for _ in range(n)]
    else:  # two far-apart modes with gaps (interpolation across a gap)
        values = [rng.choice([rng.randint(80, 120), rng.randint(900_000, 5_000_000)]) for _ in range(n)]
    histogram: dict[int, int] = {}
    for value in values:
        histogram[histograms.bucket_index(value)] = histogram.get(histograms.bucket_index(value), 0) + 1
    ordered = sorted(values)
    worst = 0.0
    for fraction in (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0):
        exact = metrics.percentile_cont(ordered, fraction)
        approx = histograms.histogram_percentile(histogram, fraction)
        if exact:
            worst = max(worst, abs(approx - exact) / exact)
        assert abs(approx - exact) <= BOUND * exact + 1e-6, (fraction, approx, exact)
    assert worst <= BOUND


# --- Every writer keeps the rollups in step --------------------------------------------------


@pytest.mark.django_db
@override_settings(TASK_RUNNING_TIMEOUT_SECONDS=3600)
def test_rollups_equal_the_raw_rows_after_finishes_backfills_abandons_and_the_demo(agent, api_key):
    key, _ = api_key
    with time_machine.travel(NOW - timedelta(hours=3), tick=False):
        ids = [
            post(agent, "/api/v1/tasks", {"external_id": f"live-{i}", "task_type": "implement_idea",
                                          "ai_model": model}).json()["id"]
            for i, model in enumerate(["gpt-5.1", None, "gpt-5.1", "llama-4-70b"])
        ]  # fmt: skip
        for task_id in ids:
            assert post(agent, f"/api/v1/tasks/{task_id}/start", {}).status_code == 200
    for minutes, (task_id, outcome) in enumerate(zip(ids[:3], ["succeeded", "failed", "succeeded"], strict=True)):
        with time_machine.travel(NOW - timedelta(hours=2, minutes=minutes * 25), tick=False):
            assert post(agent, f"/api/v1/tasks/{task_id}/finish", {"outcome": outcome}).status_code == 200
            # A retried finish changes nothing, in the rollups either.
            assert post(agent, f"/api/v1/tasks/{task_id}/finish", {"outcome": outcome}).status_code == 200
    with time_machine.travel(NOW, tick=False):
        assert fail_abandoned_tasks() == 1  # live-3, running for 3 hours
        rows = [
            BackfillRow(
                external_id=f"old-{i}",
                task_type="self_improvement",
                status="failed" if i % 4 == 0 else "succeeded",
                started_at=NOW - timedelta(days=3, minutes=i * 7),
                finished_at=NOW - timedelta(days=3, minutes=i * 7) + timedelta(milliseconds=137 * i),
                ai_model=None if i % 3 == 0 else "claude-opus-5",
            )
            for i in range(300)
        ]
        tasks_backfill(actor=Actor.for_key(key), rows=rows)
        tasks_backfill(actor=Actor.for_key(key), rows=rows[:10])  # retry
        seed_demo_tasks(count=500, now=NOW)
        seed_demo_tasks(count=500, now=NOW)  # already there: adds nothing
    # Finishes (and the abandoned task) wait for the worker: 4 pending, then drained once.
    assert rollups.drain_pending() == 4
    assert rollups.drain_pending() == 0
    recomputed = assert_rollups_match_raw()
    hours = {k: t for k, t in recomputed.items() if k[0] == rollups.PERIOD_HOUR}
    assert sum(t.count for t in hours.values()) == ExecutionTask.objects.filter(status__in=rollups.FINISHED).count()
    llama = [t for (_, start, _, model), t in hours.items() if model == "llama-4-70b" and start == NOW]
    assert [(t.count, t.failed) for t in llama] == [(1, 1)]  # the abandoned task


@pytest.mark.django_db
def test_a_legacy_empty_model_name_stays_apart_from_no_model():
    at = NOW - timedelta(hours=1)
    store(
        make_task(finished_at=at, ai_model="", duration_ms=10), make_task(finished_at=at, ai_model=None, duration_ms=40)
    )
    assert sorted((r.period, r.has_model, r.model, r.count) for r in TaskMetricsRollup.objects.all()) == [
        (period, has_model, "", 1) for period in ("6h", "day", "hour") for has_model in (False, True)
    ]
    window = metrics.Window(NOW - timedelta(hours=3), NOW)
    exact = metrics.task_metrics(window=window, group_by="ai_model", engine="exact")
    assert metrics.task_metrics(window=window, group_by="ai_model", engine="rollup") == exact  # < 50 ms: exact buckets
    assert [g["ai_model"] for g in exact["groups"]] == ["", None]


@pytest.mark.django_db
def test_a_cancelled_or_running_task_is_not_in_the_rollups():
    store(
        make_task(finished_at=NOW - timedelta(hours=1), duration_ms=None, status=TaskStatus.CANCELLED),
        make_task(finished_at=None, duration_ms=None, status=TaskStatus.RUNNING),
    )
    assert not TaskMetricsRollup.objects.exists()


@pytest.mark.django_db
def test_a_finish_writes_no_rollup_row_and_the_drain_adds_it_once(agent):
    task_id = post(agent, "/api/v1/tasks", {"external_id": "x", "task_type": "implement_idea"}).json()["id"]
    post(agent, f"/api/v1/tasks/{task_id}/start", {})
    with CaptureQueriesContext(connection) as finishing:
        assert post(agent, f"/api/v1/tasks/{task_id}/finish", {"outcome": "succeeded"}).status_code == 200
    assert not any("tasks_metrics_rollup" in q["sql"] for q in finishing.captured_queries)
    assert ExecutionTask.objects.get().rollup_pending
    assert not TaskMetricsRollup.objects.exists()
    assert rollups.pending_lag()[0] == 1
    assert rollups.drain_pending(batch=1) == 1
    assert rollups.drain_pending() == 0
    assert not ExecutionTask.objects.get().rollup_pending
    assert sorted(TaskMetricsRollup.objects.values_list("period", "count")) == [("6h", 1), ("day", 1), ("hour", 1)]
    assert rollups.pending_lag() == (0, None)


@pytest.mark.django_db
@pytest.mark.parametrize("drained", [0, 150, 400], ids=["nothing-drained", "part-drained", "all-drained"])
def test_the_rollup_engine_is_exact_whatever_the_drain_has_not_done_yet(drained):
    """Tasks finished through the API stay pending until the worker drains them; the
    rollup engine reads them from the raw rows, so its figures do not depend on the lag."""
    rng = random.Random(8)
    store(*random_tasks(rng, 600, days=9))  # folded already, as backfills are
    late = random_tasks(rng, 400, days=9)
    for task in late:
        task.rollup_pending = True  # as task_finish leaves them
    ExecutionTask.objects.bulk_create(late)
    if drained:
        assert rollups._drain_batch(drained) == drained  # one batch of the worker's
    assert ExecutionTask.objects.filter(rollup_pending=True).count() == 400 - drained
    window = metrics.Window(NOW - timedelta(days=7, minutes=30), NOW - timedelta(minutes=10))
    for group_by in ("task_type", "ai_model"):
        rollup = metrics.task_metrics(window=window, group_by=group_by, engine="rollup")
        exact = metrics.task_metrics(window=window, group_by=group_by, engine="exact")
        assert len(rollup["groups"]) == len(exact["groups"])
        for r, e in zip(rollup["groups"], exact["groups"], strict=True):
            assert_close(r, e)
    series = metrics.task_series(window=window, bucket="hour", engine="rollup")
    exact_series = metrics.task_series(window=window, bucket="hour", engine="exact")
    assert [p["count"] for p in series["points"]] == [p["count"] for p in exact_series["points"]]
    rollups.drain_pending()
    assert_rollups_match_raw()


def test_the_drain_runs_every_few_seconds_from_the_periodic_list():
    from fsar.periodic import PERIODIC_JOBS
    from tasks.jobs import drain_metrics_pending

    assert (drain_metrics_pending, rollups.DRAIN_INTERVAL_SECONDS) in PERIODIC_JOBS
    assert rollups.DRAIN_INTERVAL_SECONDS <= 10


# --- Repair ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_repair_job_recomputes_damaged_days_and_is_idempotent():
    store(*random_tasks(random.Random(21), 800, days=5))
    expected = assert_rollups_match_raw()
    TaskMetricsRollup.objects.filter(period="hour").order_by("start")[:1].get().delete()
    TaskMetricsRollup.objects.filter(period="day").update(count=1, histogram=[3, 1])
    ExecutionTask.objects.filter(pk__in=ExecutionTask.objects.order_by("pk").values("pk")[:5]).delete()  # raw changed
    TaskMetricsRollup.objects.create(
        period="hour", start=NOW - timedelta(days=1), task_type="implement_idea", has_model=False, model="", count=9
    )
    assert rollups.stored(NOW - timedelta(days=6), NOW) != rollups.recompute(NOW - timedelta(days=6), NOW)
    counted = rebuild_metrics_rollups((NOW - timedelta(days=6)).isoformat(), NOW.isoformat())
    after = assert_rollups_match_raw()
    assert after != expected  # the deleted tasks are gone from the rollups too
    assert counted == ExecutionTask.objects.filter(status__in=rollups.FINISHED, finished_at__lt=NOW).count()
    assert rebuild_metrics_rollups(NOW - timedelta(days=6), NOW) == counted
    assert_rollups_match_raw()


@pytest.mark.django_db
def test_the_repair_job_defaults_to_the_last_48_hours():
    store(make_task(finished_at=NOW - timedelta(hours=30)), make_task(finished_at=NOW - timedelta(days=4)))
    TaskMetricsRollup.objects.all().delete()
    with time_machine.travel(NOW, tick=False):
        assert rebuild_metrics_rollups() == 1
    assert {r.start.date() for r in TaskMetricsRollup.objects.all()} == {(NOW - timedelta(hours=30)).date()}


@pytest.mark.django_db
def test_rebuild_metrics_rebuilds_everything_with_progress(capsys):
    ExecutionTask.objects.bulk_create(random_tasks(random.Random(8), 300, days=12))  # no rollups yet
    with time_machine.travel(NOW, tick=False):
        call_command("rebuild_metrics")
    out = capsys.readouterr().out
    assert "Rebuilding 1" in out and "days," in out and "Rebuilt the rollups of" in out
    assert_rollups_match_raw()


# --- The rollup engine answers like the exact one --------------------------------------------


@pytest.mark.django_db
def test_the_rollup_engine_gives_the_exact_engines_numbers_and_percentiles_within_the_bound():
    store(*random_tasks(random.Random(13), 3000, days=20))
    windows = [
        metrics.Window(NOW - timedelta(days=7, hours=5, minutes=13), NOW - timedelta(minutes=17)),  # ragged edges
        metrics.Window(NOW - timedelta(days=3), NOW),  # whole hours and days
        metrics.Window(NOW - timedelta(minutes=50), NOW - timedelta(minutes=5)),  # inside one hour
        metrics.Window(NOW - timedelta(hours=1, minutes=30), NOW - timedelta(minutes=20)),  # two partial hours
        metrics.Window(NOW - timedelta(hours=30, minutes=1), NOW - timedelta(hours=2, minutes=59)),  # no whole day
    ]
    for window in windows:
        for group_by in ("task_type", "ai_model"):
            rollup = metrics.task_metrics(window=window, group_by=group_by, engine="rollup")
            exact = metrics.task_metrics(window=window, group_by=group_by, engine="exact")
            assert [(g["task_type"], g["ai_model"]) for g in rollup["groups"]] == [
                (g["task_type"], g["ai_model"]) for g in exact["groups"]
            ]
            for got, want in zip(rollup["groups"], exact["groups"], strict=True):
                assert_close(got, want)
        for bucket in ("hour", "day"):
            for task_type, ai_model in (
                (None, metrics.ANY_MODEL),
                ("implement_idea", None),
                ("self_improvement", "claude-opus-5"),
            ):
                kwargs = {"window": window, "bucket": bucket, "task_type": task_type, "ai_model": ai_model}
                rollup = metrics.task_series(**kwargs, engine="rollup")
                exact = metrics.task_series(**kwargs, engine="exact")
                assert [p["start"] for p in rollup["points"]] == [p["start"] for p in exact["points"]]
                for got, want in zip(rollup["points"], exact["points"], strict=True):
                    assert_close(got, want)
    overview_window = metrics.Window(NOW - timedelta(days=7), NOW)
    rollup, exact = (metrics_display.metrics_overview(window=overview_window, engine=e) for e in ("rollup", "exact"))
    for got, want in zip(rollup["groups"], exact["groups"], strict=True):
        assert_close(got, want)
    assert rollup["slowest_type"]["task_type"] == exact["slowest_type"]["task_type"]
    assert rollup["biggest_regression"]["ai_model"] == exact["biggest_regression"]["ai_model"]
    summaries = (metrics_display.dashboard_summary(now=NOW, engine=e) for e in ("rollup", None))
    for got, want in zip(*summaries, strict=True):
        assert (got["count"], got["mean_ms"], got["mean_change"]) == (
            want["count"],
            want["mean_ms"],
            want["mean_change"],
        )
        assert abs(got["p95_ms"] - want["p95_ms"]) <= BOUND * want["p95_ms"] + 0.1


@pytest.mark.django_db
def test_large_windows_are_answered_from_the_rollups_small_ones_exactly_and_exact_on_request(agent):
    store(*random_tasks(random.Random(17), 600, days=8))
    params = {"since": "2026-11-13T12:00:00Z", "until": "2026-11-20T12:00:00Z", "group_by": "ai_model"}
    window = metrics.Window(NOW - timedelta(days=7), NOW)
    exact = agent.get("/api/v1/metrics/tasks", params).json()
    assert exact == json.loads(json.dumps(metrics.task_metrics(window=window, group_by="ai_model", engine="exact"),
                                          default=lambda d: d.isoformat().replace("+00:00", "Z")))  # fmt: skip
    with override_settings(METRICS_EXACT_MAX_TASKS=100):
        assert metrics.resolve_engine(None, window) == "rollup"
        from_rollups = agent.get("/api/v1/metrics/tasks", params).json()
        asked_exact = agent.get("/api/v1/metrics/tasks", {**params, "exact": "true"}).json()
        series = agent.get(
            "/api/v1/metrics/tasks/series", {"since": params["since"], "until": params["until"], "bucket": "day"}
        )
    assert asked_exact == exact
    assert from_rollups != exact  # some percentile differs: it did come from histograms
    for got, want in zip(from_rollups["groups"], exact["groups"], strict=True):
        assert_close(got, want)
    assert series.status_code == 200, series.json()
    assert sum(p["count"] for p in series.json()["points"]) == sum(g["count"] for g in exact["groups"])


def test_a_ragged_window_reads_whole_days_then_six_hour_blocks_then_hours_and_raw_edges():
    window = metrics.Window(datetime(2026, 11, 13, 7, 40, tzinfo=UTC), datetime(2026, 11, 20, 11, 5, tzinfo=UTC))
    raw = metrics_rollup.rollup_cover(window, None).raw
    assert raw == [(window.since, datetime(2026, 11, 13, 8, tzinfo=UTC)), (datetime(2026, 11, 20, 11, tzinfo=UTC),
                                                                             window.until)]  # fmt: skip
    blocks = metrics_rollup._blocks(datetime(2026, 11, 13, 8, tzinfo=UTC), datetime(2026, 11, 20, 11, tzinfo=UTC))
    assert [(p, a.strftime("%d %H"), b.strftime("%d %H")) for p, a, b in blocks] == [
        ("hour", "13 08", "13 12"),  # 4 hour rows
        ("6h", "13 12", "14 00"),  # 2 six-hour rows
        ("day", "14 00", "20 00"),  # 6 day rows
        ("6h", "20 00", "20 06"),
        ("hour", "20 06", "20 11"),
    ]


@pytest.mark.django_db
def test_the_rollup_engine_makes_the_same_queries_for_ten_tasks_and_a_thousand():
    rng = random.Random(5)
    window = metrics.Window(NOW - timedelta(days=7, minutes=30), NOW - timedelta(minutes=10))
    store(*random_tasks(rng, 10, days=9))
    with CaptureQueriesContext(connection) as small:
        metrics_display.metrics_overview(window=window, engine="rollup")
    store(*random_tasks(rng, 1000, days=9))
    with CaptureQueriesContext(connection) as large:
        metrics_display.metrics_overview(window=window, engine="rollup")
    assert len(small) == len(large), [q["sql"] for q in large]


# --- PostgreSQL: concurrency ------------------------------------------------------------------


@pytest.mark.postgres(reason="concurrent rollup updates")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_tasks_finishing_at_the_same_time_in_the_same_hour_all_count():
    at = NOW - timedelta(minutes=30)
    per_thread = 25
    batches = [
        [make_task(finished_at=at, duration_ms=100 + 10 * i + t, ai_model=None if i % 2 else "gpt-5.1")
         for i in range(per_thread)]
        for t in range(2)
    ]  # fmt: skip
    for batch in batches:
        ExecutionTask.objects.bulk_create(batch)
    barrier = threading.Barrier(2)
    errors = []

    def finish_each(batch):
        try:
            barrier.wait()
            for task in batch:  # one transaction per task, like the API
                rollups.fold_tasks([task])
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=finish_each, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    recomputed = assert_rollups_match_raw()
    assert sum(t.count for k, t in recomputed.items() if k[0] == rollups.PERIOD_HOUR) == 2 * per_thread
    assert sum(sum(t.histogram.values()) for k, t in recomputed.items() if k[0] == rollups.PERIOD_DAY) == 2 * per_thread


@pytest.mark.postgres(reason="concurrent rollup updates")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_large_and_small_folds_at_the_same_time_into_the_same_rows_all_count():
    """Two large folds (the temporary-table path, over FEW_ROWS rows each) and a stream of
    one-task folds (the single-statement path) into overlapping hours, at once: no
    deadlock, no lost addition, histograms merged exactly."""
    rng = random.Random(7)
    hours = [NOW - timedelta(hours=h, minutes=20) for h in range(120)]  # 120 hours × 2 models: 300+ rows a fold
    large = [
        [make_task(finished_at=rng.choice(hours), duration_ms=rng.randint(1, 90_000),
                   ai_model=rng.choice(["gpt-5.1", None])) for _ in range(400)]
        for _ in range(2)
    ]  # fmt: skip
    small = [make_task(finished_at=rng.choice(hours), duration_ms=rng.randint(1, 90_000)) for _ in range(40)]
    for batch in [*large, small]:
        ExecutionTask.objects.bulk_create(batch)
    assert len(rollups.accumulate(rollups.task_rows(large[0]))) > rollups.FEW_ROWS
    barrier = threading.Barrier(3)
    errors = []

    def fold(batches):
        try:
            barrier.wait()
            for batch in batches:
                rollups.fold_tasks(batch)  # its own transaction each
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fold, args=(b,)) for b in ([large[0]], [large[1]], [[t] for t in small])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    recomputed = assert_rollups_match_raw()
    assert sum(t.count for k, t in recomputed.items() if k[0] == rollups.PERIOD_DAY) == 840


@pytest.mark.postgres(reason="concurrent rollup updates")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_rebuild_while_tasks_finish_loses_none_of_them():
    at = NOW - timedelta(hours=1, minutes=5)
    ExecutionTask.objects.bulk_create([make_task(finished_at=at - timedelta(minutes=i)) for i in range(200)])
    late = [make_task(finished_at=at, duration_ms=5 + i) for i in range(40)]
    errors = []

    def finish_late():
        try:
            for i, task in enumerate(late):
                task.rollup_pending = True  # finishing, as task_finish does
                task.save()
                if i % 7 == 0:
                    rollups.drain_pending()
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=finish_late)
    thread.start()
    for _ in range(5):
        rollups.rebuild(at - timedelta(hours=1), at + timedelta(hours=1))
    thread.join()
    assert errors == []
    rollups.drain_pending()
    assert sum(t.count for k, t in assert_rollups_match_raw().items() if k[0] == rollups.PERIOD_DAY) == 240
    assert math.isclose(240, ExecutionTask.objects.count())


def test_the_repair_job_runs_daily_from_the_periodic_list():
    from fsar.periodic import PERIODIC_JOBS

    assert (rebuild_metrics_rollups, 86_400) in PERIODIC_JOBS


@pytest.mark.postgres(reason="a real RQ worker on Redis, which CI's PostgreSQL pass runs")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_rq_worker_repairs_the_rollups_from_redis(rq_worker):
    import django_rq

    now = datetime.now(UTC)
    ExecutionTask.objects.bulk_create([make_task(finished_at=now - timedelta(hours=h)) for h in range(1, 30, 3)])
    assert not TaskMetricsRollup.objects.exists()
    django_rq.get_queue("default", is_async=True).enqueue(
        rebuild_metrics_rollups, (now - timedelta(days=2)).isoformat(), now.isoformat()
    )
    rq_worker()
    assert (
        sum(t.count for k, t in assert_rollups_match_raw(now - timedelta(days=3), now).items() if k[0] == "day") == 10
    )


@pytest.mark.parametrize("seed", range(4))
def test_totals_add_up_stored_rows_whatever_the_order_of_adds_merges_and_reads(seed):
    """A Totals keeps its stored rows as they are (no counts list) until a percentile or its
    histogram is read: adding, merging (with or without rows of their own) and reading give
    the same histogram."""
    rng = random.Random(seed)
    rows = []
    for _ in range(rng.randint(1, 6)):
        values = [rng.randint(-50, 400_000) for _ in range(rng.randint(1, 40))]
        histogram: dict[int, int] = {}
        for value in values:
            histogram[histograms.bucket_index(value)] = histogram.get(histograms.bucket_index(value), 0) + 1
        rows.append(histograms.dense(histogram))
    want: dict[int, int] = {}
    for row in rows:
        for position, tasks in enumerate(row[1:]):
            if tasks:
                want[row[0] + position] = want.get(row[0] + position, 0) + tasks
    one = histograms.Totals()
    for row in rows:
        one.add(1, 0, 1, 1, 1, row)
    assert one.flush().histogram == want
    parts = [histograms.Totals() for _ in rows]
    for part, row in zip(parts, rows, strict=True):
        part.add(1, 0, 1, 1, 1, row)
    merged = histograms.Totals()
    merged.add_durations([7])  # a histogram of its own too
    for part in parts:
        merged.merge(part)
    assert merged.flush().histogram == {**want, 7: want.get(7, 0) + 1}
    pairs = histograms.Totals()
    for i in range(0, len(rows), 2):
        pair = histograms.Totals()
        for row in rows[i : i + 2]:
            pair.add(1, 0, 1, 1, 1, row)
        pairs.merge(pair)
    assert pairs.percentile(0.5) == histograms.histogram_percentile(want, 0.5)
    assert pairs.count == len(rows)


@pytest.mark.parametrize("seed", range(12))
def test_median_and_p95_read_from_the_added_up_rows_give_the_folded_histograms_percentiles(seed):
    """median_and_p95 on a Totals holding added-up stored rows (its counts list), a first
    row kept as it is, and durations of its own reads the ranks from the counts: the very
    values histogram_percentiles gives on the folded histogram; the Totals stays readable."""
    rng = random.Random(seed)

    def row() -> list[int]:
        histogram: dict[int, int] = {}
        for _ in range(rng.randint(1, 60)):
            key = histograms.bucket_index(rng.choice([rng.randint(-30, 40), rng.randint(0, 900_000)]))
            histogram[key] = histogram.get(key, 0) + 1
        return histograms.dense(histogram)

    def build() -> histograms.Totals:
        local = random.Random(seed)
        totals = histograms.Totals()
        steps = ["row", "merge", "durations"] * 3
        local.shuffle(steps)
        for step in steps:
            if step == "row":
                totals.add(1, 0, 1, 1, 1, rows.pop() if rows else None)
            elif step == "merge":
                other = histograms.Totals()
                for _ in range(local.randint(0, 3)):
                    other.add(1, 0, 1, 1, 1, rows.pop() if rows else None)
                if local.random() < 0.5:
                    other.add_durations([local.randint(0, 5000) for _ in range(local.randint(0, 5))])
                totals.merge(other)
            else:
                totals.add_durations([local.randint(-20, 700_000) for _ in range(local.randint(0, 8))])
        return totals

    made = [row() for _ in range(12)]
    rows = list(made)
    fast = build()
    rows = list(made)
    folded = build().flush().histogram
    want = tuple(histograms.histogram_percentiles(folded, (0.5, 0.95)))
    assert fast.median_and_p95() == want
    assert fast.median_and_p95() == want  # read twice: the same
    assert fast.flush().histogram == folded
    fast.add(1, 0, 1, 1, 1, [5, 3])  # and it adds up on after a read
    folded[5] = folded.get(5, 0) + 3
    assert fast.flush().histogram == folded


@pytest.mark.parametrize("seed", range(6))
def test_durations_counted_at_once_fall_in_the_buckets_bucket_index_gives(seed):
    """add_durations counts non-negative durations in C (bisect on BOUNDS) as one more dense
    part: the histogram is the one bucket_index gives duration by duration, boundaries,
    zero and huge values included; a negative duration takes the per-duration path."""
    rng = random.Random(seed)
    durations = [rng.randint(0, 3_000_000) for _ in range(rng.randint(1, 400))]
    durations += [0, 1, *histograms.BOUNDS[1:40], histograms.BOUNDS[900] - 1, histograms.BOUNDS[900], 2**62]
    if seed % 2:
        durations.append(-rng.randint(1, 90_000))
    rng.shuffle(durations)
    want: dict[int, int] = {}
    for duration in durations:
        want[histograms.bucket_index(duration)] = want.get(histograms.bucket_index(duration), 0) + 1
    counted = histograms.Totals()
    counted.add_durations(durations)
    counted.add_durations([])
    assert counted.flush().histogram == want
    by_task = histograms.Totals()
    for duration in durations:
        by_task.add_task("succeeded", duration)
    again = histograms.Totals()
    again.add_durations(durations)
    assert again.median_and_p95() == by_task.median_and_p95()


def test_a_groups_stored_rows_merged_into_two_wider_groups_stay_its_own():
    """The dense parts a Totals keeps are shared, never changed, by the Totals it is merged
    into (the page merges a fine group into its bucket's and its model's sums): each sum,
    read in any order, and the group itself give their own histograms."""
    rows = [histograms.dense({3: 2, 7: 1}), histograms.dense({5: 4}), histograms.dense({-2: 1, 6: 3})]
    fine = histograms.Totals()
    for row in rows:
        fine.add(1, 0, 1, 1, 1, row)
    fine.add_durations([40, 41])
    by_bucket, by_model = histograms.Totals(), histograms.Totals()
    by_bucket.add(1, 0, 1, 1, 1, histograms.dense({5: 10}))
    by_bucket.merge(fine)
    by_model.merge(fine)
    own = {3: 2, 7: 1, 5: 4, -2: 1, 6: 3}
    for duration in (40, 41):
        own[histograms.bucket_index(duration)] = own.get(histograms.bucket_index(duration), 0) + 1
    assert by_bucket.median_and_p95() == tuple(histograms.histogram_percentiles({**own, 5: 14}, (0.5, 0.95)))
    table = histograms.Totals()
    table.merge(by_bucket)
    table.merge(by_model)
    doubled = {k: 2 * v for k, v in own.items()}
    assert table.flush().histogram == {**doubled, 5: 18}
    assert by_model.flush().histogram == own
    assert fine.flush().histogram == own
    assert rows == [[3, 2, 0, 0, 0, 1], [5, 4], [-2, 1, 0, 0, 0, 0, 0, 0, 0, 3]]  # untouched


def test_a_reads_stored_histograms_are_decoded_in_one_go_or_one_by_one_alike():
    texts = ["[3, 2, 0, 1]", "[]", "[-4, 1]"]
    assert metrics_rollup._decoded(texts) == [[3, 2, 0, 1], [], [-4, 1]]
    assert metrics_rollup._decoded([texts[0], [9, 1]]) == [[3, 2, 0, 1], [9, 1]]
    assert metrics_rollup._decoded([]) == []


# --- Both windows in one statement (PostgreSQL) ----------------------------------------------


def _figures(groups) -> dict:
    return {
        key: (t.count, t.failed, t.timed, t.sum_ms, t.max_ms, t.backfilled, t.flush().histogram)
        for key, t in groups.items()
        if t.count
    }


@pytest.mark.postgres(reason="window_pair is PostgreSQL's one-statement read")
@pytest.mark.django_db
def test_the_one_statement_read_gives_what_the_separate_reads_give_with_pending_tasks_edges_and_filters():
    rng = random.Random(31)
    folded = random_tasks(rng, 700, days=16)
    for task in folded:
        task.source = rng.choice(["api", "backfill"])
    store(*folded)
    late = random_tasks(rng, 200, days=16)
    for task in late:
        task.source = rng.choice(["api", "backfill"])
        task.rollup_pending = True  # finished, not drained yet
    ExecutionTask.objects.bulk_create(late)
    windows = [
        metrics.Window(NOW - timedelta(days=7, minutes=23), NOW - timedelta(minutes=7)),  # ragged edges
        metrics.Window(NOW - timedelta(days=3), NOW),  # whole hours only
        metrics.Window(NOW - timedelta(minutes=50), NOW - timedelta(minutes=10)),  # within one hour
    ]
    for window in windows:
        for bucket in (None, "hour", "day"):
            for task_type, ai_model in ((None, metrics.ANY_MODEL), ("implement_idea", None), (None, "gpt-5.1")):
                query = metrics.Query(
                    window=window, by_model=True, bucket=bucket, task_type=task_type, ai_model=ai_model
                )
                current, previous = metrics_rollup.window_pair(query, backfilled=True)
                assert _figures(current) == _figures(metrics_rollup.rollup_totals(query, backfilled=True))
                previous_query = metrics.Query(
                    window=window.previous(), by_model=True, task_type=task_type, ai_model=ai_model
                )
                assert previous.stats(percentiles=False) == metrics_rollup.sum_rollups(previous_query)


@pytest.mark.postgres(reason="window_pair is PostgreSQL's one-statement read")
@pytest.mark.django_db
@pytest.mark.parametrize("bucket", [None, "hour", "day"])
def test_a_window_ending_now_reads_its_last_partial_hour_from_the_rollup_row_unless_a_task_finished_later(bucket):
    """The last partial hour [11:00, 11:53) of a window ending at 11:53 comes from its hour
    row (and its pending tasks) when no task of that hour finished at or after 11:53: the
    raw rows' figures, for the cost of one row per group however full the hour is. When one
    did (the row counts it), the raw rows answer."""
    from django.db.models import F

    rng = random.Random(36)
    until = NOW - timedelta(minutes=7)
    before = [t for t in random_tasks(rng, 900, days=2) if t.finished_at is None or t.finished_at < until]
    store(*before)
    pending = [t for t in random_tasks(rng, 150, days=2) if t.finished_at is not None and t.finished_at < until]
    for task in pending:
        task.rollup_pending = True  # finished, not drained yet
    ExecutionTask.objects.bulk_create(pending)
    query = metrics.Query(
        window=metrics.Window(NOW - timedelta(days=1, minutes=23), until), by_model=True, bucket=bucket
    )

    def one_statement() -> dict:
        return _figures(metrics_rollup.window_pair(query, backfilled=True)[0])

    def raw_edges() -> dict:
        return _figures(metrics_rollup.rollup_totals(query, backfilled=True))

    as_stored = raw_edges()
    assert one_statement() == as_stored
    # The row answers, not the raw rows: a duration changed behind the rollups' back shows in the raw read only.
    edge = ExecutionTask.objects.filter(
        finished_at__gte=until.replace(minute=0), finished_at__lt=until, rollup_pending=False, duration_ms__gt=0
    )
    assert edge.exists()
    ExecutionTask.objects.filter(pk=edge.first().pk).update(duration_ms=F("duration_ms") + 50_000_000)
    assert raw_edges() != as_stored
    assert one_statement() == as_stored
    # A task of that hour finished after the window's end: its row counts it, so the raw rows answer.
    store(make_task(finished_at=until + timedelta(minutes=1)))
    assert one_statement() == raw_edges() != as_stored


@pytest.mark.postgres(reason="window_pair is PostgreSQL's one-statement read")
@pytest.mark.django_db
def test_auto_counts_the_last_partial_hours_row_so_a_busy_first_hour_is_read_from_the_rollups():
    """A new installation's tasks all lie in the window's last, partial hour: the auto
    engine counts that hour's rollup row with the whole hours', so above the limit the
    rollups answer (the soak's metrics read grew with every task while it stayed exact)."""
    until = NOW - timedelta(minutes=7)
    store(*(make_task(finished_at=until - timedelta(seconds=10 + i)) for i in range(30)))
    query = metrics.Query(window=metrics.Window(until - timedelta(days=7), until), by_model=True)
    assert metrics_rollup.window_pair(query, auto_max=29) is not None  # 30 tasks: over the limit, rollups
    assert metrics_rollup.window_pair(query, auto_max=30) is None  # at the limit: exact


@pytest.mark.postgres(reason="window_pair is PostgreSQL's one-statement read")
@pytest.mark.django_db
def test_the_api_and_the_page_read_both_windows_in_one_statement_and_auto_stays_exact_on_small_windows(settings):
    store(*random_tasks(random.Random(32), 300, days=16))
    window = metrics.Window(NOW - timedelta(days=7, minutes=23), NOW - timedelta(minutes=7))
    settings.METRICS_EXACT_MAX_TASKS = 0
    with CaptureQueriesContext(connection) as queries:
        rollup = metrics.task_metrics(window=window, group_by="ai_model")
        metrics_display.metrics_overview(window=window)
    assert len(queries.captured_queries) == 2
    assert rollup == metrics.task_metrics(window=window, group_by="ai_model", engine="rollup")
    settings.METRICS_EXACT_MAX_TASKS = 10**9
    assert metrics.task_metrics(window=window, group_by="ai_model") == metrics.task_metrics(
        window=window, group_by="ai_model", engine="exact"
    )


@pytest.mark.postgres(reason="window_pair is PostgreSQL's one-statement read")
@pytest.mark.django_db
def test_the_one_statement_read_chooses_the_engine_on_the_count_resolve_engine_takes(settings):
    store(*random_tasks(random.Random(33), 400, days=16))
    window = metrics.Window(NOW - timedelta(days=7, minutes=23), NOW - timedelta(minutes=7))
    cover = metrics_rollup.rollup_cover(window, None)
    rolled_up = sum(TaskMetricsRollup.objects.filter(cover.rows).values_list("count", flat=True))
    assert 0 < rolled_up < 400
    settings.METRICS_EXACT_MAX_TASKS = rolled_up
    assert metrics.resolve_engine(None, window) == "sql"
    settings.METRICS_EXACT_MAX_TASKS = rolled_up - 1
    assert metrics.resolve_engine(None, window) == "rollup"
    for query in (
        metrics.Query(window=window, by_model=True),
        metrics.Query(window=window, bucket="day", by_model=True),
        metrics.Query(window=window, bucket="hour", by_model=True),
        metrics.Query(window=window, by_model=True, task_type="self_improvement"),
    ):
        assert metrics_rollup.window_pair(query, auto_max=rolled_up) is None, query
        assert metrics_rollup.window_pair(query, auto_max=rolled_up - 1) is not None, query


@pytest.mark.postgres(reason="PostgreSQL's parallel plans")
@pytest.mark.django_db
def test_the_one_statement_read_is_never_planned_in_parallel():
    """Starting parallel workers costs more than the whole statement; with parallel plans
    made free the planner would take one for the branches, unless the statement rules
    them out (metrics_rollup._SERIAL)."""
    store(*random_tasks(random.Random(34), 300, days=16))
    # Ending on the hour (no last partial hour, whose guarded branches the planner keeps
    # serial anyway): without _SERIAL this statement is planned in parallel, so the test can tell.
    on_the_hour = NOW.replace(minute=0, second=0, microsecond=0)
    ragged = metrics.Window(NOW - timedelta(days=7, minutes=23), NOW - timedelta(minutes=7))
    for window in (metrics.Window(on_the_hour - timedelta(days=7, minutes=23), on_the_hour), ragged):
        with CaptureQueriesContext(connection) as queries:
            metrics_rollup.window_pair(metrics.Query(window=window, by_model=True), auto_max=0)
        sql = queries.captured_queries[-1]["sql"]
        assert metrics_rollup._SERIAL in sql
        with connection.cursor() as cursor:
            for setting in ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size",
                            "min_parallel_index_scan_size"):  # fmt: skip
                cursor.execute(f"SET LOCAL {setting} = 0")
            plans = {}
            for label, statement in (("serial", sql), ("without", sql.replace(metrics_rollup._SERIAL, ""))):
                cursor.execute("EXPLAIN " + statement)
                plans[label] = "\n".join(line for (line,) in cursor.fetchall())
        if window is not ragged:
            assert "Gather" in plans["without"] or "Parallel" in plans["without"], plans["without"]  # it can tell
        assert "Gather" not in plans["serial"] and "Parallel" not in plans["serial"], plans["serial"]
