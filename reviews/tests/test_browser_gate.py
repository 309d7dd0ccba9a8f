"""In Chromium: an operator pauses the gate with a reason, the dashboard shouts it
and a new task is held; a committee member resumes it and the held task is
decided again."""

import pytest
from playwright.sync_api import Page, expect

from fsar.testing import log_in
from reviews.models import GateState

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def register(agent, external_id: str) -> dict:
    return agent.post(
        "/api/v1/tasks",
        data={"external_id": external_id, "task_type": "implement_idea"},
        content_type="application/json",
    ).json()


def test_pausing_holds_new_tasks_under_a_loud_banner_and_resuming_releases_them(
    page: Page, live_server, operator, alice, agent
):
    log_in(page, live_server, "olivia")
    expect(page.get_by_role("heading", name="Operator dashboard")).to_be_visible()
    expect(page.get_by_test_id("gate-paused")).to_have_count(0)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Gate").click()
    expect(page.get_by_test_id("gate-status")).to_contain_text("The gate is running")
    page.get_by_label("Why pause?").fill("Incident 42: runaway self_improvement loop")
    page.get_by_role("button", name="Pause the gate").click()
    expect(page.locator(".messages")).to_contain_text("The gate is paused.")
    expect(page.get_by_test_id("gate-status")).to_contain_text("The gate is paused")
    expect(page.get_by_role("button", name="Resume the gate")).to_be_visible()
    state = GateState.objects.get()
    assert state.paused and state.reason == "Incident 42: runaway self_improvement loop"
    assert state.changed_by == operator

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    banner = page.get_by_test_id("gate-paused")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("GATE PAUSED")
    expect(banner).to_contain_text("Reason: Incident 42: runaway self_improvement loop (by olivia")

    held = register(agent, "during-pause")
    assert held["status"] == "held"
    assert held["gate"]["policy"] == "global-pause"

    log_in(page, live_server, "alice")  # the committee may resume too
    page.goto(f"{live_server.url}/reviews/gate/")
    expect(page.get_by_test_id("gate-paused")).to_contain_text("Incident 42")
    page.get_by_label("Why resume?").fill("Loop fixed and verified")
    page.get_by_role("button", name="Resume the gate").click()
    expect(page.locator(".messages")).to_contain_text("The gate is resumed.")
    expect(page.get_by_test_id("gate-status")).to_contain_text("The gate is running")
    expect(page.get_by_test_id("gate-paused")).to_have_count(0)
    history = page.locator("table.grid tbody tr")
    expect(history.first).to_contain_text("alice")
    expect(history.first).to_contain_text("resumed: Loop fixed and verified")
    expect(history.nth(1)).to_contain_text("olivia")
    expect(history.nth(1)).to_contain_text("paused: Incident 42")

    state.refresh_from_db()
    assert not state.paused and state.changed_by == alice and state.reason == "Loop fixed and verified"
    assert agent.get(f"/api/v1/tasks/{held['id']}").json()["status"] == "registered"  # decided again
    assert register(agent, "after-resume")["status"] == "registered"

    log_in(page, live_server, "olivia")
    expect(page.get_by_role("heading", name="Operator dashboard")).to_be_visible()
    expect(page.get_by_test_id("gate-paused")).to_have_count(0)


def test_pausing_without_a_reason_is_refused_and_nothing_changes(page: Page, live_server, operator):
    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/reviews/gate/")
    reason = page.get_by_label("Why pause?")
    reason.fill("   ")
    page.get_by_role("button", name="Pause the gate").click()
    expect(page.locator("p.error")).to_contain_text("This field is required.")
    expect(page.get_by_test_id("gate-status")).to_contain_text("The gate is running")
    expect(page.get_by_test_id("gate-paused")).to_have_count(0)
    assert not GateState.objects.filter(paused=True).exists()
