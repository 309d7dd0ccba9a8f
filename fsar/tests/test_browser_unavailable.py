"""In Chromium: an operator's dashboard while PostgreSQL refuses the site's connections
shows the "cannot reach its database" page (503), and its "try again" link brings the
dashboard back once the database is there again."""

import psycopg.sql
import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from fsar.testing import admin_connection, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.postgres(reason="the live server's connections refused and terminated for real"),
]


def refuse_the_sites_connections(refuse: bool) -> None:
    """This database refuses new connections (or takes them again) and the live server's
    open ones are terminated, from a connection to the server's `postgres` database (a
    database cannot refuse connections from inside itself). This test's own stays."""
    connection.ensure_connection()
    mine = connection.connection.info.backend_pid
    name = connection.settings_dict["NAME"]
    with admin_connection(dbname="postgres") as admin:
        quoted = psycopg.sql.Identifier(name)
        admin.execute(
            psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                quoted, psycopg.sql.SQL("false" if refuse else "true")
            )
        )
        if refuse:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                [name, mine],
            )


def test_the_dashboard_says_the_database_cannot_be_reached_and_comes_back(page: Page, live_server, operator):
    log_in(page, live_server, "olivia")
    expect(page.get_by_role("heading", name="Operator dashboard")).to_be_visible()
    try:
        refuse_the_sites_connections(True)
        response = page.reload()
        assert response.status == 503 and response.headers["retry-after"] == "1"
        expect(page.get_by_role("heading", name="FSAR cannot reach its database right now")).to_be_visible()
        expect(page.get_by_test_id("unavailable-page")).to_contain_text("was not confirmed")
    finally:
        refuse_the_sites_connections(False)
    page.get_by_role("link", name="Try this page again").click()
    expect(page.get_by_role("heading", name="Operator dashboard")).to_be_visible()
