"""The case page: its held tasks paged by keyset, and its query count pinned
whatever the number of reports, votes, comments and held tasks (issue 14, item 6)."""

import pytest
from django.urls import reverse

from fsar.testing import report_md
from reviews import services
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


def case_for(post_report, report_id="r1", severity=30):
    return post_report(report_md(report_id, severity=severity)).json()["gate"]["case"]


def hold(case_id: int, n: int, start: int = 0) -> None:
    ExecutionTask.objects.bulk_create(
        ExecutionTask(
            external_id=f"held-{case_id}-{start + i}",
            task_type="implement_idea",
            status=TaskStatus.HELD,
            gate_case=str(case_id),
            gate_reason="held for review",
        )
        for i in range(n)
    )


def test_the_case_pages_held_tasks_are_paged_by_keyset(client, post_report, alice):
    case_id = case_for(post_report)
    hold(case_id, 130)
    client.force_login(alice)
    url = reverse("reviews:case", args=[case_id])
    first = client.get(url)
    ids_1 = [t.pk for t in first.context["held_tasks"]]
    assert len(ids_1) == 100 and ids_1 == sorted(ids_1)
    assert 'data-testid="more-held"' in first.content.decode()
    second = client.get(url, {"held_after": first.context["held_next"]})
    ids_2 = [t.pk for t in second.context["held_tasks"]]
    assert len(ids_2) == 30 and min(ids_2) > max(ids_1) and second.context["held_next"] is None
    assert set(ids_1 + ids_2) == set(
        ExecutionTask.objects.filter(gate_case=str(case_id), status=TaskStatus.HELD).values_list("pk", flat=True)
    )


@pytest.mark.parametrize("cursor", ["x", "-1", "99999999999999999999", "١٢"])
def test_a_bad_held_tasks_cursor_is_a_400_naming_it(client, post_report, alice, cursor):
    case_id = case_for(post_report)
    client.force_login(alice)
    response = client.get(reverse("reviews:case", args=[case_id]), {"held_after": cursor})
    assert response.status_code == 400
    assert response.content.decode().startswith("held_after:")


def _grow(case_id, post_report, voter, commenter, n):
    """More of everything the case page lists: held tasks (past a page), comments, a vote."""
    hold(case_id, 150 * n, start=1000)
    for i in range(n):
        services.comment_add(case_id=case_id, author=commenter, text=f"comment {i}")
    services.vote_cast(case_id=case_id, member=voter, choice="approve", rationale=WHY)


# Session, user with its groups (core/auth.py); the case, its reports (with submitters), votes, recusals, lookalikes,
# a page of held tasks, comments; the subject panels and who may vote (membership, submitters,
# recusal, vote: 9); the timeline's case, vote, recusal and comment history; for a member who
# may vote, the first-view record (one INSERT … ON CONFLICT DO NOTHING, on every view). Few or
# many: the same. (A report's case: its submitters without the upper apps' subjects query.)
CASE_PAGE_QUERIES = 22


@pytest.mark.parametrize("many", [False, True])
def test_the_case_page_makes_a_pinned_number_of_queries(
    client, post_report, alice, bob, charlie, django_assert_num_queries, many
):
    case_id = case_for(post_report)
    if many:
        _grow(case_id, post_report, bob, charlie, 5)
    client.force_login(alice)
    url = reverse("reviews:case", args=[case_id])
    client.get(url)  # the session's first read, the rule cache
    with django_assert_num_queries(CASE_PAGE_QUERIES):
        assert client.get(url).status_code == 200
