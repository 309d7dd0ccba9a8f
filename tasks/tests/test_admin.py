"""Admin edits of tasks and keys go through services (issue 14, item 3): changing a
key's expiry leaves a history row with the operator and the reason and an
audit-chain entry; it can bring an expired key back, never a revoked one."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.chain import verify_chain
from audit.models import AuditEntry
from tasks import services
from tasks.models import ApiKey, ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db


def expiry_form(when, reason="The agent's contract runs another quarter."):
    return {"expires_at_0": f"{when:%Y-%m-%d}", "expires_at_1": f"{when:%H:%M:%S}", "change_reason": reason}


def test_extending_an_expired_key_in_the_admin_is_in_its_history_and_on_the_chain(client, operator, make_api_key):
    key, secret = make_api_key(expires_at=timezone.now() - timedelta(days=1))
    client.force_login(operator)
    later = (timezone.now() + timedelta(days=90)).replace(microsecond=0)
    response = client.post(reverse("admin:tasks_apikey_change", args=[key.pk]), expiry_form(later), follow=True)
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.expires_at == later and key.is_active()
    latest = key.history.latest()
    assert latest.history_user == operator
    assert latest.history_change_reason == (
        "expiry extended, key active again: The agent's contract runs another quarter."
    )
    entry = AuditEntry.objects.get(kind="api_key.expiry_changed")
    assert (entry.subject, entry.actor) == (f"api_key:{key.pk}", "olivia")
    assert entry.data["reactivated"] is True and entry.data["after"] == later.isoformat()
    assert verify_chain().ok


def test_the_admin_needs_a_reason_and_never_brings_a_revoked_key_back(client, operator, make_api_key):
    key, _ = make_api_key(expires_at=timezone.now() - timedelta(days=1))
    client.force_login(operator)
    later = timezone.now() + timedelta(days=90)
    url = reverse("admin:tasks_apikey_change", args=[key.pk])
    response = client.post(url, expiry_form(later, reason=""))
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    services.api_key_revoke(api_key_id=key.pk, by=operator, reason="leaked")
    response = client.post(url, expiry_form(later), follow=True)
    assert "Nothing saved: key &#x27;key-1&#x27; is revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.expires_at < timezone.now() and not AuditEntry.objects.filter(kind="api_key.expiry_changed").exists()


def test_a_new_key_from_the_admin_is_created_by_the_service(client, operator, agent_user):
    client.force_login(operator)
    response = client.post(
        reverse("admin:tasks_apikey_add"),
        {"name": "ci", "owner": agent_user.pk, "scopes": ["tasks", "read"]},
        follow=True,
    )
    assert "Copy it now, it is not shown again: fsar_" in response.content.decode()
    key = ApiKey.objects.get(name="ci")
    assert key.history.latest().history_user == operator
    assert AuditEntry.objects.filter(kind="api_key.created", subject=f"api_key:{key.pk}").exists()


def test_bulk_actions_report_what_they_did_and_what_they_refused(client, operator):
    running = ExecutionTask.objects.create(external_id="a", task_type="implement_idea", status=TaskStatus.RUNNING)
    done = ExecutionTask.objects.create(external_id="b", task_type="implement_idea", status=TaskStatus.SUCCEEDED)
    client.force_login(operator)
    response = client.post(
        reverse("admin:tasks_executiontask_changelist"),
        {"action": "cancel_tasks", "_selected_action": [running.pk, done.pk]},
        follow=True,
    )
    html = response.content.decode()
    assert "Cancelled 1 task(s)." in html and f"Not cancelled: #{done.pk}:" in html
    running.refresh_from_db()
    assert running.status == TaskStatus.CANCELLED
    assert running.history.latest().history_user == operator


def test_the_task_search_finds_an_exact_id_and_nothing_partial(client, operator):
    for external_id, customer in (("job-Alpha-1", "cust_acme"), ("job-alpha-10", "")):
        ExecutionTask.objects.create(
            external_id=external_id, task_type="implement_idea", status="succeeded", customer_ref=customer or None
        )
    client.force_login(operator)
    url = reverse("admin:tasks_executiontask_changelist")

    def found(term):
        response = client.get(url, {"q": term})
        assert response.status_code == 200
        return sorted(t.external_id for t in response.context["cl"].result_list)

    assert found("job-Alpha-1") == ["job-Alpha-1"]
    assert found("cust_acme") == ["job-Alpha-1"]
    assert found("job-alpha-1") == []  # case-sensitive, as the API's ids are
    assert found("job-") == []  # an exact id, not a fragment
    assert "exact external id" in client.get(url).content.decode()
