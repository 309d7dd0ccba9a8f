"""Start and finish read and write a key's task by its id, through the primary key, even
for a key the table's statistics do not know yet (PostgreSQL EXPLAIN).

The adversary's way around it: a key newer than the table's last ANALYZE registers many
tasks quickly. With the ownership written as a plain `submitted_by_id = key`, the planner
weighed the key's own index against the primary key (one row estimated either way) and
took the key's index, so every start and finish walked all the tasks the key had
registered, a cost growing with each one until the next ANALYZE (tasks.services.OWNER_CHECK).
"""

import pytest
from django.db import connection
from django.utils import timezone

from tasks import services
from tasks.gate import recheck_read_with_task
from tasks.models import ExecutionTask

pytestmark = [pytest.mark.django_db, pytest.mark.postgres(reason="EXPLAIN of PostgreSQL query plans")]

KEY_INDEX = "execution_tasks_submitted_by_id"  # Django's index on the key's column (a hash follows)


@pytest.fixture
def new_key_with_many_tasks(make_api_key):
    """An old key with 2,000 tasks, ANALYZEd; then a new key with 2,000 tasks the statistics
    do not know of (as between two of autovacuum's ANALYZEs). Returns the new key and one
    of its tasks."""
    old_key, _ = make_api_key()
    new_key, _ = make_api_key()

    def tasks(key, prefix: str, status: str) -> list[ExecutionTask]:
        return ExecutionTask.objects.bulk_create(
            ExecutionTask(
                external_id=f"{prefix}-{i}",
                task_type="implement_idea",
                status=status,
                submitted_by=key,
                started_at=timezone.now(),
            )
            for i in range(2000)
        )

    tasks(old_key, "old", "succeeded")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE execution_tasks")
    mine = tasks(new_key, "new", "running")
    return new_key, mine[1000]


def plan_of(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def assert_by_primary_key(plan: str) -> None:
    assert "execution_tasks_pkey" in plan and KEY_INDEX not in plan, plan


@pytest.mark.parametrize("lock", [True, False])
def test_a_keys_task_is_read_through_the_primary_key(new_key_with_many_tasks, lock):
    key, task = new_key_with_many_tasks
    read = services._read_sql(connection, by_key=True, lock=lock)
    assert_by_primary_key(plan_of(read.sql, [task.pk, key.pk]))


def test_starts_read_with_the_gate_goes_through_the_primary_key(new_key_with_many_tasks):
    key, task = new_key_with_many_tasks
    read = services._read_sql(connection, by_key=True, lock=False, with_gate=recheck_read_with_task())
    assert_by_primary_key(plan_of(read.sql, [task.pk, key.pk]))


def test_the_finishing_statement_goes_through_the_primary_key(new_key_with_many_tasks):
    key, task = new_key_with_many_tasks
    statement, params = services._finish_statement(
        connection, task_id=task.pk, actor=services.Actor.for_key(key), outcome="succeeded",
        cost_micros=1000, tokens=100, error="",
    )  # fmt: skip
    assert_by_primary_key(plan_of(statement, params))


def test_the_owner_check_still_refuses_another_keys_task(new_key_with_many_tasks, make_api_key):
    """The condition as written still compares: another key's id finds no row."""
    key, task = new_key_with_many_tasks
    other, _ = make_api_key()
    read = services._read_sql(connection, by_key=True, lock=False)
    with connection.cursor() as cursor:
        cursor.execute(read.sql, [task.pk, other.pk])
        assert cursor.fetchone() is None
        cursor.execute(read.sql, [task.pk, key.pk])
        assert cursor.fetchone()[0] == task.pk
