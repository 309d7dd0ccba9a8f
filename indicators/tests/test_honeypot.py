"""An approval of a honeypot report fires an alert at once: it exists when the
vote's request returns, and the member who voted is not told."""

import pytest
from django.core import mail

from fsar.testing import report_md
from indicators import selectors
from indicators.models import Alert, AlertKind
from reviews.models import Report

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


@pytest.fixture
def honeypot_case(client, operator, api_key) -> int:
    client.force_login(operator)
    response = client.post(
        "/admin/reviews/report/seed-honeypot/",
        {
            "text": report_md("prop-alpha", severity=35, proposal="implement_idea: disable the audit log"),
            "format": "markdown",
            "shown_as": api_key[0].pk,
            "reason": "Quarterly check that the committee reads what it approves.",
        },
    )
    assert response.status_code == 302, response.content.decode()
    client.logout()
    return Report.objects.get(report_id="prop-alpha").case_id


def vote(client, member, case_id, choice):
    client.force_login(member)
    assert client.get(f"/reviews/cases/{case_id}/").status_code == 200
    response = client.post(f"/reviews/cases/{case_id}/vote/", {"choice": choice, "rationale": WHY, "version": 1})
    assert response.status_code == 302, response.content.decode()


def test_an_approval_of_a_honeypot_fires_an_alert_before_the_request_returns(client, honeypot_case, alice):
    assert not Alert.objects.exists()
    vote(client, alice, honeypot_case, "approve")
    [alert] = Alert.objects.all()
    assert (alert.kind, alert.member, alert.case_id_ref) == (AlertKind.HONEYPOT, alice, honeypot_case)
    assert [a.pk for a in selectors.firing_alerts()] == [alert.pk]
    assert list(alert.events.values_list("type", flat=True))[:1] == ["fired"]


def test_a_rejection_of_a_honeypot_fires_nothing(client, honeypot_case, alice):
    vote(client, alice, honeypot_case, "reject")
    assert not Alert.objects.exists()


def test_an_approval_of_a_real_report_fires_nothing(client, post_report, alice):
    response = post_report(report_md("real-1", severity=35))
    case_id = response.json()["gate"]["case"]
    vote(client, alice, case_id, "approve")
    assert not Alert.objects.exists()


def approve_and_collect_mails(client, case_id, alice, bob, operator, capture) -> list:
    """alice approves the honeypot with everyone mailable; the alert mails sent."""
    for user, address in ((operator, "olivia@example.org"), (alice, "alice@example.org"), (bob, "bob@example.org")):
        user.email = address
        user.save()
    mail.outbox.clear()
    with capture(execute=True):
        vote(client, alice, case_id, "approve")
    return [m for m in mail.outbox if "Alert" in m.subject]


def test_the_member_who_approved_is_not_mailed(
    client, honeypot_case, alice, bob, operator, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    alert_mails = approve_and_collect_mails(client, honeypot_case, alice, bob, operator, capture)
    assert alert_mails and "alice@example.org" not in {m.to[0] for m in alert_mails}
    assert "olivia@example.org" in {m.to[0] for m in alert_mails}


def test_a_chair_who_votes_is_not_told_which_case_is_the_honeypot(
    client, honeypot_case, alice, bob, operator, django_capture_on_commit_callbacks
):
    """The chair is mailed about the approval, but neither the subject nor the body
    names the case (bob could tell a case still open to him is a honeypot);
    the operator's mail names it."""
    from reviews.services import review_settings_set

    review_settings_set(by=operator, chair=bob, reason="bob chairs")
    capture = django_capture_on_commit_callbacks
    alert_mails = approve_and_collect_mails(client, honeypot_case, alice, bob, operator, capture)
    by_to = {m.to[0]: m for m in alert_mails}
    chair_mail, operator_mail = by_to["bob@example.org"], by_to["olivia@example.org"]
    told = (chair_mail.subject + "\n" + chair_mail.body).lower()
    for tell in (f"case: {honeypot_case}", f"case {honeypot_case}", f"cases/{honeypot_case}/"):
        assert tell not in told
    assert f"Case: {honeypot_case}" in operator_mail.body
