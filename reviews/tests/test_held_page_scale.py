"""A case's page of held tasks reads the tasks the case holds, not every task it ever
decided on (tasks_case_held: `(gate_case, id) WHERE status = 'held'`, migration
tasks.0015). A case of one model collects thousands of tasks; once approved, they are
released but keep their gate_case, and the case page's held list read them all."""

import itertools

import pytest
from django.db import connection

from reviews import selectors
from reviews.tests.support import one_statement_analyzed, rows_read
from tasks.models import ExecutionTask, TaskStatus

pytestmark = [pytest.mark.django_db, pytest.mark.postgres(reason="EXPLAIN ANALYZE of PostgreSQL query plans")]
_ids = itertools.count()


def tasks_on(gate_case: int, n: int, status: str) -> None:
    ExecutionTask.objects.bulk_create(
        ExecutionTask(
            external_id=f"page-{next(_ids)}", task_type="implement_idea", status=status, gate_case=str(gate_case)
        )
        for _ in range(n)
    )


def test_a_page_of_held_tasks_reads_only_the_held_tasks_of_its_case():
    # As in a live table: most tasks finished on no case, a few held on other cases.
    ExecutionTask.objects.bulk_create(
        ExecutionTask(external_id=f"page-{next(_ids)}", task_type="implement_idea", status=TaskStatus.SUCCEEDED)
        for _ in range(20_000)
    )
    for other in range(40, 50):
        tasks_on(other, 30, TaskStatus.HELD)
    read = {}
    for case_id, released in ((3, 3), (4, 3000)):
        tasks_on(case_id, released, TaskStatus.SUCCEEDED)  # decided on, released and run
        tasks_on(case_id, 2, TaskStatus.HELD)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE execution_tasks")
        (page, after), nodes = one_statement_analyzed(lambda case_id=case_id: selectors.held_tasks_page(case_id))
        assert [t.external_id for t in page] == list(
            ExecutionTask.objects.filter(gate_case=str(case_id), status=TaskStatus.HELD)
            .order_by("id")
            .values_list("external_id", flat=True)
        )
        assert len(page) == 2 and after is None
        # An index scan, or a bitmap heap scan over a bitmap index scan: either way only this index.
        assert {node["Index Name"] for node in nodes if "Index Name" in node} == {"tasks_case_held"}, nodes
        scans = [node for node in nodes if node.get("Relation Name") == "execution_tasks"]
        assert scans and not any(node["Node Type"] == "Seq Scan" for node in scans), nodes
        read[released] = rows_read(scans)
    assert read[3] == read[3000] == 2, read
