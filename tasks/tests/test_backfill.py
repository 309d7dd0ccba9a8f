"""POST /api/v1/tasks/bulk: finished tasks of the past, all or nothing."""

import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from tasks.models import ExecutionTask

pytestmark = pytest.mark.django_db


def row(i: int, **overrides) -> dict:
    return {
        "external_id": f"hist-{i}",
        "task_type": "self_improvement",
        "ai_model": "claude-opus-5",
        "customer": "cust_acme",
        "status": "succeeded",
        "started_at": "2026-10-01T09:00:00Z",
        "finished_at": "2026-10-01T09:00:02.500Z",
        "cost_micros": 900,
        "tokens": 120,
        **overrides,
    }


def bulk(client, rows):
    return client.post("/api/v1/tasks/bulk", json.dumps({"tasks": rows}), content_type="application/json")


def test_it_stores_finished_tasks_with_their_durations(agent):
    response = bulk(agent, [row(1), row(2, status="failed", error="boom")])
    assert response.status_code == 200
    assert response.json() == {"created": 2, "unchanged": 0}
    task = ExecutionTask.objects.get(external_id="hist-1")
    assert task.duration_ms == 2500
    assert task.source == "backfill"
    assert task.status == "succeeded"
    assert ExecutionTask.objects.get(external_id="hist-2").error == "boom"


def test_a_bad_row_stores_nothing_and_names_the_first_bad_row(agent):
    rows = [row(1), row(2), row(3, started_at="2026-10-01T09:00:00"), row(4, tokens="7")]
    response = bulk(agent, rows)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("tasks[2].started_at")
    assert not ExecutionTask.objects.exists()


def test_finished_before_started_is_refused_by_row(agent):
    response = bulk(agent, [row(1), row(2, finished_at="2026-10-01T08:00:00Z")])
    assert response.status_code == 422
    assert "tasks[1].finished_at" in response.json()["detail"]
    assert not ExecutionTask.objects.exists()


def test_only_finished_statuses_may_be_backfilled(agent):
    response = bulk(agent, [row(1, status="running")])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "tasks[0].status"


def test_a_repeated_backfill_is_unchanged_and_a_different_one_conflicts(agent):
    bulk(agent, [row(1), row(2)])
    again = bulk(agent, [row(1), row(2), row(3)])
    assert again.status_code == 200
    assert again.json() == {"created": 1, "unchanged": 2}
    conflict = bulk(agent, [row(4), row(1, tokens=999)])
    assert conflict.status_code == 409
    assert "tasks[1]" in conflict.json()["detail"] and "tokens" in conflict.json()["detail"]
    assert not ExecutionTask.objects.filter(external_id="hist-4").exists()


def test_duplicates_within_a_request_are_refused(agent):
    response = bulk(agent, [row(1), row(1)])
    assert response.status_code == 422
    assert "tasks[1].external_id" in response.json()["detail"]


@override_settings(TASK_GATE="tasks.tests.test_api.broken_gate")
def test_backfills_skip_the_gate(agent, api_key):
    """A broken gate (which fails every registration closed) is never asked: the rows
    are stored as they came, finished, with no gate decision, policy or case."""
    response = bulk(agent, [row(1), row(2, status="failed", error="boom")])
    assert response.status_code == 200
    assert response.json() == {"created": 2, "unchanged": 0}
    stored = {t.external_id: t for t in ExecutionTask.objects.order_by("external_id")}
    assert list(stored) == ["hist-1", "hist-2"]
    for task in stored.values():
        assert (task.gate_decision, task.gate_reason, task.gate_policy, task.gate_case) == (None, None, None, None)
        assert task.source == "backfill"
        assert task.submitted_by == api_key[0]
    assert (stored["hist-1"].status, stored["hist-2"].status) == ("succeeded", "failed")
    assert stored["hist-2"].error == "boom"
    body = agent.get(f"/api/v1/tasks/{stored['hist-1'].pk}").json()
    assert body["status"] == "succeeded" and body["gate"]["decision"] is None


def test_it_takes_ten_thousand_rows_and_refuses_more(agent):
    response = bulk(agent, [row(i) for i in range(10_000)])
    assert response.status_code == 200
    assert ExecutionTask.objects.count() == 10_000
    too_many = bulk(agent, [row(i) for i in range(10_001)])
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "tasks"


def test_backfill_needs_the_backfill_scope(client, make_api_key):
    _, secret = make_api_key(scopes=["tasks", "read"])
    response = client.post(
        "/api/v1/tasks/bulk",
        json.dumps({"tasks": [row(1)]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 403


def test_backfilled_rows_are_in_history_with_the_key(agent, api_key):
    bulk(agent, [row(1)])
    history = ExecutionTask.history.get(external_id="hist-1")
    assert history.history_change_reason == "backfilled"
    assert history.history_api_key_id == api_key[0].pk


def test_a_row_finishing_in_the_future_is_refused_naming_row_and_field(agent):
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()
    response = bulk(agent, [row(1), row(2, finished_at=tomorrow)])
    assert response.status_code == 422
    assert response.json()["detail"] == "tasks[1].finished_at is in the future"
    assert response.json()["field"] == "tasks[1].finished_at"
    assert not ExecutionTask.objects.exists()


@pytest.mark.parametrize("started_at", ["1999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z"])
def test_a_row_starting_before_2000_is_refused(agent, started_at):
    response = bulk(agent, [row(1), row(2, started_at=started_at)])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "tasks[1].started_at"  # the schema states the floor
    assert "before 2000-01-01" in response.json()["detail"]
    assert not ExecutionTask.objects.exists()


def test_the_first_instant_of_2000_is_accepted(agent):
    response = bulk(agent, [row(1, started_at="2000-01-01T00:00:00Z", finished_at="2000-01-01T00:00:01Z")])
    assert response.status_code == 200
    assert ExecutionTask.objects.get().duration_ms == 1000


@pytest.mark.parametrize("field", ["started_at", "finished_at"])
def test_a_timestamp_without_a_time_zone_is_refused(agent, field):
    response = bulk(agent, [row(1), row(2, **{field: "2026-10-01T09:00:01"})])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == f"tasks[1].{field}"
    assert "timezone" in response.json()["detail"]
    assert not ExecutionTask.objects.exists()


@pytest.mark.parametrize("value", [1_790_000_000, 1_790_000_000.5, "1790000000", True])
def test_numbers_where_iso_strings_are_required_are_refused(agent, value):
    response = bulk(agent, [row(1), row(2, finished_at=value)])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "tasks[1].finished_at"
    assert "ISO 8601" in response.json()["detail"]
    assert not ExecutionTask.objects.exists()


def test_the_validate_step_refuses_naive_times_when_called_without_the_api():
    from tasks.backfill import BackfillRow, backfill_validate
    from tasks.services import InvalidTaskInput

    aware = timezone.now() - timedelta(hours=1)
    good = BackfillRow(
        external_id="a", task_type="implement_idea", status="succeeded", started_at=aware, finished_at=aware
    )
    backfill_validate([good], now=timezone.now())
    naive = BackfillRow(**{**good.__dict__, "external_id": "b", "started_at": aware.replace(tzinfo=None)})
    with pytest.raises(InvalidTaskInput) as refused:
        backfill_validate([good, naive], now=timezone.now())
    assert refused.value.extra == {"field": "tasks[1].started_at"}


def spread_rows(count: int, prefix: str) -> list[dict]:
    """Rows over `count` different hours and two models: more rollup rows than the
    single-statement fold takes (rollups.FEW_ROWS), so the set-based path runs."""
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=count + 1)
    rows = []
    for i in range(count):
        begun = start + timedelta(hours=i, minutes=7)
        rows.append(row(i, external_id=f"{prefix}-{i}", ai_model=None if i % 2 else "claude-opus-5",
                        status="failed" if i % 5 == 0 else "succeeded", started_at=begun.isoformat(),
                        finished_at=(begun + timedelta(milliseconds=37 * i + 1)).isoformat()))  # fmt: skip
    return rows


def test_a_large_backfill_folds_exactly_and_its_retry_changes_nothing(agent):
    from tasks import rollups
    from tasks.tests.test_rollups import assert_rollups_match_raw

    rows = spread_rows(300, "wide")
    assert bulk(agent, rows).json() == {"created": 300, "unchanged": 0}
    first = assert_rollups_match_raw(timezone.now() - timedelta(days=30), timezone.now() + timedelta(days=1))
    assert len(first) > rollups.FEW_ROWS
    assert sum(t.backfilled for (period, *_), t in first.items() if period == rollups.PERIOD_DAY) == 300
    assert bulk(agent, rows).json() == {"created": 0, "unchanged": 300}
    again = assert_rollups_match_raw(timezone.now() - timedelta(days=30), timezone.now() + timedelta(days=1))
    assert again == first


def test_a_second_backfill_into_the_same_hours_with_some_rows_already_stored_stays_exact(agent):
    """A backfill, then one that repeats part of it (unchanged) and adds tasks into the
    same hours (their rollup rows merged, below and above the stored durations) and
    into hours of their own."""
    from tasks import rollups
    from tasks.tests.test_rollups import assert_rollups_match_raw

    first = spread_rows(300, "wide")
    assert bulk(agent, first).json() == {"created": 300, "unchanged": 0}
    again = [dict(r, external_id=f"again-{n}") for n, r in enumerate(first[::2])]
    instant = [dict(r, external_id=f"instant-{n}", started_at=r["finished_at"]) for n, r in enumerate(first[100:140])]
    slow = [dict(r, external_id=f"slow-{n}", started_at=(timezone.now() - timedelta(days=9)).isoformat())
            for n, r in enumerate(first[200:210])]  # fmt: skip
    own = spread_rows(300, "own")[::30]
    for n, r in enumerate(own):
        r["finished_at"] = (timezone.now() - timedelta(minutes=n + 1)).isoformat()
    response = bulk(agent, first[:50] + again + instant + slow + own)
    assert response.json() == {"created": 150 + 40 + 10 + 10, "unchanged": 50}
    stored = assert_rollups_match_raw(timezone.now() - timedelta(days=30), timezone.now() + timedelta(days=1))
    days = [t for (period, *_), t in stored.items() if period == rollups.PERIOD_DAY]
    assert sum(t.count for t in days) == sum(t.backfilled for t in days) == 510
    hours = [t for (period, *_), t in stored.items() if period == rollups.PERIOD_HOUR]
    assert max(sum(t.histogram.values()) for t in hours) >= 3  # rows merged twice over


def test_a_backfill_failing_in_its_fold_stores_nothing(agent, monkeypatch):
    from tasks import rollup_fold, rollups

    def broken(rows):
        list(rows)
        raise RuntimeError("the database went away mid-fold")

    monkeypatch.setattr(rollups, "fold_rows", broken)
    monkeypatch.setattr(rollups, "fold_tasks", broken)
    monkeypatch.setattr(rollup_fold, "fold_select", broken)  # PostgreSQL's
    assert bulk(agent, spread_rows(50, "half")).status_code == 500  # after the tasks and history rows went in
    assert not ExecutionTask.objects.exists()
    assert not ExecutionTask.history.exists()


def test_every_backfilled_task_has_one_history_row_with_its_values(agent, api_key):
    """The history rows are copied from the rows inserted (on PostgreSQL in the same
    statement): one per task, its id and values, "+", the reason and the key."""
    assert bulk(agent, spread_rows(30, "hist")).json() == {"created": 30, "unchanged": 0}
    fields = ("id", "external_id", "task_type", "status", "started_at", "finished_at", "duration_ms",
              "cost_micros", "tokens", "error", "ai_model", "customer_ref", "source", "submitted_by_id")  # fmt: skip
    tasks = {t["id"]: t for t in ExecutionTask.objects.values(*fields)}
    history = list(ExecutionTask.history.values(*fields, "history_type", "history_change_reason", "history_api_key_id"))
    assert len(tasks) == len(history) == 30
    for row in history:
        assert {f: row[f] for f in fields} == tasks[row["id"]]
        assert (row["history_type"], row["history_change_reason"]) == ("+", "backfilled")
        assert row["history_api_key_id"] == api_key[0].pk


def rollup_totals() -> list[tuple]:
    """Every rollup row, every column but the id."""
    from tasks.models import TaskMetricsRollup

    fields = [f.attname for f in TaskMetricsRollup._meta.concrete_fields if f.attname != "id"]
    return sorted(TaskMetricsRollup.objects.values_list(*fields), key=repr)


@pytest.mark.postgres(reason="the histogram sum in the database is PostgreSQL's path")
def test_a_backfill_whose_rollup_fold_fails_in_the_database_after_the_insert_stores_nothing(agent, monkeypatch):
    """On PostgreSQL the rollup fold is one statement after the insert of the tasks and
    their history rows; the database failing in it (here: its histogram sum) still undoes
    the whole backfill."""
    from tasks import rollup_fold

    assert bulk(agent, spread_rows(40, "first")).json() == {"created": 40, "unchanged": 0}
    before = rollup_totals()
    monkeypatch.setattr(rollup_fold, "_UPSERT", rollup_fold._UPSERT.replace("tasks_histogram_add(", "no_such_sum("))
    assert bulk(agent, spread_rows(40, "second")).status_code == 500
    assert ExecutionTask.objects.count() == ExecutionTask.history.count() == 40
    assert rollup_totals() == before


def test_a_backfill_whose_insert_conflicts_stores_nothing(agent, monkeypatch):
    """Another request stored one of the external_ids between the idempotency read and
    the insert: a 409, and nothing of the backfill (tasks, history, rollups) stays."""
    from tasks import backfill

    assert bulk(agent, spread_rows(40, "first")).json() == {"created": 40, "unchanged": 0}
    before = rollup_totals()
    compare = backfill.backfill_compare
    monkeypatch.setattr(backfill, "backfill_compare", lambda rows: (compare(rows)[0] + rows[:1], 0))
    response = bulk(agent, spread_rows(1, "first") + spread_rows(40, "second"))
    assert response.status_code == 409, response.content
    assert ExecutionTask.objects.count() == ExecutionTask.history.count() == 40
    assert rollup_totals() == before


def test_task_history_names_its_user_without_a_database_constraint(agent, django_user_model):
    """Migration 0014: no foreign key constraint checks each history row's user when a
    backfill commits (one check per row); deleting a user still clears the user of its
    history rows, as Django's SET_NULL does it."""
    from django.db import connection

    bulk(agent, [row(1), row(2)])
    table = ExecutionTask.history.model._meta.db_table
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    assert not [c for c in constraints.values() if c["foreign_key"] and c["columns"] == ["history_user_id"]]
    other = django_user_model.objects.create_user(username="someone-else")
    ExecutionTask.history.filter(external_id="hist-1").update(history_user=other)
    other.delete()
    assert ExecutionTask.history.get(external_id="hist-1").history_user_id is None
    assert ExecutionTask.history.get(external_id="hist-2").history_user_id is not None


def test_tasks_name_their_key_without_a_database_constraint(agent, make_api_key):
    """Migration 0016: no foreign key constraint checks each task's key when a backfill
    commits (one check per row); the column stays indexed, and deleting a key through the
    ORM still clears its tasks' key, as Django's SET_NULL does it."""
    from django.db import connection

    bulk(agent, [row(1), row(2)])
    table = ExecutionTask._meta.db_table
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    on_key = [c for c in constraints.values() if c["columns"] == ["submitted_by_id"]]
    assert on_key and not [c for c in on_key if c["foreign_key"]], on_key
    assert [c for c in on_key if c["index"]], on_key
    other, _ = make_api_key()
    ExecutionTask.objects.filter(external_id="hist-1").update(submitted_by=other)
    other.delete()
    assert ExecutionTask.objects.get(external_id="hist-1").submitted_by_id is None
    assert ExecutionTask.objects.get(external_id="hist-2").submitted_by_id is not None
