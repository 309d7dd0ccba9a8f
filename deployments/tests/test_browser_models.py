"""In Chromium: a committee member opens a model version's case from the queue,
reads its evaluation against the family's approved version, and votes; an
operator sees the version on /models/."""

import pytest
from playwright.sync_api import Page, expect

from fsar.testing import log_in, register_task, register_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_member_opens_the_model_case_from_the_queue_sees_the_diff_and_votes(
    page: Page, live_server, ai, approved_version, alice, bob, charlie, operator
):
    approved_version("coder-1", evaluation={"failure_rate": 0.03, "red_team_pass_rate": 0.95})
    body = register_version(ai, "coder-2", evaluation={"failure_rate": 0.06, "red_team_pass_rate": 0.97}).json()
    task = register_task(ai, "held-1", ai_model="coder-2").json()
    assert task["status"] == "held"

    log_in(page, live_server, "charlie")
    page.get_by_role("link", name="Review queue").click()
    page.get_by_role("link", name="Model version coder-2 (coder)").click()
    panel = page.get_by_test_id("model-panel")
    expect(panel).to_contain_text("coder-1 (approved)")
    failure = panel.locator('tr[data-metric="failure_rate"]')
    expect(failure).to_have_class("worse")
    expect(failure.get_by_test_id("delta")).to_have_text("+0.03 (worse)")
    expect(panel.locator('tr[data-metric="red_team_pass_rate"]').get_by_test_id("delta")).to_have_text("+0.02 (better)")
    expect(panel.get_by_test_id("artifact-sha256")).to_have_text("ab" * 32)
    expect(page.get_by_test_id("case-status")).to_have_text("Open")
    page.wait_for_load_state("load")  # the deferred htmx has run (wait_for_function polls through eval: CSP)
    form = page.get_by_test_id("vote-form")
    form.get_by_label("Approve").check()
    form.get_by_label("Rationale").fill("Worse failure rate, but inside the error budget.")
    form.get_by_role("button", name="Cast vote").click()
    expect(page.get_by_test_id("quorum")).to_have_text("1 of 2 approvals")

    log_in(page, live_server, "olivia")
    page.get_by_role("link", name="Models").click()
    row = page.locator('tr[data-ai-model="coder-2"]')
    expect(row.get_by_test_id("version-status")).to_have_text("Pending review")
    row.get_by_role("link", name="coder-2").click()
    expect(page.get_by_test_id("history")).to_contain_text("registered; criteria: hold")
    expect(page.get_by_test_id("case-link")).to_have_text(f"case {body['case']}")
