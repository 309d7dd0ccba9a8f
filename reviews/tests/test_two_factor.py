"""TOTP two-factor for committee decisions (django-otp), and the operators'
setting (with the environment as its floor) that requires it from every member."""

from urllib.parse import quote

import pytest
import time_machine
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.chain import verify_chain
from audit.models import AuditEntry
from reviews import selectors, services
from reviews.models import Recusal, Vote
from reviews.tests.conftest import report_md

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


def code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def test_a_member_enrols_and_then_decisions_need_a_verified_session(client, post_report, alice):
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    client.force_login(alice)
    client.post(reverse("reviews:two_factor"), {"action": "start"})
    device = TOTPDevice.objects.get(user=alice)
    assert not device.confirmed
    assert client.post(reverse("reviews:two_factor"), {"action": "confirm", "token": "000000"}).status_code == 302
    device.refresh_from_db()
    assert not device.confirmed or code(device) == "000000"
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=5)):  # past the failure's throttle
        client.post(reverse("reviews:two_factor"), {"action": "confirm", "token": code(device)})
    device.refresh_from_db()
    assert device.confirmed

    client.logout()
    client.force_login(alice)  # a new session: signed in, not yet verified
    vote_url = reverse("reviews:vote", args=[case_id])
    response = client.post(vote_url, {"choice": "approve", "rationale": WHY, "version": 1})
    assert response["Location"].startswith(reverse("reviews:two_factor_verify"))
    assert not Vote.objects.exists()
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=60)):
        device.refresh_from_db()
        client.post(reverse("reviews:two_factor_verify"), {"token": code(device), "next": "/reviews/"})
        client.post(vote_url, {"choice": "approve", "rationale": WHY, "version": 1})
    assert Vote.objects.filter(member=alice).count() == 1


@override_settings(REVIEWS_REQUIRE_TOTP=True)
def test_the_environment_requires_two_factor_even_with_the_operator_setting_off(client, post_report, bob):
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    assert not selectors.review_settings().require_totp
    client.force_login(bob)
    response = client.post(
        reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY, "version": 1}
    )
    assert response["Location"].startswith(reverse("reviews:two_factor"))
    assert not Vote.objects.exists()


def test_with_the_operator_setting_on_a_member_without_two_factor_is_sent_to_enrol(client, post_report, operator, bob):
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    services.review_settings_set(by=operator, require_totp=True, reason="The committee asked for it after an audit.")
    client.force_login(bob)
    case_url = reverse("reviews:case", args=[case_id])
    response = client.post(
        reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY, "version": 1}, follow=True
    )
    assert response.redirect_chain[0][0] == f"{reverse('reviews:two_factor')}?next={quote(case_url, safe='')}"
    html = response.content.decode()
    assert "Not recorded: committee decisions require two-factor authentication." in html
    assert 'name="action" value="start"' in html and "Enrol an authenticator app" in html
    response = client.post(reverse("reviews:recuse", args=[case_id]), {"reason": "I wrote part of this plan."})
    assert response["Location"].startswith(reverse("reviews:two_factor"))
    assert not Vote.objects.exists() and not Recusal.objects.exists()


def test_with_the_operator_setting_off_again_a_member_without_two_factor_votes(client, post_report, operator, bob):
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    services.review_settings_set(by=operator, require_totp=True, reason="Trying it for a week.")
    services.review_settings_set(by=operator, require_totp=False, reason="Members could not enrol in time.")
    client.force_login(bob)
    response = client.post(
        reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY, "version": 1}
    )
    assert response["Location"] == reverse("reviews:case", args=[case_id])
    assert Vote.objects.filter(member=bob).count() == 1


def test_a_settings_change_is_in_history_and_on_the_audit_chain(operator):
    services.review_settings_set(by=operator, require_totp=True, reason="The committee asked for it after an audit.")
    row = selectors.review_settings()
    assert (row.require_totp, row.changed_by, row.reason) == (
        True,
        operator,
        "The committee asked for it after an audit.",
    )
    latest = row.history.latest()
    assert latest.require_totp and latest.history_user == operator
    assert latest.history_change_reason == "two-factor required: The committee asked for it after an audit."
    entry = AuditEntry.objects.get(kind="review_settings.changed")
    assert (entry.subject, entry.actor) == ("review_settings", "olivia")
    assert entry.data == {
        "diff": {"require_totp": [False, True]},
        "reason": "The committee asked for it after an audit.",
    }
    assert verify_chain().ok

    with pytest.raises(services.NotAllowed, match="nothing changed"):
        services.review_settings_set(by=operator, require_totp=True, reason="Again.")
    with pytest.raises(services.NotAllowed, match="needs a reason"):
        services.review_settings_set(by=operator, require_totp=False, reason="  ")
    assert AuditEntry.objects.filter(kind="review_settings.changed").count() == 1
    assert row.history.count() == 1  # the one change (the row is from migration reviews.0010)


def test_operators_flip_the_setting_in_the_admin(client, operator, alice):
    client.force_login(operator)
    response = client.get("/admin/reviews/reviewsettings/")
    assert response.status_code == 302
    change_url = response["Location"]
    assert change_url == "/admin/reviews/reviewsettings/1/change/"
    assert client.get(change_url).status_code == 200

    unchanged = client.post(change_url, {"change_reason": "Just looking."})
    assert unchanged.status_code == 200 and "Nothing changed" in unchanged.content.decode()
    response = client.post(change_url, {"require_totp": "on", "change_reason": "The committee asked for it."})
    assert response.status_code == 302
    assert selectors.totp_required()
    entry = AuditEntry.objects.get(kind="review_settings.changed")
    assert entry.actor == "olivia" and entry.data["reason"] == "The committee asked for it."
    assert selectors.review_settings().history.latest().history_user == operator

    client.force_login(alice)  # committee members do not use the admin
    assert client.post(change_url, {"change_reason": "Turning it off."}).status_code == 302
    assert selectors.totp_required()


def test_enrolment_is_written_by_the_service_and_on_the_chain(client, alice):
    client.force_login(alice)
    client.post(reverse("reviews:two_factor"), {"action": "start"})
    device = TOTPDevice.objects.get(user=alice)
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=5)):
        client.post(reverse("reviews:two_factor"), {"action": "confirm", "token": code(device)})
    entry = AuditEntry.objects.get(kind="two_factor.enrolled")
    assert (entry.subject, entry.actor, entry.data) == (
        f"user:{alice.pk}",
        "alice",
        {"device": device.pk, "name": "Authenticator app"},
    )
    with pytest.raises(services.NotAllowed, match="already on"):
        services.totp_enrol_start(user=alice)
    assert TOTPDevice.objects.filter(user=alice).count() == 1


def test_a_superuser_removes_a_lost_device_in_the_admin_with_a_reason_on_the_chain(client, superuser, alice):
    device = services.totp_enrol_start(user=alice)
    client.force_login(superuser)
    changelist = reverse("admin:otp_totp_totpdevice_changelist")
    html = client.get(reverse("admin:otp_totp_totpdevice_change", args=[device.pk])).content.decode()
    assert device.key not in html  # the secret is never shown
    response = client.post(
        changelist, {"action": "remove_devices", "_selected_action": [device.pk], "change_reason": ""}, follow=True
    )
    assert "Not removed: #" in response.content.decode() and TOTPDevice.objects.filter(pk=device.pk).exists()
    client.post(
        changelist,
        {"action": "remove_devices", "_selected_action": [device.pk], "change_reason": "Alice lost her phone."},
    )
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    entry = AuditEntry.objects.get(kind="two_factor.removed")
    assert (entry.actor, entry.data["member"], entry.data["reason"]) == ("root", "alice", "Alice lost her phone.")
    assert verify_chain().ok
