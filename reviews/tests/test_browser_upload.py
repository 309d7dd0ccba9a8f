"""In Chromium: an operator uploads the seed report and a blocking report and
sees which were held and why."""

import pytest
from playwright.sync_api import Page, expect

from fsar.testing import PASSWORD, report_md

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_an_operator_uploads_reports_and_sees_which_were_held_and_why(page: Page, live_server, operator, tmp_path):
    from fsar.testing import REPORT_FIXTURES as FIXTURES

    blocking = tmp_path / "blocking.md"
    blocking.write_text(report_md("fsar_blocking-1", severity=6, block=True))

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Upload reports").click()
    expect(page.get_by_role("heading", name="Upload FSAR reports")).to_be_visible()
    page.set_input_files("input[type=file]", [str(FIXTURES / "seed_report.md"), str(blocking)])
    page.get_by_role("button", name="Upload").click()

    results = page.get_by_test_id("upload-results")
    seed = results.locator('tr[data-file="seed_report.md"]')
    expect(seed).to_have_attribute("data-decision", "allow")
    expect(seed).to_contain_text("allowed")
    expect(seed).to_contain_text("fsar_23be25a2-d60f-4876-be4d-6b8deacdf09a")
    held = results.locator('tr[data-file="blocking.md"]')
    expect(held).to_have_attribute("data-decision", "hold")
    expect(held).to_contain_text("held for the committee")
    expect(held.locator("td.why")).to_contain_text("block-execution-hold")
    expect(held.locator("td.why")).to_contain_text("block_execution=True")

    held.get_by_role("link", name="case").click()
    expect(page.get_by_test_id("case-status")).to_have_text("Open")
    expect(page.get_by_role("heading", name="Report fsar_blocking-1", exact=True)).to_be_visible()
