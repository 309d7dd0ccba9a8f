"""In Chromium: an operator uploads a garak report and sees the verdict on the
audit grid; a committee member sees the audit status on a model case, with the
approve button saying what is missing."""

import pytest
from playwright.sync_api import Page, expect

from assurance.tests.support import SAMPLES, make_suite, make_version
from fsar.testing import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_an_operator_uploads_a_garak_report_and_sees_the_verdict(page: Page, live_server, operator):
    make_version("coder-2026-11")
    make_suite("garak-weekly")
    log_in(page, live_server, "olivia")
    page.get_by_role("link", name="Audits", exact=True).click()
    row = page.locator('tr[data-ai-model="coder-2026-11"]')
    expect(row.locator('[data-suite="garak-weekly"]')).to_have_attribute("data-state", "overdue")
    form = page.get_by_test_id("audit-upload")
    form.get_by_label("Suite").select_option("garak-weekly")
    form.get_by_label("Model version (ai_model)").fill("coder-2026-11")
    form.get_by_label("Report file").set_input_files(str(SAMPLES / "garak_new.report.jsonl"))
    form.get_by_role("button", name="Upload").click()
    expect(page.locator(".messages")).to_contain_text("garak-weekly on coder-2026-11 is pass")
    cell = page.locator('tr[data-ai-model="coder-2026-11"] [data-suite="garak-weekly"]')
    expect(cell).to_have_attribute("data-state", "pass")
    cell.get_by_role("link").click()
    expect(page.get_by_test_id("run-verdict")).to_have_text("pass")
    expect(page.get_by_test_id("garak-probes")).to_contain_text("promptinject.HijackHateHumans")

    # A report without its completion record: inconclusive, and a case for the committee.
    page.get_by_role("link", name="All audits").click()
    form = page.get_by_test_id("audit-upload")
    form.get_by_label("Suite").select_option("garak-weekly")
    form.get_by_label("Model version (ai_model)").fill("coder-2026-11")
    form.get_by_label("Report file").set_input_files(str(SAMPLES / "garak_no_completion.report.jsonl"))
    form.get_by_role("button", name="Upload").click()
    expect(page.locator(".messages")).to_contain_text("is inconclusive")
    expect(cell).to_have_attribute("data-state", "inconclusive")


def test_a_member_sees_the_audit_status_on_a_model_case(page: Page, live_server, alice, bob):
    from reviews import services as review_services

    make_suite("garak-weekly")
    case = review_services.subject_case_open(
        kind="model", subject_ref="model-version:0", title="Model version coder-new (coder)", reason="new", quorum=1
    )
    version = make_version("coder-new", status="pending_review", case=case)
    case.subject_ref = f"model-version:{version.pk}"
    case.save()
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/reviews/cases/{case.pk}/")
    panel = page.get_by_test_id("model-audits-panel")
    expect(panel.get_by_test_id("audits-missing")).to_contain_text("missing: garak-weekly")
    expect(panel.get_by_test_id("model-audit-state")).to_have_text("overdue")
    expect(page.locator("body")).to_contain_text("needs a pass of every required audit suite; missing: garak-weekly")
