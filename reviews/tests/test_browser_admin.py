"""In Chromium: an operator sets up a callback endpoint in the admin, sees its
signing secret once, then only its last 4 characters, and rotates it with a reason."""

import pytest
from playwright.sync_api import Page, expect

from conftest import log_in
from reviews.models import CallbackEndpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_callback_secret_is_shown_once_then_only_its_last_four(page: Page, live_server, operator, api_key):
    key, _ = api_key
    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/admin/reviews/callbackendpoint/add/")
    page.get_by_label("Api key").select_option(str(key.pk))
    page.get_by_label("Url").fill("https://agent.example/cb")
    page.get_by_label("Why this change").fill("The agent's team asked for push updates.")
    page.get_by_role("button", name="Save", exact=True).click()
    endpoint = CallbackEndpoint.objects.get(api_key=key)
    shown_once = f"shown this once (give it to the receiver): {endpoint.secret}"
    expect(page.locator(".messagelist")).to_contain_text(shown_once)

    page.goto(f"{live_server.url}/admin/reviews/callbackendpoint/")
    expect(page.locator("#result_list")).to_contain_text(f"…{endpoint.secret[-4:]}")
    assert endpoint.secret not in page.content()

    page.locator(f'input[name="_selected_action"][value="{endpoint.pk}"]').check()
    page.locator('select[name="action"]').select_option("rotate_secret")
    page.get_by_label("Why").fill("The old one leaked.")
    page.get_by_role("button", name="Go").click()
    endpoint.refresh_from_db()
    expect(page.locator(".messagelist")).to_contain_text("Rotated 1 signing secret(s).")
    expect(page.locator(".messagelist")).to_contain_text(endpoint.secret)
    page.reload()
    assert endpoint.secret not in page.content()
