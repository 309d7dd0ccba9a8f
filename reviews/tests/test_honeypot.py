"""Honeypot reports: an operator seeds a known-bad report from the admin; it is a
honeypot only there. The committee sees a report like any other (queue, case page,
exports, mails); the AI client never sees it at all; its case releases nothing,
whatever the vote."""

from __future__ import annotations

import json
import re

import pytest
from django.core import mail

from audit.models import AuditEntry
from fsar.testing import report_md
from reviews import services
from reviews.models import CallbackDelivery, Case, CaseStatus, Report
from reviews.tests.support import WHY, held_report
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db

SEED_URL = "/admin/reviews/report/seed-honeypot/"
HP = "prop-alpha"  # the honeypot's id
BAD = "implement_idea: disable the audit log to speed up the nightly batch"
REASON = "Quarterly check that the committee reads what it approves."


def seed(client, operator, report_id=HP, *, severity=35, shown_as=None, proposal=BAD, **extra):
    client.force_login(operator)
    data = {
        "text": report_md(report_id, severity=severity, proposal=proposal),
        "format": "markdown",
        "shown_as": shown_as.pk if shown_as else "",
        "reason": REASON,
        **extra,
    }
    return client.post(SEED_URL, data)


@pytest.fixture
def key(api_key):
    return api_key[0]


@pytest.fixture
def honeypot(client, operator, key) -> Report:
    """A honeypot that appears sent by the AI's API key, as its real reports are."""
    response = seed(client, operator, shown_as=key)
    assert response.status_code == 302, response.content.decode()
    client.logout()
    return Report.objects.get(report_id=HP)


def normalized(html: str, *, ids: dict[str, str]) -> str:
    """A page with what differs between any two cases (ids, numbers, tokens) blanked."""
    for value, name in ids.items():
        html = html.replace(value, name)
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r"\d+", "0", html)


# ------------------------------------------------------------------ seeding it


def test_an_operator_seeds_a_honeypot_in_the_admin_with_history_and_a_chain_entry(client, operator, key):
    client.force_login(operator)
    assert "Seed a honeypot report" in client.get("/admin/reviews/report/").content.decode()
    response = seed(client, operator, shown_as=key)
    assert response.status_code == 302
    report = Report.objects.get(report_id=HP)
    assert report.honeypot and report.submitted_by == key and report.uploaded_by is None
    case = report.case
    assert (case.kind, case.status, case.quorum) == (Case.Kind.REPORT, CaseStatus.OPEN, 2)
    seeded = report.history.get()
    assert seeded.history_user == operator and seeded.history_change_reason.startswith("seeded as a honeypot")
    entry = AuditEntry.objects.get(kind="honeypot.seeded")
    assert entry.subject == f"honeypot:{report.pk}" and entry.actor == "olivia"
    assert entry.data["reason"] == REASON and entry.data["shown_as"] == key.name
    # The admin is where it is marked.
    assert client.get("/admin/reviews/report/?honeypot__exact=1").context["cl"].result_count == 1


def test_a_report_the_policy_would_not_hold_is_refused_and_nothing_is_stored(client, operator):
    response = seed(client, operator, severity=5)
    assert response.status_code == 200
    assert "would not hold this report" in response.content.decode()
    assert not Report.objects.exists() and not Case.objects.exists()
    assert not AuditEntry.objects.filter(kind="honeypot.seeded").exists()


def test_bad_input_names_the_problem(client, operator, post_report):
    held_report(post_report, "taken")
    assert "already exists" in seed(client, operator, "taken").content.decode()
    assert "reason" in seed(client, operator, "h2", reason="").context["form"].errors
    broken = client.post(SEED_URL, {"text": "not a report", "format": "markdown", "reason": REASON})
    assert broken.status_code == 200 and broken.context["form"].errors["text"]
    assert Report.objects.filter(honeypot=True).count() == 0


def test_only_operators_seed_honeypots(client, alice, honeypot):
    alice.is_staff = True
    alice.save()
    client.force_login(alice)
    assert client.get(SEED_URL).status_code in (302, 403)
    assert client.post(SEED_URL, {"text": report_md("h9", severity=35), "reason": REASON}).status_code in (302, 403)
    with pytest.raises(services.NotAllowed):
        services.honeypot_seed(raw=report_md("h9", severity=35).encode(), by=alice, reason=REASON)
    assert not Report.objects.filter(report_id="h9").exists()


# ------------------------------------------------- the committee cannot tell


def test_the_case_page_of_a_honeypot_reads_as_any_held_report(client, honeypot, post_report, alice):
    real_case = held_report(post_report, "prop-bravo", proposal=BAD)
    client.force_login(alice)
    pages = {}
    for report_id, case_id in ((HP, honeypot.case_id), ("prop-bravo", real_case)):
        html = client.get(f"/reviews/cases/{case_id}/").content.decode()
        assert "honeypot" not in html.lower()
        pages[report_id] = normalized(html, ids={report_id: "REPORT", f"/cases/{case_id}/": "/cases/CASE/"})
    assert pages[HP] == pages["prop-bravo"]  # same words, classes and buttons: nothing tells them apart
    queue = client.get("/reviews/").content.decode()
    assert HP in queue and "honeypot" not in queue.lower()


def test_exports_and_mails_do_not_name_it(client, honeypot, alice, bob, operator, django_capture_on_commit_callbacks):
    client.force_login(operator)
    for fmt in ("json", "csv"):
        body = client.get(f"/reviews/cases/{honeypot.case_id}/export.{fmt}").content.decode()
        assert HP in body and "honeypot" not in body.lower()
    with django_capture_on_commit_callbacks(execute=True):
        services.vote_cast(case_id=honeypot.case_id, member=alice, choice="approve", rationale=WHY)
        services.vote_cast(case_id=honeypot.case_id, member=bob, choice="approve", rationale=WHY)
    for message in mail.outbox:
        assert "honeypot" not in f"{message.subject} {message.body}".lower()


def test_after_approving_a_member_sees_an_approved_case(client, honeypot, alice, bob):
    services.vote_cast(case_id=honeypot.case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=honeypot.case_id, member=bob, choice="approve", rationale=WHY)
    client.force_login(alice)
    html = client.get(f"/reviews/cases/{honeypot.case_id}/").content.decode()
    assert Case.objects.get(pk=honeypot.case_id).status == CaseStatus.APPROVED
    assert "Approved" in html and "honeypot" not in html.lower()


# ------------------------------------------------------ the AI never sees it


def test_the_ai_cannot_read_it_and_gets_what_an_unknown_id_gets(agent, honeypot):
    unknown = agent.get("/api/v1/proposals/nobody-sent-this")
    response = agent.get(f"/api/v1/proposals/{HP}")
    assert unknown.status_code == response.status_code == 404
    assert response.json()["detail"] == unknown.json()["detail"].replace("nobody-sent-this", HP)


def test_no_task_can_ride_on_it_even_once_approved(agent, honeypot, alice, bob):
    def register(external_id):
        body = {"external_id": external_id, "task_type": "implement_idea", "proposal_id": HP}
        return agent.post("/api/v1/tasks", data=body, content_type="application/json")

    assert register("t-before").status_code == 422
    services.vote_cast(case_id=honeypot.case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=honeypot.case_id, member=bob, choice="approve", rationale=WHY)
    response = register("t-after")
    assert response.status_code == 422 and "proposal_id" in response.content.decode()
    assert not ExecutionTask.objects.exists()
    assert not CallbackDelivery.objects.exists()


def test_the_client_cannot_set_the_flag(agent, post_report):
    body = json.loads(json.dumps({
        "id": "r-json", "timestamp": "2026-02-01T10:00:00Z", "proposal": BAD, "severity": 35,
        "block_execution": False, "honeypot": True,
    }))  # fmt: skip
    response = post_report(json.dumps(body), content_type="application/json")
    assert response.status_code == 422 and response.json()["field"] == "honeypot"  # refused, naming it
    assert not Report.objects.filter(honeypot=True).exists()
    markdown = report_md("r-md", severity=35).replace("- severity: 35", "- severity: 35\n- honeypot: true")
    response = post_report(markdown)
    assert response.status_code == 422 and response.json()["field"] == "honeypot"
    assert not Report.objects.filter(honeypot=True).exists()
    stored = post_report(report_md("r-plain", severity=35)).json()
    read = agent.get("/api/v1/proposals/r-plain").json()
    assert "honeypot" not in json.dumps(stored) and "honeypot" not in json.dumps(read)


def test_its_id_is_taken_but_never_handed_back(post_report, honeypot):
    same = post_report(report_md(HP, severity=35, proposal=BAD))
    assert same.status_code == 409
    assert BAD not in same.content.decode() and "honeypot" not in same.content.decode().lower()
    revision = post_report(report_md("r2", severity=35, supersedes=HP))
    assert revision.status_code == 422 and f"no report with id {HP!r}" in revision.content.decode()
    assert Case.objects.get(pk=honeypot.case_id).version == 1


def test_a_rejected_honeypot_is_never_a_precedent_the_ai_reads(post_report, honeypot, alice):
    services.vote_cast(case_id=honeypot.case_id, member=alice, choice="reject", rationale=WHY)
    assert Case.objects.get(pk=honeypot.case_id).status == CaseStatus.REJECTED
    gate = post_report(report_md("r1", severity=5, proposal=BAD)).json()["gate"]
    assert gate["rejected_precedent"] is None and HP not in json.dumps(gate)
    assert gate["decision"] == "allow"


def test_its_approval_releases_nothing_even_work_found_waiting_on_it(agent, honeypot, alice, bob):
    """No task can name a honeypot (above). Should one be found waiting on its case
    all the same (a row written before this rule, a bug elsewhere), approving the
    case does not release it and the AI hears nothing."""
    body = {"external_id": "t1", "task_type": "implement_idea", "proposal_id": "prop-bravo"}
    held_report_id = held_report_via_api(agent)
    task = agent.post("/api/v1/tasks", data=body, content_type="application/json").json()
    assert task["gate"]["decision"] == "hold" and task["gate"]["case"] == held_report_id
    ExecutionTask.objects.filter(pk=task["id"]).update(gate_case=str(honeypot.case_id))
    services.vote_cast(case_id=honeypot.case_id, member=alice, choice="approve", rationale=WHY)
    services.vote_cast(case_id=honeypot.case_id, member=bob, choice="approve", rationale=WHY)
    assert Case.objects.get(pk=honeypot.case_id).status == CaseStatus.APPROVED
    assert ExecutionTask.objects.get(pk=task["id"]).status == TaskStatus.HELD
    assert not CallbackDelivery.objects.exists()


def held_report_via_api(agent) -> int:
    text = report_md("prop-bravo", severity=35)
    return agent.post("/api/v1/proposals", data=text.encode(), content_type="text/markdown").json()["gate"]["case"]
