"""In Chromium: an operator logs in, sees the dashboard counts, opens a task in
the admin and sees its history."""

import json

import pytest
from playwright.sync_api import Page, expect

from fsar.testing import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_operator_sees_counts_and_a_tasks_history_in_the_admin(page: Page, live_server, operator, client, api_key):
    _, secret = api_key
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    body = {"external_id": "browser-1", "task_type": "self_improvement", "ai_model": "claude-opus-5"}
    task_id = client.post("/api/v1/tasks", json.dumps(body), content_type="application/json", **auth).json()["id"]
    client.post(f"/api/v1/tasks/{task_id}/start", "{}", content_type="application/json", **auth)
    client.post(
        f"/api/v1/tasks/{task_id}/finish", json.dumps({"outcome": "succeeded"}), content_type="application/json", **auth
    )

    log_in(page, live_server, "olivia")
    expect(page.get_by_role("heading", name="Operator dashboard")).to_be_visible()
    row = page.locator('tr[data-task-type="self_improvement"]')
    expect(row.locator("td.total")).to_have_text("1")
    expect(page.get_by_test_id("task-total")).to_have_text("1")

    page.goto(f"{live_server.url}/admin/tasks/executiontask/{task_id}/change/")
    expect(page.get_by_text("browser-1").first).to_be_visible()
    page.get_by_role("link", name="History").click()
    history = page.locator("#change-history")
    expect(history).to_contain_text("finished: succeeded")
    expect(history).to_contain_text("started")
    expect(history).to_contain_text("registered; gate: allow")


def test_the_admins_task_list_fits_a_1366_px_screen(browser, live_server, operator):
    from tasks.models import ExecutionTask

    ExecutionTask.objects.create(
        external_id="demo-billing-0065-with-a-longish-name",
        task_type="idea_implementation",
        status="succeeded",
        ai_model="claude-sonnet-5",
        duration_ms=240_000,
        gate_decision="allow",
    )
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/admin/tasks/executiontask/")
    results = page.locator("#changelist .results")
    assert results.evaluate("el => el.scrollWidth <= el.clientWidth"), "columns are cut off"
    header = page.locator("#result_list thead th").last
    expect(header).to_contain_text("Gate decision")
    box = header.bounding_box()
    assert box["x"] + box["width"] <= 1366
    expect(page.locator("#result_list tbody tr").first).to_contain_text("4 min 00 s")
    context.close()
