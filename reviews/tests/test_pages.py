"""The operators' upload form, the kill-switch page, a case page and the dashboard section."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from fsar.testing import report_md
from reviews import selectors, services
from reviews.models import Report

pytestmark = pytest.mark.django_db


def test_an_operator_uploads_several_reports_and_sees_each_result(client, operator, seed_md):
    client.force_login(operator)
    files = [
        SimpleUploadedFile("seed.md", seed_md),
        SimpleUploadedFile("block.md", report_md("b1", block=True).encode()),
        SimpleUploadedFile("broken.json", b'{"id": "x", "severity": "6"}'),
        SimpleUploadedFile("again.md", seed_md),
        SimpleUploadedFile("huge.md", b"x" * (1024 * 1024 + 1)),
    ]
    response = client.post(reverse("reviews:upload"), {"files": files})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-file="seed.md" data-outcome="ingested" data-decision="allow"' in html
    assert 'data-file="block.md" data-outcome="ingested" data-decision="hold"' in html
    assert "block-execution-hold" in html
    assert 'data-file="broken.json" data-outcome="invalid"' in html
    assert 'data-file="again.md" data-outcome="unchanged"' in html
    assert 'data-file="huge.md" data-outcome="invalid"' in html and "the limit is 1048576 bytes" in html
    assert Report.objects.count() == 2
    assert Report.objects.get(report_id="b1").uploaded_by == operator


def test_the_kill_switch_page_pauses_and_resumes_with_a_reason(client, alice):
    client.force_login(alice)
    response = client.post(reverse("reviews:gate"), {"reason": "drift alert"}, follow=True)
    assert "GATE PAUSED" in response.content.decode()
    assert selectors.gate_state().paused
    assert selectors.gate_state().changed_by == alice
    client.post(reverse("reviews:gate"), {"reason": "all clear"})
    assert not selectors.gate_state().paused


def test_the_dashboard_says_loudly_when_the_gate_is_paused(client, operator):
    client.force_login(operator)
    assert "GATE PAUSED" not in client.get(reverse("home")).content.decode()
    services.gate_pause(by=operator, reason="incident 7")
    html = client.get(reverse("home")).content.decode()
    assert 'data-testid="gate-paused"' in html
    assert "incident 7" in html


def test_a_case_page_shows_its_report_and_waiting_tasks(client, alice, post_report, agent):
    case_id = post_report(report_md("r1", severity=50)).json()["gate"]["case"]
    agent.post(
        "/api/v1/tasks",
        data={"external_id": "t1", "task_type": "implement_idea", "proposal_id": "r1"},
        content_type="application/json",
    )
    client.force_login(alice)
    html = client.get(reverse("reviews:case", args=[case_id])).content.decode()
    assert "Report r1" in html
    assert "t1" in html
    assert 'data-testid="case-status">Open' in html


def test_an_operator_proposes_a_rule_in_the_admin_and_broken_rules_are_refused(client, operator):
    from reviews.models import PolicyChange, PolicyRule

    client.force_login(operator)
    assert client.get("/admin/reviews/policyrule/add/").status_code == 200
    form = {
        "name": "flaky-models",
        "priority": "5",
        "enabled": "on",
        "task_types": "[]",
        "customers": "[]",
        "metric": "failure_rate",
        "metric_window": "20",
        "action": "hold",
        "quorum": "1",
        "sla_hours": "24",
        "approval_valid_hours": "24",
        "change_reason": "Flaky models should wait for the committee.",
    }
    refused = client.post("/admin/reviews/policyrule/add/", form)
    assert refused.status_code == 200
    assert "a metric needs a threshold" in refused.content.decode()
    assert not PolicyRule.objects.filter(name="flaky-models").exists()
    response = client.post("/admin/reviews/policyrule/add/", {**form, "metric_threshold": "0.2"})
    assert response.status_code == 302
    assert not PolicyRule.objects.filter(name="flaky-models").exists()  # a proposal until the committee approves
    change = PolicyChange.objects.get(rule_name="flaky-models")
    assert change.proposed["metric_threshold"] == 0.2
    assert change.history.get().history_user == operator
