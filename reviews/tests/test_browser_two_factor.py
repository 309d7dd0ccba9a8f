"""In Chromium: a committee member enrols an authenticator app (the test plays the
app, computing codes from the secret the page shows), and a later session has to
enter a code before a decision; a wrong code is refused with a message."""

from base64 import b32decode
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from fsar.testing import log_in, report_md
from reviews.models import Vote

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def authenticator_code(secret: str) -> str:
    """What an authenticator app shows for this base32 secret right now."""
    totp = TOTP(b32decode(secret), step=30, t0=0, digits=6)
    return f"{totp.token():06d}"


def wrong_code(secret: str) -> str:
    """A code no time step near now has (the device accepts one step of drift)."""
    totp = TOTP(b32decode(secret), step=30, t0=0, digits=6)
    near = set()
    for drift in range(-2, 3):
        totp.drift = drift
        near.add(totp.token())
    return f"{next(n for n in range(1_000_000) if n not in near):06d}"


def test_a_member_enrols_an_authenticator_and_a_new_session_must_enter_a_code_to_vote(
    page: Page, live_server, alice, post_report
):
    case_id = post_report(report_md("r1", severity=30)).json()["gate"]["case"]

    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/reviews/2fa/")
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    page.get_by_role("button", name="Enrol an authenticator app").click()
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    device = TOTPDevice.objects.get(user=alice)
    assert not device.confirmed
    assert b32decode(secret) == device.bin_key  # the page shows the device's real key

    page.get_by_label("Code").fill(authenticator_code(secret))
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator(".messages")).to_contain_text("Two-factor authentication is on for your account.")
    device.refresh_from_db()
    assert device.confirmed
    page.goto(f"{live_server.url}/reviews/2fa/")
    expect(page.get_by_test_id("totp-status")).to_contain_text("On: decisions ask for a code from Authenticator app")

    # A new session is signed in but not verified: a decision sends her to the code page.
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/reviews/cases/{case_id}/")
    form = page.get_by_test_id("vote-form")
    form.get_by_label("Approve").check()
    form.get_by_label("Rationale").fill("The rollback plan covers the risk.")
    form.get_by_role("button", name="Cast vote").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    expect(page.locator(".messages")).to_contain_text("Enter the code from your authenticator app to continue.")
    assert "/reviews/2fa/verify/" in page.url
    assert not Vote.objects.exists()

    page.get_by_label("Code from your authenticator app").fill(wrong_code(secret))
    page.get_by_role("button", name="Verify").click()
    expect(page.locator(".messages")).to_contain_text("That code did not match.")
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()

    # A minute later (past the failure's throttle and the enrolment code's time step), the right code.
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        page.get_by_label("Code from your authenticator app").fill(authenticator_code(secret))
        page.get_by_role("button", name="Verify").click()
        expect(page.get_by_test_id("case-status")).to_have_text("Open")
        assert page.url.endswith(f"/reviews/cases/{case_id}/")
        form = page.get_by_test_id("vote-form")
        form.get_by_label("Approve").check()
        form.get_by_label("Rationale").fill("The rollback plan covers the risk.")
        form.get_by_role("button", name="Cast vote").click()
        expect(page.get_by_test_id("quorum")).to_have_text("1 of 2 approvals")
    assert Vote.objects.get().member == alice


def test_a_wrong_code_at_enrolment_leaves_two_factor_off(page: Page, live_server, bob):
    log_in(page, live_server, "bob")
    page.goto(f"{live_server.url}/reviews/2fa/")
    page.get_by_role("button", name="Enrol an authenticator app").click()
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    page.get_by_label("Code").fill(wrong_code(secret))
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator(".messages")).to_contain_text("That code did not match")
    expect(page.get_by_test_id("totp-secret")).to_have_text(secret)  # the same device, still to confirm
    expect(page.get_by_test_id("totp-status")).to_have_count(0)
    assert not TOTPDevice.objects.get(user=bob).confirmed
