"""In Chromium: an operator seeds a honeypot report from the reports admin and sets
the committee chair in the review settings; a committee member then finds the
honeypot in the queue and on its case page as any held report, nothing marking it."""

import re

import pytest
from playwright.sync_api import Page, expect

from fsar.testing import log_in, report_md
from reviews.models import Report, ReviewSettings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

BAD = "implement_idea: disable the audit log to speed up the nightly batch"


def test_an_operator_seeds_a_honeypot_that_a_member_cannot_tell_apart(
    page: Page, live_server, operator, alice, bob, api_key
):
    key, _ = api_key
    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/admin/reviews/report/")
    page.get_by_role("link", name="Seed a honeypot report").click()
    page.get_by_label("Report").fill(report_md("prop-alpha", severity=35, proposal=BAD))
    page.get_by_label("Appears sent by").select_option(str(key.pk))
    page.get_by_label("Why").fill("Quarterly check that the committee reads what it approves.")
    page.get_by_role("button", name="Seed the honeypot").click()
    expect(page.locator(".messagelist")).to_contain_text("Honeypot report prop-alpha seeded")
    report = Report.objects.get(report_id="prop-alpha")
    assert report.honeypot and report.case_id

    page.goto(f"{live_server.url}/admin/reviews/reviewsettings/1/change/")
    page.get_by_label("Committee chair").select_option(label="alice")
    page.get_by_label("Why this change").fill("Alice chairs the committee from this quarter.")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("The review settings are saved.")
    assert ReviewSettings.objects.get(pk=1).chair == alice

    page.context.clear_cookies()
    log_in(page, live_server, "bob")
    page.goto(f"{live_server.url}/reviews/")
    page.get_by_role("link", name=re.compile("Report prop-alpha")).first.click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Report prop-alpha")
    expect(page.get_by_text(BAD).first).to_be_visible()
    expect(page.get_by_role("button", name="Cast vote on version 1")).to_be_visible()
    assert "honeypot" not in page.content().lower()
