"""The model series' points are summed per task type × model by the database
(indicators.sources.model_groups): the same points as the Python computation over
the rows, and the periodic job's memory does not grow with a bucket's tasks."""

from __future__ import annotations

import gc
import math
import random
import tracemalloc
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from indicators import observations, sources
from indicators.observations import RegistrationObs, TaskObs
from indicators.services.points import bucket_observations
from tasks.models import ExecutionTask, TaskSource, TaskStatus

pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 3, tzinfo=UTC)
END = START + timedelta(days=1)


def old_model_points(tasks, registrations):
    """The model points as computed before the database summed them (a copy of the
    old observations.model_points, kept as this test's reference)."""

    def percentile(values, fraction):
        ordered = sorted(values)
        position = fraction * (len(ordered) - 1)
        low, high = math.floor(position), math.ceil(position)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    groups = defaultdict(list)
    for t in tasks:
        groups[(t.task_type, t.ai_model or observations.NO_MODEL)].append(t)
    points = {}

    def put(key, labels, value, n):
        points[(key, observations.label_key(labels))] = (float(value), int(n), labels)

    for (task_type, model), rows in groups.items():
        labels = {"task_type": task_type, "ai_model": model}
        durations = [float(t.duration_ms) for t in rows if t.duration_ms is not None]
        if durations:
            put("model.mean_ms", labels, sum(durations) / len(durations), len(durations))
            put("model.p95_ms", labels, percentile(durations, 0.95), len(durations))
        put("model.failure_rate", labels, sum(t.failed for t in rows) / len(rows), len(rows))
        costs = [t.cost_micros for t in rows if t.cost_micros is not None]
        if costs:
            put("model.cost_micros", labels, sum(costs) / len(costs), len(costs))
    held = defaultdict(list)
    for r in registrations:
        held[(r.task_type, r.ai_model or observations.NO_MODEL)].append(r.held)
    for (task_type, model), flags in held.items():
        put("model.held_share", {"task_type": task_type, "ai_model": model}, sum(flags) / len(flags), len(flags))
    return points


def store(tasks: list[TaskObs], registrations: list[RegistrationObs], *, tag: str = "t", source=TaskSource.API) -> None:
    """Finished tasks as task rows; registrations as the task history's `+` rows
    (bulk: no signals, so no history of their own for the task rows)."""
    rows = [
        ExecutionTask(
            external_id=f"{tag}-f{i}",
            task_type=t.task_type,
            ai_model=t.ai_model,
            status=TaskStatus.FAILED if t.failed else TaskStatus.SUCCEEDED,
            created_at=t.finished_at - timedelta(seconds=1),
            started_at=t.finished_at - timedelta(seconds=1),
            finished_at=t.finished_at,
            duration_ms=t.duration_ms,
            cost_micros=t.cost_micros,
            rollup_pending=False,
            source=source,
        )
        for i, t in enumerate(tasks)
    ]
    ExecutionTask.objects.bulk_create(rows, batch_size=2_000)
    history = ExecutionTask.history.model
    names = [f.attname for f in ExecutionTask._meta.concrete_fields if hasattr(history, f.attname)]
    registered = []
    for i, r in enumerate(registrations):
        task = ExecutionTask(
            id=10_000_000 + i,
            external_id=f"{tag}-r{i}",
            task_type=r.task_type,
            ai_model=r.ai_model,
            status=TaskStatus.HELD if r.held else TaskStatus.REGISTERED,
            source=source,
            created_at=r.at,
        )
        values = {name: getattr(task, name) for name in names}
        registered.append(history(**values, history_date=r.at, history_type="+", history_change_reason="test"))
    history.objects.bulk_create(registered, batch_size=2_000)


def varied(rng: random.Random) -> tuple[list[TaskObs], list[RegistrationObs]]:
    """Groups of 1 to 41 rows (odd and even counts), null and empty models, null
    durations and costs, a group without any duration, one without any cost."""
    tasks, registrations = [], []
    groups = [
        ("implement_idea", "model-a", 41),
        ("implement_idea", "model-b", 40),
        ("implement_idea", None, 7),
        ("implement_idea", "", 6),  # an empty model is NO_MODEL's, with the nulls
        ("self_improvement", "model-a", 1),
        ("self_improvement", "model-b", 2),
        ("self_improvement", "model-c", 21),
        ("self_improvement", "untimed", 5),
        ("self_improvement", "uncosted", 20),
    ]
    for task_type, model, count in groups:
        for _ in range(count):
            at = START + timedelta(seconds=rng.uniform(0, 86_399))
            duration = (
                None if model == "untimed" or (count > 2 and rng.random() < 0.1) else int(rng.lognormvariate(8, 1.2))
            )
            cost = None if model == "uncosted" or (count > 2 and rng.random() < 0.2) else rng.randint(0, 5_000_000)
            tasks.append(TaskObs(at, task_type, model, rng.random() < 0.2, duration, cost))
        for _ in range(max(1, count // 2)):
            at = START + timedelta(seconds=rng.uniform(0, 86_399))
            registrations.append(RegistrationObs(at, task_type, model, rng.random() < 0.3))
    registrations.append(RegistrationObs(START + timedelta(hours=3), "implement_idea", "only-registered", True))
    # Ties at the percentile's ranks: a group of equal durations.
    for _ in range(4):
        tasks.append(TaskObs(START + timedelta(hours=5), "implement_idea", "model-tied", False, 1_234, 10))
    return tasks, registrations


def noise(rng: random.Random) -> None:
    """Rows the model series must not read: outside the bucket, backfilled, unfinished."""
    outside = [
        TaskObs(START - timedelta(microseconds=1), "implement_idea", "model-a", False, 999_999, 1),
        TaskObs(END, "implement_idea", "model-a", True, 999_999, 1),
    ]
    store(outside, [RegistrationObs(END, "implement_idea", "model-a", True)], tag="out")
    backfilled = [TaskObs(START + timedelta(hours=2), "implement_idea", "model-a", False, 1, 1) for _ in range(30)]
    store(backfilled, [RegistrationObs(START + timedelta(hours=2), "implement_idea", "model-a", True)] * 5,
          tag="bf", source=TaskSource.BACKFILL)  # fmt: skip
    ExecutionTask.objects.create(
        external_id="running", task_type="implement_idea", ai_model="model-a", status=TaskStatus.RUNNING,
        source=TaskSource.API, created_at=START, started_at=START, duration_ms=5,
    )  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_database_sums_give_the_same_points_as_the_rows(seed):
    rng = random.Random(seed)
    tasks, registrations = varied(rng)
    store(tasks, registrations)
    noise(rng)
    from_database = observations.points_of_groups(sources.model_groups(START, END))
    from_rows = observations.model_points(tasks, registrations)
    reference = old_model_points(tasks, registrations)
    # Exactly the same floats (no tolerance): p95 by percentile_cont's operations, means
    # as integer sums over counts.
    assert from_database == reference
    assert from_rows == reference
    keys = {(key, labels["task_type"], labels["ai_model"]) for (key, _), (*_, labels) in reference.items()}
    assert ("model.p95_ms", "self_improvement", "model-a") in keys  # a one-row group
    assert ("model.p95_ms", "implement_idea", observations.NO_MODEL) in keys
    assert ("model.mean_ms", "self_improvement", "untimed") not in keys
    assert ("model.failure_rate", "self_improvement", "untimed") in keys
    assert ("model.cost_micros", "self_improvement", "uncosted") not in keys
    assert ("model.held_share", "implement_idea", "only-registered") in keys
    assert ("model.failure_rate", "implement_idea", "only-registered") not in keys
    assert not any(labels["ai_model"] == "" for *_, labels in reference.values())


def test_the_p95_is_percentile_cont_on_even_and_odd_counts():
    """Counts whose 0.95·(n − 1) falls on a rank (n = 21, 41) and between two (n = 2, 40)."""
    tasks = []
    for n in (1, 2, 21, 40, 41):
        tasks += [TaskObs(START + timedelta(minutes=i), "implement_idea", f"n{n}", False, (i * 7_919) % 1_000, None)
                  for i in range(n)]  # fmt: skip
    store(tasks, [])
    groups = {g.ai_model: g for g in sources.model_groups(START, END)}
    for n in (1, 2, 21, 40, 41):
        durations = sorted(float((i * 7_919) % 1_000) for i in range(n))
        position = 0.95 * (n - 1)
        low, high = math.floor(position), math.ceil(position)
        assert groups[f"n{n}"].p95_ms == durations[low] + (durations[high] - durations[low]) * (position - low)
    assert groups["n40"].p95_ms != sorted(float((i * 7_919) % 1_000) for i in range(40))[37]  # interpolated


def bulk_bucket(n: int, tag: str) -> None:
    rng = random.Random(n)
    tasks = [
        TaskObs(START + timedelta(seconds=rng.uniform(0, 86_399)), f"type-{i % 2}", f"model-{i % 3}",
                rng.random() < 0.05, rng.randint(100, 60_000), rng.randint(0, 10_000))
        for i in range(n)
    ]  # fmt: skip
    registrations = [RegistrationObs(t.finished_at, t.task_type, t.ai_model, i % 17 == 0) for i, t in enumerate(tasks)]
    store(tasks, registrations, tag=tag)


def peak_bytes() -> int:
    """tracemalloc's peak while the bucket's points are computed (after a first run:
    the compiled queries and imports are not the rows')."""
    bucket_observations(START, END)
    gc.collect()
    tracemalloc.start()
    try:
        points = bucket_observations(START, END)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert points
    return peak


N = 3_000


def test_the_memory_of_a_bucket_does_not_grow_with_its_tasks():
    """Reading the rows cost ~500 bytes a task (and as much a registration): 3N more
    tasks grew the peak by several MB. Summed by the database, it stays put."""
    bulk_bucket(N, "a")
    small = peak_bytes()
    bulk_bucket(3 * N, "b")
    assert ExecutionTask.objects.filter(finished_at__gte=START, finished_at__lt=END).count() == 4 * N
    large = peak_bytes()
    assert large < small + 64 * 1024, (small, large)


@pytest.mark.postgres(reason="EXPLAIN of PostgreSQL query plans")
def test_the_sums_read_the_time_indexes():
    """A bucket of an hour in twenty days of tasks: the task sums read
    tasks_finished_at_cover's range, the registrations the history's history_date index."""
    rng = random.Random(9)
    days = [
        TaskObs(START + timedelta(minutes=rng.uniform(-10 * 1440, 10 * 1440)), "implement_idea", f"model-{i % 3}",
                False, rng.randint(1, 9_000), 5)
        for i in range(20_000)
    ]  # fmt: skip
    store(days, [RegistrationObs(t.finished_at, t.task_type, t.ai_model, False) for t in days])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE execution_tasks")
        cursor.execute("ANALYZE tasks_historicalexecutiontask")
    with CaptureQueriesContext(connection) as ctx:
        sources.model_groups(START, START + timedelta(hours=1))
    plans = []
    for query in ctx.captured_queries:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + query["sql"])
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    tasks_plan, history_plan = plans
    assert "percentile_cont" in ctx.captured_queries[0]["sql"]
    assert "Seq Scan" not in tasks_plan and "tasks_finished_at_cover" in tasks_plan, tasks_plan
    assert "Seq Scan" not in history_plan and "history_date" in history_plan, history_plan
