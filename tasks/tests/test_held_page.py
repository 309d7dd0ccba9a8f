"""The operators' held-tasks page, and the dashboard's counts as links to their lists."""

import pytest
from django.urls import reverse

from tasks.models import ExecutionTask

pytestmark = pytest.mark.django_db


def held(n: int, **extra) -> ExecutionTask:
    fields = {
        "task_type": "implement_idea",
        "status": "held",
        "gate_decision": "hold",
        "gate_policy": "severity-30-hold",
    }
    return ExecutionTask.objects.create(external_id=f"held-{n}", **{**fields, **extra})


def test_the_held_tasks_page_lists_each_held_task_with_its_case_and_reason(client, operator):
    with_case = held(1, gate_case="7", gate_reason="report r1 is waiting for the committee (case 7)")
    paused = held(2, gate_reason="the gate is paused: incident 42")
    ExecutionTask.objects.create(external_id="running", task_type="implement_idea", status="running")
    client.force_login(operator)
    html = client.get(reverse("tasks:held")).content.decode()
    assert html.count("<tr data-task=") == 2 and "running" not in html.split("<tbody>")[1]
    first = html.split(f'data-task="{with_case.pk}"')[1].split("</tr>")[0]
    assert f'<a href="{reverse("reviews:case", args=[7])}">case 7</a>' in first
    assert "report r1 is waiting for the committee (case 7)" in first
    second = html.split(f'data-task="{paused.pk}"')[1].split("</tr>")[0]
    assert "the gate is paused: incident 42" in second and '<span class="muted">—</span>' in second


def test_the_held_tasks_page_pages_by_fifty_newest_first(client, operator):
    tasks = [held(n) for n in range(51)]
    client.force_login(operator)
    first = client.get(reverse("tasks:held"))
    assert [t.pk for t in first.context["tasks"]] == [t.pk for t in reversed(tasks)][:50]
    second = client.get(reverse("tasks:held"), {"before": first.context["next_before"]})
    assert [t.pk for t in second.context["tasks"]] == [tasks[0].pk]
    assert client.get(reverse("tasks:held"), {"before": "junk"}).status_code == 200


def test_every_dashboard_count_links_to_its_list(client, operator):
    held(1)
    client.force_login(operator)
    html = client.get(reverse("home")).content.decode()
    assert f'data-testid="held-tasks"><a href="{reverse("tasks:held")}">1</a>' in html
    assert f'data-testid="open-cases"><a href="{reverse("reviews:queue")}">0</a>' in html
    assert (
        f'<a href="{reverse("admin:billing_invoice_changelist")}?status__exact=open" data-testid="open-invoices">'
        in html
    )
    assert f'href="{reverse("reviews:queue")}?show=advisory"' in html
    assert reverse("admin:reviews_callbackdelivery_changelist") + "?status__exact=failed" in html
