"""core.sessions: Django's database sessions, the row a request reads fetched by a
statement built once; what it loads is what Django's own engine loads."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.utils import timezone

from core.sessions import SessionStore

pytestmark = pytest.mark.django_db


def _loaded(store_class, key: str) -> tuple[dict, str | None]:
    store = store_class(key)
    return store.load(), store.session_key


def test_a_session_loads_what_it_saved_as_djangos_engine_does():
    saved = SessionStore()
    saved["_auth_user_id"] = "7"
    saved["cart"] = {"items": [1, 2], "note": "é"}
    saved.save()
    assert _loaded(SessionStore, saved.session_key) == _loaded(db.SessionStore, saved.session_key)
    assert _loaded(SessionStore, saved.session_key) == (
        {"_auth_user_id": "7", "cart": {"items": [1, 2], "note": "é"}},
        saved.session_key,
    )


def test_an_expired_unknown_or_tampered_session_is_empty_and_loses_its_key_as_djangos_does():
    expiring = SessionStore()
    expiring["x"] = 1
    expiring.set_expiry(60)
    expiring.save()
    tampered = SessionStore()
    tampered["x"] = 1
    tampered.save()
    Session.objects.filter(session_key=tampered.session_key).update(session_data="not-signed:x")
    later = timezone.now() + timedelta(seconds=61)
    with time_machine.travel(later - timedelta(seconds=2), tick=False):
        assert _loaded(SessionStore, expiring.session_key) == ({"x": 1, "_session_expiry": 60}, expiring.session_key)
    with time_machine.travel(later, tick=False):
        for key in (expiring.session_key, "no-such-session-key-0123456789", tampered.session_key):
            assert _loaded(SessionStore, key) == _loaded(db.SessionStore, key)
        assert _loaded(SessionStore, expiring.session_key) == ({}, None)
        assert _loaded(SessionStore, "no-such-session-key-0123456789") == ({}, None)
        assert _loaded(SessionStore, tampered.session_key)[0] == {}


def test_a_logged_in_session_past_its_expiry_is_sent_to_the_login_page(client, operator):
    client.force_login(operator)
    assert client.get("/tasks/held/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(weeks=3), tick=False):
        response = client.get("/tasks/held/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
