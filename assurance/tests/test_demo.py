"""seed_demo: one suite of each source; a version passing, one failing, one overdue with its tasks held."""

from io import StringIO

import pytest
from django.core.management import call_command

from assurance.demo import HELD_TASKS
from assurance.models import AuditRun, AuditSuite
from tasks.models import ExecutionTask

pytestmark = pytest.mark.django_db


def test_seed_demo_shows_passing_failing_and_overdue_audits(client, django_user_model):
    call_command("seed_demo", "--tasks", "200", stdout=StringIO())
    assert set(AuditSuite.objects.values_list("source", flat=True)) == {"builtin", "garak", "promptfoo"}
    verdicts = {r.ai_model: r.verdict for r in AuditRun.objects.exclude(suite__source="builtin")}
    assert verdicts == {"llama-4-70b": "pass", "mistral-large-3": "fail", "claude-opus-5": "pass"}
    held = ExecutionTask.objects.filter(external_id__startswith="demo-audit-held-")
    assert held.count() == HELD_TASKS
    assert {(t.status, t.gate_policy) for t in held} == {("held", "audit-suite")}
    assert "overdue" in held.first().gate_reason
    client.force_login(django_user_model.objects.get(username="operator"))
    dashboard = client.get("/").content.decode()
    assert (
        "claude-opus-5" in dashboard and "mistral-large-3" in dashboard and 'data-testid="audit-problem"' in dashboard
    )
    grid = client.get("/audits/").content.decode()
    assert 'data-state="overdue"' in grid and 'data-state="fail"' in grid and 'data-state="pass"' in grid

    call_command("seed_demo", "--tasks", "200", stdout=StringIO())
    assert AuditSuite.objects.count() == 4
    assert AuditRun.objects.exclude(suite__source="builtin").count() == 3
