"""Error pages people meet say what happened and what to do, in the site's layout;
the API keeps answering JSON."""

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from fsar.testing import log_in


@pytest.mark.django_db
def test_an_unknown_page_and_a_page_the_role_may_not_open_are_the_same_plain_404(client, operator, customer_user):
    client.force_login(operator)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Page not found" in page and "/no/such/page/" in page and 'href="/"' in page
    client.force_login(customer_user)
    response = client.get("/audit/")  # operators only
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


@pytest.mark.django_db
def test_a_form_sent_without_its_security_token_says_it_expired_and_nothing_was_saved(operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post("/reviews/gate/", {"action": "pause", "reason": "a drill"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "This form has expired" in page and "Nothing was saved" in page


@pytest.mark.django_db
def test_a_broken_upload_is_a_400_page_saying_nothing_was_saved(client):
    response = client.post("/login/", b"--xyz\r\nbroken", content_type="multipart/form-data")  # no boundary
    assert response.status_code == 400
    page = response.content.decode()
    assert "The request could not be read" in page and "Nothing was saved" in page


@pytest.mark.django_db
def test_the_api_still_answers_json_for_an_unknown_path(client):
    response = client.get("/api/v1/no-such-endpoint")
    assert response.status_code == 404
    assert response.json()["detail"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_in_a_browser_a_wrong_address_shows_the_sites_404_with_a_way_back(page: Page, live_server, operator):
    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/reviews/no-such-case/")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    page.get_by_role("link", name="Back to the start page").click()
    expect(page.get_by_role("heading", name="Operator dashboard")).to_be_visible()
