"""Selectors only read (issue 14, item 5): the gate's state and the review
settings are one-row tables installed by migrations (and after every migrate);
reading them never writes, and a missing gate state fails closed: every task is
held as by a pause until an operator resumes the gate, which writes the row."""

import pytest
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reviews import selectors, services
from reviews.models import GateState, ReviewSettings
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


def writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]


def register(agent, external_id):
    body = {"external_id": external_id, "task_type": "implement_idea"}
    return agent.post("/api/v1/tasks", data=body, content_type="application/json")


@pytest.mark.parametrize("present", [True, False], ids=["rows present", "rows missing"])
def test_the_selectors_of_the_one_row_tables_never_write(present):
    if not present:
        GateState.objects.all().delete()
        ReviewSettings.objects.all().delete()
    with CaptureQueriesContext(connection) as queries:
        state = selectors.gate_state()
        row = selectors.review_settings()
        selectors.totp_required()
    assert writes(queries.captured_queries) == []
    assert GateState.objects.exists() is present and ReviewSettings.objects.exists() is present
    assert row.require_totp is False
    if not present:
        assert (state.pk, state.paused, state.reason) == (None, True, selectors.GATE_STATE_MISSING)


def test_without_its_state_row_the_gate_holds_every_task_until_an_operator_resumes_it(
    agent, operator, django_capture_on_commit_callbacks
):
    GateState.objects.all().delete()
    body = register(agent, "t1").json()
    assert (body["status"], body["gate"]["policy"]) == ("held", "global-pause")
    assert selectors.GATE_STATE_MISSING in body["gate"]["reason"]
    assert not GateState.objects.exists()  # deciding read, it did not write

    with pytest.raises(services.NotAllowed, match="already paused"):
        services.gate_pause(by=operator, reason="incident 7")
    assert not GateState.objects.exists()  # refused: nothing written

    with django_capture_on_commit_callbacks(execute=True):
        services.gate_resume(by=operator, reason="the state row is back")
    state = GateState.objects.get(pk=1)
    assert (state.paused, state.changed_by) == (False, operator)
    assert [h.history_change_reason for h in state.history.order_by("history_date")][-2:] == [
        "the state row was missing: written again as it read, paused",
        "resumed: the state row is back",
    ]
    assert ExecutionTask.objects.get(pk=body["id"]).status == TaskStatus.REGISTERED


def test_the_review_settings_service_writes_a_missing_row_again(operator):
    ReviewSettings.objects.all().delete()
    services.review_settings_set(by=operator, require_totp=True, reason="The committee asked for it.")
    assert ReviewSettings.objects.get(pk=1).require_totp


def test_after_a_migrate_the_missing_rows_are_installed_as_on_a_new_database():
    GateState.objects.all().delete()
    ReviewSettings.objects.all().delete()
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert not GateState.objects.get(pk=1).paused
    assert not ReviewSettings.objects.get(pk=1).require_totp


def test_a_rules_change_leaves_a_history_row_with_its_reason():
    before = selectors.gate_state().rules_version
    services.rules_changed(why="rule 'x' saved")
    state = GateState.objects.get(pk=1)
    assert state.rules_version != before
    assert state.history.latest().history_change_reason == "rules changed: rule 'x' saved"


def test_the_gate_page_lists_the_kill_switch_without_the_rules_bumps(client, operator):
    from reviews.models import PolicyRule

    services.gate_pause(by=operator, reason="incident 42")
    PolicyRule.objects.filter(name="default-allow").update(sla_hours=10)
    services.rules_changed(why="a rule saved")
    services.gate_resume(by=operator, reason="fixed")
    client.force_login(operator)
    html = client.get("/reviews/gate/").content.decode()
    assert "paused: incident 42" in html and "resumed: fixed" in html and "rules changed" not in html

    GateState.objects.all().delete()
    html = client.get("/reviews/gate/").content.decode()
    assert "every task is held until an operator resumes the gate" in html and "Never paused." in html
