"""TOTP two-factor for committee decisions (django-otp)."""

import pytest
import time_machine
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from reviews.models import Vote
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
    response = client.post(vote_url, {"choice": "approve", "rationale": WHY})
    assert response["Location"].startswith(reverse("reviews:two_factor_verify"))
    assert not Vote.objects.exists()
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=60)):
        device.refresh_from_db()
        client.post(reverse("reviews:two_factor_verify"), {"token": code(device), "next": "/reviews/"})
        client.post(vote_url, {"choice": "approve", "rationale": WHY})
    assert Vote.objects.filter(member=alice).count() == 1


@override_settings(REVIEWS_REQUIRE_TOTP=True)
def test_an_operator_setting_requires_two_factor_from_every_member(client, post_report, bob):
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]
    client.force_login(bob)
    response = client.post(reverse("reviews:vote", args=[case_id]), {"choice": "approve", "rationale": WHY})
    assert response["Location"].startswith(reverse("reviews:two_factor"))
    assert not Vote.objects.exists()
