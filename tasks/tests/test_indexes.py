"""The task list's filters and sort are served by indexes (PostgreSQL EXPLAIN)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks import selectors
from tasks.models import ExecutionTask

pytestmark = [pytest.mark.django_db, pytest.mark.postgres(reason="EXPLAIN of PostgreSQL query plans")]


def plan_for(query_sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + query_sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def list_sql(**filters) -> str:
    with CaptureQueriesContext(connection) as ctx:
        selectors.task_page(limit=51, **filters)
    return ctx.captured_queries[-1]["sql"]


@pytest.fixture(autouse=True)
def some_tasks():
    ExecutionTask.objects.bulk_create(
        ExecutionTask(external_id=f"t{i}", task_type="implement_idea", status="succeeded", ai_model="m")
        for i in range(20)
    )
    # Fresh statistics: with autovacuum off, the full suite's earlier tests leave stale ones.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE execution_tasks")


@pytest.mark.parametrize(
    "filters,indexes",
    [
        # tasks_running_started holds exactly the running rows; on tiny data the planner may take either.
        ({"status": "running"}, {"tasks_status_id", "tasks_running_started"}),
        ({"task_type": "self_improvement"}, {"tasks_type_id"}),
        ({"ai_model": "gpt-5.1"}, {"tasks_model_set_id"}),
        ({"customer_ref": "cust_acme"}, {"tasks_customer_set_id"}),
        ({"proposal_ref": "fsar_x"}, {"tasks_proposal_set_id"}),
    ],
)
def test_filtered_lists_use_their_index(filters, indexes):
    plan = plan_for(list_sql(**filters))
    assert "Seq Scan" not in plan
    assert any(index in plan for index in indexes), plan


def test_the_unfiltered_newest_first_list_walks_the_primary_key():
    assert "execution_tasks_pkey" in plan_for(list_sql())


def test_abandoned_running_tasks_are_found_through_the_running_only_index():
    from datetime import timedelta

    from django.utils import timezone

    from tasks.services import fail_abandoned_tasks

    ExecutionTask.objects.create(
        external_id="r1", task_type="implement_idea", status="running", started_at=timezone.now() - timedelta(days=2)
    )
    with CaptureQueriesContext(connection) as ctx:
        assert fail_abandoned_tasks() == 1
    (find,) = [q["sql"] for q in ctx.captured_queries if 'started_at" <' in q["sql"]]
    # On a few rows the planner may as well take tasks_status_id; without it (dropped in
    # this test's transaction, rolled back after), the partial index must serve the read.
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX tasks_status_id")
    plan = plan_for(find)
    assert "Seq Scan" not in plan and "tasks_running_started" in plan, plan


@pytest.mark.parametrize("term,index", [("t3", "execution_tasks_external_id_key"), ("cust_x", "tasks_customer_set_id")])
def test_the_admin_search_is_served_by_the_indexes(client, operator, term, index):
    """Not UPPER(column) = UPPER(term) (the admin's "=" search), which no index serves."""
    from django.urls import reverse

    client.force_login(operator)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("admin:tasks_executiontask_changelist"), {"q": term})
    assert response.status_code == 200
    searches = [q["sql"] for q in ctx.captured_queries if 'FROM "execution_tasks"' in q["sql"] and term in q["sql"]]
    assert len(searches) == 2  # the matches counted, and the page of them
    for search in searches:
        assert "UPPER" not in search
        assert "Seq Scan" not in plan_for(search)
    # Counting the matches reads them all: through each searched column's index (the page
    # may as well walk the primary key newest first on a few rows, and stop at 51).
    (count,) = [search for search in searches if "COUNT(*)" in search]
    plan = plan_for(count)
    assert index in plan and "execution_tasks_external_id_key" in plan, plan
