"""The audit page answers bad query parameters without a 500."""

import pytest

from audit.chain import audit_append

pytestmark = pytest.mark.django_db


def test_a_nul_in_the_kind_filter_is_a_400_naming_the_field(client, operator):
    client.force_login(operator)
    response = client.get("/audit/", {"kind": "api_key.created\x00"})
    assert response.status_code == 400
    assert response.content.decode().startswith("kind:")


def test_a_before_cursor_that_is_not_plain_digits_is_ignored(client, operator):
    entry = audit_append(kind="test.entry", subject="test:1")
    client.force_login(operator)
    for before in ("²", "١٢", "x", ""):
        response = client.get("/audit/", {"before": before})
        assert response.status_code == 200
        assert [e.seq for e in response.context["entries"]] == [entry.seq]
    assert list(client.get("/audit/", {"before": str(entry.seq)}).context["entries"]) == []
    assert client.get("/audit/", {"before": "9" * 30}).status_code == 200
