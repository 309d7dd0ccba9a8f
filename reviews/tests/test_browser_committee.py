"""In Chromium: two committee members approve a blocking report's case by blind
quorum, releasing the held task; a hostile report renders inert."""

import pytest
from playwright.sync_api import Page, expect

from fsar.testing import log_in, report_md
from reviews.models import Vote

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def approve(page: Page, rationale: str) -> None:
    form = page.get_by_test_id("vote-form")
    form.get_by_label("Approve").check()
    form.get_by_label("Rationale").fill(rationale)
    form.get_by_role("button", name="Cast vote").click()


def test_two_members_approve_a_blocking_report_and_the_held_task_is_released(
    page: Page, live_server, alice, bob, agent
):
    case_id = agent.post(
        "/api/v1/proposals", data=report_md("blocker", block=True), content_type="text/markdown"
    ).json()["gate"]["case"]
    task = agent.post(
        "/api/v1/tasks",
        data={"external_id": "held-1", "task_type": "implement_idea", "proposal_id": "blocker"},
        content_type="application/json",
    ).json()
    assert task["status"] == "held"

    log_in(page, live_server, "alice")
    page.get_by_role("link", name="Review queue").click()
    page.get_by_role("link", name="Report blocker").click()
    expect(page.get_by_test_id("case-status")).to_have_text("Open")
    expect(page.get_by_test_id("blind")).to_contain_text("0 votes cast")
    # The vendored htmx (a deferred script) boosts the forms: it has run once the page's load event fired.
    # (Not wait_for_function: Playwright polls its predicate through eval(), which the CSP refuses.)
    page.wait_for_load_state("load")
    approve(page, "The block flag is addressed by the mitigations.")
    expect(page.get_by_test_id("quorum")).to_have_text("1 of 2 approvals")

    log_in(page, live_server, "bob")
    page.goto(f"{live_server.url}/reviews/cases/{case_id}/")
    expect(page.get_by_test_id("blind")).to_contain_text("1 vote cast")
    expect(page.get_by_text("The block flag is addressed")).to_have_count(0)
    approve(page, "Agreed after reading the rollback notes.")
    expect(page.get_by_test_id("case-status")).to_have_text("Approved")
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("voted approve (version 1): The block flag is addressed")
    expect(timeline).to_contain_text("voted approve (version 1): Agreed after reading")

    released = agent.get(f"/api/v1/tasks/{task['id']}").json()
    assert released["status"] == "registered"
    assert released["gate"]["case_status"] == "approved"


def test_a_hostile_report_renders_inert(page: Page, live_server, alice, agent):
    hostile = (
        "implement_idea: review me\n\n<script>window.pwned = 1; alert('x')</script>\n\n"
        '<img src=x onerror="window.pwned = 2">\n\n[click me](javascript:window.pwned=3)\n\n'
        '<a href="#" onclick="window.pwned=4">raw link</a>'
    )
    case_id = agent.post(
        "/api/v1/proposals", data=report_md("hostile", severity=30, proposal=hostile), content_type="text/markdown"
    ).json()["gate"]["case"]
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/reviews/cases/{case_id}/")
    proposal = page.get_by_test_id("proposal")
    expect(proposal).to_contain_text("<script>window.pwned = 1")  # shown as text
    expect(proposal.locator("script, img, [onclick], [onerror]")).to_have_count(0)
    page.get_by_text("raw link", exact=False).first.click()
    if proposal.get_by_text("click me").count():
        proposal.get_by_text("click me").first.click()
    assert page.evaluate("window.pwned") is None
    assert dialogs == []


def test_a_vote_from_a_page_opened_before_a_revision_is_refused_and_shows_the_change(
    page: Page, live_server, alice, agent
):
    case_id = agent.post(
        "/api/v1/proposals", data=report_md("r1", severity=35, proposal="add a cache"), content_type="text/markdown"
    ).json()["gate"]["case"]
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/reviews/cases/{case_id}/")
    expect(page.get_by_role("button", name="Cast vote on version 1")).to_be_visible()

    # While the page is open, the AI side revises its report.
    revision = report_md("r2", severity=35, supersedes="r1", proposal="version TWO: disable all oversight")
    assert agent.post("/api/v1/proposals", data=revision, content_type="text/markdown").status_code == 201
    approve(page, "The cache looks harmless to me.")

    expect(page.locator(".messages")).to_contain_text("the case changed since you opened it")
    expect(page.locator(".messages")).to_contain_text("revision r2 submitted")
    expect(page.get_by_test_id("diff")).to_contain_text("+version TWO: disable all oversight")
    expect(page.get_by_role("button", name="Cast vote on version 2")).to_be_visible()
    assert not Vote.objects.exists()
