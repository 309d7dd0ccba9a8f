"""Admin edits in reviews go through services (issue 14, item 3): a callback
endpoint's changes leave history with the operator and an audit-chain entry, and
its signing secret is shown once (at creation, after a rotation), otherwise only
its last 4 characters."""

import pytest
from django.urls import reverse

from audit.chain import verify_chain
from audit.models import AuditEntry
from reviews.models import CallbackEndpoint

pytestmark = pytest.mark.django_db


def create(client, key, url="https://agent.example/cb", reason="The agent's team asked for push updates."):
    return client.post(
        reverse("admin:reviews_callbackendpoint_add"),
        {"api_key": key.pk, "url": url, "enabled": "on", "change_reason": reason},
        follow=True,
    )


def test_a_callback_created_in_the_admin_shows_its_secret_once_and_is_on_the_chain(client, operator, api_key):
    key, _ = api_key
    client.force_login(operator)
    html = create(client, key).content.decode()
    endpoint = CallbackEndpoint.objects.get(api_key=key)
    assert len(endpoint.secret) >= 40
    assert f"shown this once (give it to the receiver): {endpoint.secret}" in html
    latest = endpoint.history.latest()
    assert latest.history_user == operator
    assert latest.history_change_reason == "callback set: The agent's team asked for push updates."
    entry = AuditEntry.objects.get(kind="callback_endpoint.set")
    assert (entry.subject, entry.actor) == (f"callback_endpoint:{endpoint.pk}", "olivia")
    assert entry.data["url"] == [None, "https://agent.example/cb"] and entry.data["secret_changed"] is True
    assert endpoint.secret not in str(entry.data)

    for page in (
        reverse("admin:reviews_callbackendpoint_change", args=[endpoint.pk]),
        reverse("admin:reviews_callbackendpoint_changelist"),
        reverse("admin:reviews_callbackendpoint_history", args=[endpoint.pk]),
    ):
        html = client.get(page).content.decode()
        assert endpoint.secret not in html, page
    changelist = client.get(reverse("admin:reviews_callbackendpoint_changelist")).content.decode()
    assert f"…{endpoint.secret[-4:]}" in changelist


def test_changing_a_callback_url_in_the_admin_is_in_history_and_on_the_chain(client, operator, api_key):
    key, _ = api_key
    client.force_login(operator)
    create(client, key)
    endpoint = CallbackEndpoint.objects.get(api_key=key)
    secret = endpoint.secret
    response = client.post(
        reverse("admin:reviews_callbackendpoint_change", args=[endpoint.pk]),
        {"url": "https://agent.example/v2/cb", "enabled": "on", "change_reason": "The receiver moved to v2."},
        follow=True,
    )
    assert response.status_code == 200
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.secret) == ("https://agent.example/v2/cb", secret)
    assert endpoint.history.latest().history_user == operator
    assert endpoint.history.latest().history_change_reason == "callback changed: The receiver moved to v2."
    entry = AuditEntry.objects.filter(kind="callback_endpoint.set").latest("seq")
    assert entry.data["url"] == ["https://agent.example/cb", "https://agent.example/v2/cb"]
    assert entry.data["secret_changed"] is False and entry.data["reason"] == "The receiver moved to v2."
    assert verify_chain().ok


def test_the_admin_needs_a_reason_to_change_a_callback(client, operator, api_key):
    key, _ = api_key
    client.force_login(operator)
    response = create(client, key, reason="")
    assert "This field is required." in response.content.decode()
    assert not CallbackEndpoint.objects.exists()


def test_rotating_the_secret_shows_the_new_one_once_and_is_on_the_chain(client, operator, api_key):
    key, _ = api_key
    client.force_login(operator)
    create(client, key)
    endpoint = CallbackEndpoint.objects.get(api_key=key)
    old = endpoint.secret
    response = client.post(
        reverse("admin:reviews_callbackendpoint_changelist"),
        {"action": "rotate_secret", "_selected_action": [endpoint.pk], "change_reason": "The old one leaked."},
        follow=True,
    )
    endpoint.refresh_from_db()
    assert endpoint.secret != old
    html = response.content.decode()
    assert "Rotated 1 signing secret(s)." in html and endpoint.secret in html
    assert endpoint.history.latest().history_user == operator
    assert endpoint.history.latest().history_change_reason == "signing secret rotated: The old one leaked."
    entry = AuditEntry.objects.get(kind="callback_endpoint.secret_rotated")
    assert entry.data == {"api_key": key.pk, "secret_last4": endpoint.secret[-4:], "reason": "The old one leaked."}
    assert endpoint.secret not in client.get(reverse("admin:reviews_callbackendpoint_changelist")).content.decode()
