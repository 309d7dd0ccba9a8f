"""A committee vote costs the same however many tasks are held on its case: the keys
that registered them (whose owners may not vote) are read by a loose scan of the index
tasks_gate_case, once per vote, not by a DISTINCT over every task (the soak's held
model collects thousands of tasks on one case)."""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reviews import selectors, services
from reviews.models import Case, PolicyRule
from reviews.tests.support import one_statement_analyzed, rows_read
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."
_ids = itertools.count()


def tasks_case(client, secret: str, *, model: str) -> int:
    """A case of tasks held for the committee (quorum 2: one approval decides nothing), opened
    by a task registered through the API with `secret`."""
    if not PolicyRule.objects.filter(name="held-models").exists():
        PolicyRule.objects.create(name="held-models", priority=1, ai_model_glob="held-*", action="hold", quorum=2)
        services.rules_changed()
    response = client.post(
        "/api/v1/tasks",
        data={"external_id": f"first-{model}", "task_type": "implement_idea", "ai_model": model},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 201, response.content
    return int(response.json()["gate"]["case"])


def hold(gate_case, n: int, keys) -> None:
    """`n` more tasks on `gate_case` (a case id, or None), registered by `keys` in turn (None: no key)."""
    ExecutionTask.objects.bulk_create(
        ExecutionTask(
            external_id=f"held-{next(_ids)}",
            task_type="implement_idea",
            status=TaskStatus.HELD,
            gate_case=None if gate_case is None else str(gate_case),
            submitted_by=key,
        )
        for key, _ in zip(itertools.cycle(keys), range(n), strict=False)
    )


def distinct_keys(case_ids) -> set[tuple[str, int]]:
    """What the loose scan must find: the plain DISTINCT it replaces."""
    tasks = ExecutionTask.objects.filter(gate_case__in=[str(i) for i in case_ids], submitted_by__isnull=False)
    return set(tasks.values_list("gate_case", "submitted_by_id").distinct())


def test_the_loose_scan_finds_exactly_the_keys_a_distinct_finds(make_api_key):
    keys = [make_api_key()[0] for _ in range(4)]
    a, b, c, d, e = 2, 10, 11, 100, 7  # "10" < "100" < "11" < "2" < "7" as text: neighbours in the index
    hold(a, 5, [keys[2], keys[0], None])  # keys out of order, and tasks without a key
    hold(b, 3, [None])  # only tasks without a key: nobody
    hold(c, 4, [keys[3]])  # the highest key, alone
    hold(d, 6, keys)  # every key
    hold(None, 50, [keys[1]])  # tasks on no case: never anyone's
    hold(e, 2, [keys[0], keys[1]])  # a case not asked about, right after the last one asked
    asked = [a, b, c, d, 999]  # 999: no task at all
    assert set(selectors._task_keys_of(asked)) == distinct_keys(asked)
    for case_id in asked:
        assert set(selectors._task_keys_of([case_id])) == distinct_keys([case_id])
    assert {k for _, k in selectors._task_keys_of([d])} == {key.pk for key in keys}
    assert selectors._task_keys_of([b]) == [] and selectors._task_keys_of([999]) == []


def test_a_vote_reads_the_cases_tasks_once_and_as_often_for_30_as_for_3(client, make_api_key, alice, bob, charlie):
    agent_key, secret = make_api_key()
    other_key, _ = make_api_key()
    charlies_key, _ = make_api_key(owner=charlie)
    small, large = tasks_case(client, secret, model="held-a"), tasks_case(client, secret, model="held-b")
    hold(small, 2, [agent_key])
    hold(large, 29, [agent_key, other_key, charlies_key])
    statements = {}
    for case_id in (small, large):
        with CaptureQueriesContext(connection) as queries:
            services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale=WHY, version=1)
        statements[case_id] = [q["sql"] for q in queries.captured_queries]
        reads = [sql for sql in statements[case_id] if '"execution_tasks"' in sql]
        assert len(reads) == 1, statements[case_id]  # why_cannot_vote and the tally share one reading
    assert len(statements[small]) == len(statements[large])
    # The rule the reading serves: a key's owner on the large case is not eligible, and is told why.
    case = Case.objects.get(pk=large)
    assert charlie.pk not in services.eligible_member_ids(case)
    with pytest.raises(services.NotAllowed, match="You cannot vote: you submitted"):
        services.vote_cast(case_id=large, member=charlie, choice="approve", rationale=WHY, version=1)
    services.vote_cast(case_id=large, member=bob, choice="approve", rationale=WHY, version=1)
    assert Case.objects.get(pk=large).status == "approved"


@pytest.mark.postgres(reason="EXPLAIN ANALYZE of PostgreSQL query plans")
def test_the_keys_of_a_case_are_read_in_index_probes_not_per_task(make_api_key):
    keys = [make_api_key()[0] for _ in range(2)]
    hold(None, 3000, keys)  # the rest of the table: tasks on no case
    for other in range(40, 60):
        hold(other, 20, keys)
    read = {}
    for case_id, n in ((3, 3), (4, 3000)):
        hold(case_id, n, keys)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE execution_tasks")
        found, nodes = one_statement_analyzed(lambda case_id=case_id: selectors._task_keys_of([case_id]))
        assert {k for _, k in found} == {key.pk for key in keys}
        scans = [node for node in nodes if node.get("Relation Name") == "execution_tasks"]
        assert scans and {node.get("Index Name") for node in scans} == {"tasks_gate_case"}, nodes
        read[n] = rows_read(scans)
    # Two keys: the first probe, one past each key (the last past one finds the next case, or nothing).
    assert read[3] == read[3000] <= 3, read
