"""The rollup fold computed by PostgreSQL (tasks/rollup_fold.py), which bulk ingest
uses there, leaves exactly the rollup rows the Python fold (`rollups.fold_tasks`)
leaves: same keys, counts, sums, maxima and histograms, bucket by bucket."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks import histograms, rollup_fold, rollups
from tasks.models import ExecutionTask, TaskMetricsRollup, TaskSource, TaskStatus
from tasks.tests.test_metrics import make_task

pytestmark = pytest.mark.django_db
in_postgresql = pytest.mark.postgres(reason="the fold in SQL is PostgreSQL's")

BIGINT_MAX = 2**63 - 1
# Every boundary a bigint holds, and its neighbours: where width_bucket and bisect could disagree.
EDGES = sorted(
    {v for bound in histograms.BOUNDS if bound <= BIGINT_MAX for v in (bound - 1, bound, bound + 1)
     if 0 <= v <= BIGINT_MAX} | {BIGINT_MAX}
)  # fmt: skip


def sql_bucket_indexes(values: list[int]) -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {histograms.bucket_index_sql('v')} FROM unnest(%s::bigint[]) WITH ORDINALITY AS u (v, n) "
            "ORDER BY n",
            [values],
        )
        return [index for (index,) in cursor.fetchall()]


@in_postgresql
def test_the_sql_bucket_index_is_bucket_index_at_every_boundary_and_beside_it():
    assert len(EDGES) > 5_000
    assert sql_bucket_indexes(EDGES) == [histograms.bucket_index(v) for v in EDGES]
    negative = [-v for v in EDGES[:3000] if v]
    assert sql_bucket_indexes(negative) == [histograms.bucket_index(v) for v in negative]


@in_postgresql
@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(0, 60_000), st.integers(0, 10**10), st.integers(0, BIGINT_MAX),
                  st.sampled_from(EDGES), st.integers(-(10**7), -1)),
        min_size=1, max_size=200,
    )
)  # fmt: skip
def test_the_sql_bucket_index_is_bucket_index_for_any_duration(values):
    assert sql_bucket_indexes(values) == [histograms.bucket_index(v) for v in values]


def sql_histogram_sums(pairs: list[tuple[list[int], list[int]]]) -> list[list[int]]:
    """tasks_histogram_add(stored, delta) of each (stored, delta) pair of dense lists, in one statement."""
    from django.db import connection

    literal = rollups._array_literal
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tasks_histogram_add(s::bigint[], d::bigint[]) "
            "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS u (s, d, n) ORDER BY n",
            [[literal(stored) for stored, _ in pairs], [literal(delta) for _, delta in pairs]],
        )
        return [row[0] for row in cursor.fetchall()]


@in_postgresql
def test_the_databases_histogram_sum_is_the_python_folds_bucket_by_bucket():
    """`tasks_histogram_add` (migration 0017), the SQL fold's merge of a stored histogram
    and a delta: whether the delta lies inside the stored range, below it, above it,
    around it, overlapping one end, or either is empty; as `rollups.merge_dense` adds them."""
    rng = random.Random(17)

    def histogram() -> dict[int, int]:
        low = rng.randint(-60, 60)
        return {
            rng.randint(low, low + rng.choice([0, 3, 40])): rng.choice([1, 2, 10**12]) for _ in range(rng.randint(0, 8))
        }

    cases = [({}, {}), ({5: 1}, {}), ({}, {5: 1}), ({5: 1}, {5: 2}), ({5: 1, 9: 1}, {2: 1}), ({5: 1}, {7: 3, 12: 1}),
             ({5: 1, 9: 1}, {1: 1, 12: 1}), ({5: 1, 9: 1}, {4: 1, 6: 2}), ({-3: 1}, {-7: 2, 4: 1})]  # fmt: skip
    cases += [(histogram(), histogram()) for _ in range(600)]
    pairs = [(histograms.dense(stored), histograms.dense(delta)) for stored, delta in cases]
    want = [
        histograms.dense({i: stored.get(i, 0) + delta.get(i, 0) for i in stored.keys() | delta.keys()})
        for stored, delta in cases
    ]
    assert sql_histogram_sums(pairs) == want
    assert want == [rollups.merge_dense(stored, delta) if delta else stored for (stored, _), (_, delta) in
                    zip(pairs, cases, strict=True)]  # fmt: skip


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = datetime(2026, 11, 18, tzinfo=UTC)
MS = timedelta(milliseconds=1)
# Instants on either side of hour, six-hour and day boundaries.
BORDERS = [DAY - MS, DAY, DAY + timedelta(hours=5, minutes=59, seconds=59, microseconds=999_999),
           DAY + timedelta(hours=6), DAY + timedelta(hours=11) - MS, DAY + timedelta(hours=11),
           DAY + timedelta(hours=18) - MS, DAY + timedelta(hours=18), DAY + timedelta(days=1) - MS,
           DAY + timedelta(days=1), DAY + timedelta(days=1, hours=3, minutes=30)]  # fmt: skip
# Durations at bucket edges (the single-integer buckets below 50, then log-spaced ones), a
# long one, zero, a legacy negative one, and none (a legacy row finished without a start).
DURATIONS = [0, 1, 49, 50, 51, *histograms.BOUNDS[60:63], histograms.BOUNDS[200] - 1, histograms.BOUNDS[200],
             86_400_000 * 3, -1_500, None]  # fmt: skip


def edge_tasks(tag: str, *, shift: int = 0) -> list[ExecutionTask]:
    """Tasks at every border × duration, over types, models (none, a named one, a legacy
    empty name), outcomes and sources, and a few that are not finished (never counted)."""
    tasks = []
    models = [None, "gpt-5.1", ""]
    for i, finished in enumerate(BORDERS):
        for j, duration in enumerate(DURATIONS):
            k = i + j + shift
            task = make_task(
                finished_at=finished,
                duration_ms=duration,
                task_type=("implement_idea", "self_improvement")[k % 2],
                ai_model=models[k % 3],
                status=TaskStatus.FAILED if k % 4 == 0 else TaskStatus.SUCCEEDED,
            )
            task.external_id = f"{tag}-{i}-{j}"
            task.source = TaskSource.API if k % 5 == 0 else TaskSource.BACKFILL
            tasks.append(task)
    # Alone in its rows: a finished task without a duration (an empty histogram).
    untimed = make_task(finished_at=BORDERS[4], duration_ms=None, ai_model="untimed")
    running = make_task(finished_at=None, duration_ms=None, status=TaskStatus.RUNNING)
    cancelled = make_task(finished_at=BORDERS[1], duration_ms=None, status=TaskStatus.CANCELLED)
    for n, task in enumerate([untimed, running, cancelled]):
        task.external_id = f"{tag}-other-{n}"
        tasks.append(task)
    return tasks


def many_hours(tag: str, count: int) -> list[ExecutionTask]:
    """Tasks in `count` different hours: more rollup rows than FEW_ROWS, so the Python
    fold compared with takes its temporary-table path."""
    tasks = []
    for i in range(count):
        task = make_task(finished_at=NOW - timedelta(hours=i, minutes=i % 60), duration_ms=17 * i + 3,
                         ai_model=None if i % 2 else "claude-opus-5")  # fmt: skip
        task.external_id = f"{tag}-{i}"
        tasks.append(task)
    return tasks


def rollup_rows() -> list[dict]:
    """Every rollup row, every column but the id."""
    fields = [f.attname for f in TaskMetricsRollup._meta.concrete_fields if f.attname != "id"]
    return sorted(TaskMetricsRollup.objects.values(*fields), key=repr)


def fold_in_sql(tasks: list[ExecutionTask]) -> int:
    return rollup_fold.fold_select(
        "SELECT finished_at, task_type, ai_model, status, duration_ms, source FROM execution_tasks WHERE id = ANY(%s)",
        [[task.pk for task in tasks]],
    )


def both_ways(*batches: list[ExecutionTask]) -> tuple[list[dict], list[dict]]:
    """The rollup rows left by folding the batches one after the other in SQL, then (the
    rows cleared) in Python."""
    for batch in batches:
        ExecutionTask.objects.bulk_create(batch)
    for batch in batches:
        fold_in_sql(batch)
    in_sql = rollup_rows()
    TaskMetricsRollup.objects.all().delete()
    for batch in batches:
        rollups.fold_tasks(batch)
    return in_sql, rollup_rows()


@in_postgresql
def test_folding_in_sql_leaves_the_rows_the_python_fold_leaves_at_bucket_edges_and_period_borders():
    in_sql, in_python = both_ways(edge_tasks("a"))
    assert in_sql == in_python
    assert {row["period"] for row in in_sql} == {rollups.PERIOD_HOUR, rollups.PERIOD_SIX_HOURS, rollups.PERIOD_DAY}
    # The border instants fall in the rows they should: 05:59:59.999999 in the 00-06 block, 06:00 in the next.
    starts = {(row["period"], row["start"]) for row in in_sql}
    assert {(rollups.PERIOD_SIX_HOURS, DAY), (rollups.PERIOD_SIX_HOURS, DAY + timedelta(hours=6))} <= starts
    assert (rollups.PERIOD_DAY, DAY - timedelta(days=1)) in starts
    assert any(row["histogram"] == [] for row in in_sql)  # a key whose tasks have no duration
    assert any(row["histogram"] and row["histogram"][0] < 0 for row in in_sql)  # the legacy negative duration
    assert {row["model"] for row in in_sql if row["has_model"]} == {"gpt-5.1", "", "untimed"}


@in_postgresql
def test_folding_in_sql_into_existing_rows_adds_up_as_the_python_fold_does():
    """A second batch into the rows the first one made (and some new ones): the SQL
    fold's merge of stored and new histograms, on both sides of the stored range."""
    first = edge_tasks("first")
    second = edge_tasks("second", shift=1) + edge_tasks("third", shift=7)[::3]
    in_sql, in_python = both_ways(first, second, many_hours("wide", 260))
    assert in_sql == in_python
    assert len(in_sql) > rollups.FEW_ROWS


@in_postgresql
def test_the_sql_fold_counts_the_rollup_rows_it_changed_and_ignores_unfinished_tasks():
    tasks = [make_task(finished_at=NOW - timedelta(minutes=5), duration_ms=10), make_task(finished_at=None)]
    tasks[1].status = TaskStatus.RUNNING
    ExecutionTask.objects.bulk_create(tasks)
    assert fold_in_sql(tasks) == 3  # its hour, six-hour block and day
    assert fold_in_sql(tasks[1:]) == 0
    assert TaskMetricsRollup.objects.filter(count=1).count() == 3


@in_postgresql
def test_rollup_pages_keep_room_for_hot_updates():
    """Migration 0013: folding into a rollup row writes its new version on the same page
    (a HOT update, no index entries) only if the page has room for it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [TaskMetricsRollup._meta.db_table])
        assert "fillfactor=60" in cursor.fetchone()[0]
