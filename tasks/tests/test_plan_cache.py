"""Prepared statements are planned for their values (fsar/settings.py, DB_PLAN_CACHE_MODE).

With PostgreSQL's default plan_cache_mode (`auto`), a statement prepared by psycopg
(server-side binding, prepare_threshold 2) switches to one generic plan after five
executions. For `status = $1 ORDER BY id DESC LIMIT 51`, on a table where almost every
task succeeded, that plan walks the primary key backwards and filters, which is right
for `succeeded` and reads the whole table for `held`: the held list took 107 ms instead
of 0.2 on a million tasks (docs/benchmarks.md)."""

import pytest
from django.db import connection

from fsar.tests.test_settings import run_django

pytestmark = [pytest.mark.django_db, pytest.mark.postgres(reason="PostgreSQL's prepared statements and plan cache")]

# The task list's statement (tasks.selectors.task_page) on a table of its own shape, made
# for the test: what the planner does then depends on these rows alone, not on what the
# suite's earlier tests left in execution_tasks (with autovacuum off, dead rows and stale
# statistics, under which `auto` may keep custom plans).
TABLE = (
    "CREATE TEMPORARY TABLE plan_tasks (id bigint PRIMARY KEY, status varchar(20) NOT NULL) ON COMMIT DROP",
    "CREATE INDEX plan_tasks_status_id ON plan_tasks (status, id DESC)",
    "INSERT INTO plan_tasks SELECT n, CASE WHEN n = 2500 THEN 'held' ELSE 'succeeded' END "
    "FROM generate_series(1, 5000) AS n",
    "ANALYZE plan_tasks",
)
HELD_LIST = "SELECT id FROM plan_tasks WHERE status = $1 ORDER BY id DESC LIMIT 51"


def plan_after_common_runs(cursor) -> str:
    """The plan of the held list once the same prepared statement ran ten times for
    the common status (enough for `auto` to settle on its generic plan)."""
    for statement in TABLE:
        cursor.execute(statement)
    cursor.execute(f"PREPARE held_list(text) AS {HELD_LIST}")
    for _ in range(10):
        cursor.execute("EXECUTE held_list('succeeded')")
    cursor.execute("EXPLAIN EXECUTE held_list('held')")
    plan = "\n".join(row[0] for row in cursor.fetchall())
    cursor.execute("DEALLOCATE held_list")
    return plan


def test_connections_plan_each_execution_for_its_values():
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("force_custom_plan",)
        plan = plan_after_common_runs(cursor)
    assert "$1" not in plan and "'held'" in plan and "plan_tasks_status_id" in plan, plan


def test_the_generic_plan_this_prevents():
    """What `auto` does to the same statement (the regression the setting is there for):
    if PostgreSQL ever stops choosing the generic plan here, this test says so."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = auto")
        plan = plan_after_common_runs(cursor)
    assert "$1" in plan, plan


def test_an_unknown_plan_cache_mode_refuses_to_start():
    env = {
        "DEBUG": "1",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "DB_PLAN_CACHE_MODE": "sometimes",
    }
    result = run_django("", env)
    assert result.returncode != 0
    assert "DB_PLAN_CACHE_MODE must be one of force_custom_plan, auto, force_generic_plan" in result.stderr
