"""Cases about subjects the apps above reviews own (reviews.subjects): a kind
registered from outside, a plain-string subject reference, open/reopen, the
case_changed signal, approval guards, panels, and the tasks held on such a case
decided again by the whole gate when it is approved."""

import pytest
from django.template import Template

from audit.models import AuditEntry
from reviews import services, subjects
from reviews.models import Case, CaseStatus, PolicyRule
from reviews.signals import case_changed
from tasks.gate import GateDecision
from tasks.models import ExecutionTask, TaskStatus
from tasks.services import Actor, task_register

pytestmark = pytest.mark.django_db
WHY = "Looked at it carefully and it holds up."
SUBMITTER = {"id": None}


def widget_gate(task):
    """A stand-in for an upper app's gate: tasks on a widget wait for its case."""
    if task.ai_model and task.ai_model.startswith("widget-"):
        case = Case.objects.filter(kind="widget", subject_ref=task.ai_model).order_by("-id").first()
        if case is not None and case.status != CaseStatus.APPROVED:
            return GateDecision("hold", f"{task.ai_model} is waiting", "widget", str(case.pk))
    return services.decide_task(task)


@pytest.fixture(autouse=True)
def widget_kind(settings):
    subjects.register_kind("widget", label="Widget", submitters=lambda case: {SUBMITTER["id"]})
    settings.TASK_GATE = "reviews.tests.test_subject_cases.widget_gate"
    yield
    subjects.unregister_kind("widget")
    SUBMITTER["id"] = None


@pytest.fixture
def events():
    seen = []

    def receiver(sender, case, event, by, **kwargs):
        seen.append((case.pk, event, getattr(by, "username", None), Case.objects.get(pk=case.pk).status))

    case_changed.connect(receiver, dispatch_uid="test-subject-events")
    yield seen
    case_changed.disconnect(dispatch_uid="test-subject-events")


def open_widget(ref="widget-1", **fields):
    spec = {"kind": "widget", "subject_ref": ref, "title": f"Widget {ref}", "reason": "new widget", "quorum": 2}
    return services.subject_case_open(**{**spec, **fields})


def test_opening_is_idempotent_per_subject_and_raises_the_quorum():
    case = open_widget(quorum=1, severity=30, sla_hours=10, approval_valid_hours=5, rule_name="widget-rule")
    assert (case.kind, case.subject_ref, case.quorum, case.severity, case.rule_name) == (
        "widget",
        "widget-1",
        1,
        30,
        "widget-rule",
    )
    assert (case.due_at - case.opened_at).total_seconds() == 10 * 3600 and case.approval_valid_hours == 5
    again = open_widget(quorum=3)
    assert again.pk == case.pk and Case.objects.get(pk=case.pk).quorum == 3
    assert open_widget("widget-2").pk != case.pk
    entry = AuditEntry.objects.get(kind="case.opened", subject=f"case:{case.pk}")
    assert entry.data["subject_ref"] == "widget-1" and entry.data["reason"] == "new widget"


@pytest.mark.parametrize(
    "fields,message",
    [({"kind": "gadget"}, "unknown case kind"), ({"subject_ref": ""}, "subject reference"), ({"quorum": 0}, "quorum")],
)
def test_a_case_of_an_unregistered_kind_or_without_a_subject_is_refused(fields, message):
    with pytest.raises(services.NotAllowed, match=message):
        open_widget(**fields)
    assert not Case.objects.exists()


def test_each_change_is_signalled_inside_its_transaction(alice, bob, events):
    case = open_widget(quorum=1)
    services.vote_cast(case_id=case.pk, member=alice, choice="approve", rationale=WHY)
    services.case_revoke(case_id=case.pk, by=alice, rationale="It broke in production last night.")
    services.vote_cast(case_id=case.pk, member=bob, choice="reject", rationale=WHY)
    services.subject_case_reopen(case_id=case.pk, reason="new evidence arrived", quorum=2, by=bob)
    assert events == [
        (case.pk, "approved", "alice", "approved"),
        (case.pk, "revoked", "alice", "open"),
        (case.pk, "rejected", "bob", "rejected"),
        (case.pk, "reopened", "bob", "open"),
    ]
    case.refresh_from_db()
    assert (case.status, case.quorum, case.version) == ("open", 2, 3)


def test_a_receiver_that_fails_rolls_the_decision_back(alice):
    case = open_widget(quorum=1)

    def broken(sender, **kwargs):
        raise RuntimeError("the upper app could not record it")

    case_changed.connect(broken, dispatch_uid="test-broken")
    try:
        with pytest.raises(RuntimeError):
            services.vote_cast(case_id=case.pk, member=alice, choice="approve", rationale=WHY)
    finally:
        case_changed.disconnect(dispatch_uid="test-broken")
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN and not case.votes.exists()


def test_expiry_is_signalled(alice, events):
    from datetime import timedelta

    from django.utils import timezone

    case = open_widget(quorum=1, approval_valid_hours=1)
    services.vote_cast(case_id=case.pk, member=alice, choice="approve", rationale=WHY)
    services.cases_expire(now=timezone.now() + timedelta(hours=2))
    assert events[-1] == (case.pk, "expired", None, "expired")


def test_an_approval_guard_refuses_approval_with_its_reason_and_leaves_reject(client, alice, bob):
    case = open_widget(quorum=1)
    subjects.register_approval_guard("widget", lambda c: "the widget has no passing audit")
    with pytest.raises(services.NotAllowed, match="no passing audit"):
        services.vote_cast(case_id=case.pk, member=alice, choice="approve", rationale=WHY)
    with pytest.raises(services.NotAllowed, match="no passing audit"):
        services.case_decide(case_id=case.pk, decision="approved", by=alice, rationale=WHY)
    assert not case.votes.exists()
    client.force_login(bob)
    html = client.get(f"/reviews/cases/{case.pk}/").content.decode()
    assert 'value="approve" id="id_choice_0" required disabled aria-describedby="refused-approve"' in html
    assert "(Approve is not possible: the widget has no passing audit)" in html
    services.vote_cast(case_id=case.pk, member=bob, choice="reject", rationale=WHY)
    assert Case.objects.get(pk=case.pk).status == CaseStatus.REJECTED


def test_a_subject_case_is_approved_or_rejected_never_sent_back_for_changes(alice):
    case = open_widget()
    with pytest.raises(services.NotAllowed, match="cannot be revised in place"):
        services.vote_cast(case_id=case.pk, member=alice, choice="request_changes", rationale=WHY)
    with pytest.raises(services.NotAllowed, match="cannot be revised in place"):
        services.case_decide(case_id=case.pk, decision="changes_requested", by=alice, rationale=WHY)


def test_the_submitter_of_a_subject_cannot_vote_and_counts_against_the_quorum(alice, bob):
    case = open_widget(quorum=2)
    assert services.why_cannot_vote(case, alice) is None
    SUBMITTER["id"] = alice.pk
    assert services.why_cannot_vote(case, alice) == "you submitted what this case is about (you registered its subject)"
    assert services.recheck_short_of_members() == 1  # two members, one of them the submitter
    assert Case.objects.get(pk=case.pk).short_of_members


def test_the_page_shows_registered_panels_and_the_queue_filters_by_the_kind(client, alice):
    case = open_widget()
    subjects.register_panel(
        "widget",
        template=Template('<p data-testid="widget-panel">{{ panel.ref }}</p>'),
        context=lambda c, u: {"ref": c.subject_ref},
    )
    client.force_login(alice)
    assert '<p data-testid="widget-panel">widget-1</p>' in client.get(f"/reviews/cases/{case.pk}/").content.decode()
    queue = client.get("/reviews/?kind=widget")
    assert queue.context["filters"]["kind"] == "widget"
    assert "Widget widget-1" in queue.content.decode()
    assert '<option value="widget" selected>Widgets</option>' in queue.content.decode()


def test_approving_decides_the_held_tasks_again_through_the_whole_gate(api_key, alice, bob):
    key, _ = api_key
    actor = Actor.for_key(key)
    case = open_widget(quorum=2)
    PolicyRule.objects.create(name="blocked-customer", priority=1, customers=["evil-co"], action="deny")
    plain, _ = task_register(actor=actor, external_id="plain", task_type="implement_idea", ai_model="widget-1")
    evil, _ = task_register(
        actor=actor, external_id="evil", task_type="implement_idea", ai_model="widget-1", customer_ref="evil-co"
    )
    # The door: both wait on the widget's case, the rule that denies evil-co never asked.
    assert {(t.status, t.gate_case) for t in (plain, evil)} == {(TaskStatus.HELD, str(case.pk))}

    for member in (alice, bob):
        services.vote_cast(case_id=case.pk, member=member, choice="approve", rationale=WHY)

    plain.refresh_from_db()
    evil.refresh_from_db()
    assert (plain.status, plain.gate_decision, plain.gate_case) == (TaskStatus.REGISTERED, "allow", str(case.pk))
    assert (evil.status, evil.gate_policy) == (TaskStatus.DENIED, "blocked-customer")
    for task in (plain, evil):
        assert ExecutionTask.history.filter(id=task.pk).count() == 2  # held, then decided: once


def test_tasks_held_by_the_pause_are_decided_again_by_the_whole_gate(
    api_key, alice, operator, django_capture_on_commit_callbacks
):
    case = open_widget(quorum=1)
    services.vote_cast(case_id=case.pk, member=alice, choice="approve", rationale=WHY)
    services.gate_pause(by=operator, reason="Incident: checking the widgets.")
    task, _ = task_register(
        actor=Actor.for_key(api_key[0]), external_id="t1", task_type="implement_idea", ai_model="widget-1"
    )
    assert (task.status, task.gate_policy) == (TaskStatus.HELD, services.PAUSE_POLICY)
    # During the pause the widget's approval is withdrawn: the widget's part of the gate holds again.
    services.case_revoke(case_id=case.pk, by=alice, rationale="The widget misbehaved during the incident.")
    with django_capture_on_commit_callbacks(execute=True):  # the job that decides them again
        services.gate_resume(by=operator, reason="Incident over, resuming work.")
    task.refresh_from_db()
    assert (task.status, task.gate_policy, task.gate_case) == (TaskStatus.HELD, "widget", str(case.pk))
