"""In Chromium: after audited actions an operator reads the chain's head hash
(the one to write down), which is the real head and verifies; the kind filter
narrows the entries."""

from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from audit.chain import current_head
from fsar.testing import log_in
from tasks.services import api_key_create, api_key_revoke

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_the_page_shows_the_real_head_hash_and_filters_by_kind(page: Page, live_server, operator, agent_user):
    build, _ = api_key_create(name="build-bot", owner=agent_user, scopes=["tasks"], by=operator)
    nightly, _ = api_key_create(name="nightly", owner=agent_user, scopes=["read"], by=operator)
    api_key_revoke(api_key_id=build.pk, by=operator, reason="leaked in a log")
    head = current_head()
    assert head.seq >= 3

    log_in(page, live_server, "olivia")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit chain").click()
    expect(page.get_by_role("heading", name="Audit chain")).to_be_visible()
    expect(page.get_by_test_id("audit-head")).to_have_text(head.hash)
    expect(page.get_by_text(f"#{head.seq}", exact=True)).to_be_visible()
    rows = page.locator("table.grid tbody tr")
    expect(rows.first).to_contain_text("api_key.revoked")  # newest first
    expect(rows.first).to_contain_text(f"api_key:{build.pk}")
    expect(rows.first).to_contain_text(head.hash[:16])
    expect(page.locator("table.grid tbody")).to_contain_text(f"api_key:{nightly.pk}")

    page.get_by_label("Kind").fill("api_key.created")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(f"api_key:{nightly.pk}")
    expect(rows.nth(1)).to_contain_text(f"api_key:{build.pk}")
    expect(page.locator("table.grid tbody")).not_to_contain_text("api_key.revoked")
    expect(page.get_by_label("Kind")).to_have_value("api_key.created")
    expect(page.get_by_test_id("audit-head")).to_have_text(head.hash)  # the filter does not change the head

    page.get_by_label("Kind").fill("no.such.kind")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_text("No entries of kind no.such.kind.")

    # A new audited action moves the head; the page follows it.
    api_key_revoke(api_key_id=nightly.pk, by=operator, reason="retired")
    new_head = current_head()
    assert new_head.hash != head.hash
    page.goto(f"{live_server.url}/audit/")
    shown = page.get_by_test_id("audit-head")
    expect(shown).to_have_text(new_head.hash)

    out = StringIO()
    call_command("verify_audit_chain", "--expect-head", shown.inner_text(), stdout=out)  # what an operator would do
    assert "Audit chain OK" in out.getvalue() and f"head {new_head.hash}" in out.getvalue()
