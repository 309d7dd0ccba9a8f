"""In Chromium: a refused vote keeps what the member wrote, the rule sits beside the
field and the word count follows the typing; and the case page works on a phone
(390 px), voting included."""

import pytest
from playwright.sync_api import Page, expect

from fsar.testing import log_in, report_md
from reviews.models import Vote

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
PHONE = {"width": 390, "height": 844}


def open_case(agent, report_id: str = "r1") -> int:
    sent = agent.post("/api/v1/proposals", data=report_md(report_id, severity=30), content_type="text/markdown")
    return sent.json()["gate"]["case"]


def test_a_refused_vote_keeps_the_choice_and_the_words_with_the_error_under_the_field(
    page: Page, live_server, alice, agent
):
    case_id = open_case(agent)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/reviews/cases/{case_id}/")
    form = page.get_by_test_id("vote-form")
    expect(form.get_by_test_id("rationale-rule")).to_have_text("At least 3 words and 15 characters.")
    form.get_by_label("Reject").check()
    rationale = form.get_by_label("Rationale")
    rationale.fill("too risky")
    expect(form.get_by_test_id("word-count")).to_have_text("2 words, 9 characters: not enough yet.")
    form.get_by_role("button", name="Cast vote").click()

    form = page.get_by_test_id("vote-form")
    expect(form.get_by_test_id("rationale-error")).to_have_text(
        "Not recorded: write a rationale of at least 3 words and 15 characters."
    )
    expect(form.get_by_label("Rationale")).to_have_value("too risky")
    expect(form.get_by_label("Reject")).to_be_checked()
    assert not Vote.objects.exists()

    form.get_by_label("Rationale").fill("too risky without a rollback")
    expect(form.get_by_test_id("word-count")).to_have_text("5 words, 28 characters: enough.")
    form.get_by_role("button", name="Cast vote").click()
    expect(page.get_by_text("Your vote is recorded.")).to_be_visible()
    assert Vote.objects.get().choice == "reject"


def test_the_rule_is_there_and_the_form_still_works_without_javascript(browser, live_server, alice, agent):
    case_id = open_case(agent)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/reviews/cases/{case_id}/")
    form = page.get_by_test_id("vote-form")
    expect(form.get_by_test_id("rationale-rule")).to_have_text("At least 3 words and 15 characters.")
    expect(form.get_by_test_id("word-count")).to_be_hidden()  # the live count needs JavaScript
    form.get_by_label("Approve").check()
    form.get_by_label("Rationale").fill("fine")
    form.get_by_role("button", name="Cast vote").click()
    expect(page.get_by_test_id("rationale-error")).to_be_visible()
    expect(page.get_by_label("Rationale")).to_have_value("fine")
    context.close()


def test_a_member_reads_and_votes_on_a_case_from_a_phone(browser, live_server, alice, agent):
    case_id = open_case(agent)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/reviews/cases/{case_id}/")
    expect(page.get_by_role("heading", name=f"Case {case_id}: Report r1")).to_be_visible()

    # Nothing is wider than the phone: the page does not scroll sideways, and Log out is on screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    logout = page.get_by_role("button", name="Log out").bounding_box()
    assert logout is not None and logout["x"] + logout["width"] <= PHONE["width"]
    # The navigation is folded into a menu.
    queue_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Review queue")
    expect(queue_link).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    expect(queue_link).to_be_visible()
    page.get_by_role("button", name="Menu").click()
    expect(queue_link).to_be_hidden()

    form = page.get_by_test_id("vote-form")
    form.get_by_label("Approve").tap()
    form.get_by_label("Rationale").fill("Read it on my phone; the rollback plan holds.")
    cast = form.get_by_role("button", name="Cast vote")
    box = cast.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]
    cast.tap()
    expect(page.get_by_test_id("quorum")).to_have_text("1 of 2 approvals")
    assert Vote.objects.get().member == alice
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    context.close()
