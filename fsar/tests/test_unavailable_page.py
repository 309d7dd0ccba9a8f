"""A page whose database connection is killed mid-flight answers 503 with Retry-After and
a page saying so, not the 500 page (the API's 503 is fsar/tests/test_faults_postgres.py)."""

import pytest
from django.db import connection

from fsar.testing import admin_connection


@pytest.fixture
def reconnect_after():
    yield
    connection.close()  # the test database is flushed on a live connection


def kill_this_connection() -> None:
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with admin_connection() as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]


@pytest.mark.parametrize("page", ["/tasks/held/", "/"])
@pytest.mark.usefixtures("reconnect_after")
# Transactional (the connection is killed for real), with the data the migrations made (the
# role groups) put back afterwards, as every transactional test here does.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.postgres(reason="pg_terminate_backend: the page's own connection killed for real")
def test_a_page_whose_database_went_away_answers_503_and_the_next_request_recovers(client, operator, page, caplog):
    client.force_login(operator)
    assert client.get(page).status_code == 200
    client.raise_request_exception = False
    kill_this_connection()
    response = client.get(page)
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    body = response.content.decode()
    assert "FSAR cannot reach its database right now" in body and "was not confirmed" in body
    assert "Something went wrong on our side" not in body and "Traceback" not in body
    assert f"Service Unavailable: {page}" in caplog.text  # django.request, with the traceback
    # A server closes the broken connection at the end of the request (Django's
    # close_old_connections, which the test client leaves out): the next one reconnects.
    connection.close()
    assert client.get(page).status_code == 200


@pytest.mark.django_db
def test_any_other_failure_is_still_the_500_page(client, operator, monkeypatch):
    from fsar import dashboard

    def broken(**kwargs):
        raise ZeroDivisionError("a bug, not an outage")

    monkeypatch.setattr(dashboard, "context", broken)
    client.force_login(operator)
    client.raise_request_exception = False
    response = client.get("/")
    assert response.status_code == 500 and "Retry-After" not in response
    assert "Something went wrong on our side" in response.content.decode()
