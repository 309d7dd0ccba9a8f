"""/healthz is a cheap liveness probe that tells anonymous callers nothing but
ok / not ok; /healthz/ready has the details and the (cached) schema check, for
operators and monitoring systems holding the token."""

import logging

import pytest
from django.core.management import call_command

from fsar import health

pytestmark = pytest.mark.django_db
TOKEN = "health-token-for-tests-0123456789"


@pytest.fixture(autouse=True)
def fresh_cache():
    health.forget_schema_state()
    yield
    health.forget_schema_state()


def break_the_database(monkeypatch):
    """The database driver fails the way a real one does: its message names the host, port and role."""

    def refuse(*args, **kwargs):
        raise OSError('connection to server at "10.0.3.7", port 5432 failed: FATAL: role "fsar_app" does not exist')

    monkeypatch.setattr(health.connection, "cursor", refuse)


def break_redis(monkeypatch, settings):
    import django_rq

    class Down:
        def ping(self):
            raise ConnectionError("Error 111 connecting to redis.internal:6379. Connection refused.")

    settings.REDIS_URL = "redis://redis.internal:6379/0"
    monkeypatch.setattr(django_rq, "get_connection", lambda name: Down())


def test_liveness_is_ok_per_component_and_nothing_else(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": True, "redis": True}


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "operator-session"])
def test_liveness_makes_at_most_two_queries_and_never_checks_the_schema(
    client, operator, monkeypatch, django_assert_max_num_queries, logged_in
):
    if logged_in:
        client.force_login(operator)

    def expensive():
        raise AssertionError("the schema check must not run on a liveness probe")

    monkeypatch.setattr(health, "check_schema", expensive)
    with django_assert_max_num_queries(2):
        assert client.get("/healthz").status_code == 200


def test_a_database_failure_is_a_503_without_hosts_or_roles_and_the_details_are_logged(client, monkeypatch, caplog):
    break_the_database(monkeypatch)
    with caplog.at_level(logging.ERROR, logger="fsar.health"):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"ok": False, "database": False, "redis": True}
    assert b"10.0.3.7" not in response.content and b"fsar_app" not in response.content
    assert "10.0.3.7" in caplog.text and 'role "fsar_app"' in caplog.text


def test_a_redis_failure_is_a_503_without_its_address(client, monkeypatch, settings, caplog):
    break_redis(monkeypatch, settings)
    with caplog.at_level(logging.ERROR, logger="fsar.health"):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"ok": False, "database": True, "redis": False}
    assert b"redis.internal" not in response.content
    assert "redis.internal:6379" in caplog.text


def test_readiness_is_not_found_for_anonymous_callers_members_and_wrong_tokens(client, alice, settings):
    settings.HEALTHZ_TOKEN = TOKEN
    assert client.get("/healthz/ready").status_code == 404
    assert client.get("/healthz/ready", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/healthz/ready", HTTP_AUTHORIZATION=TOKEN).status_code == 404  # no "Bearer"
    client.force_login(alice)
    assert client.get("/healthz/ready").status_code == 404


def test_readiness_without_a_configured_token_accepts_no_token(client, settings):
    settings.HEALTHZ_TOKEN = ""
    assert client.get("/healthz/ready", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_readiness_gives_operators_and_token_holders_the_details(client, operator, settings):
    settings.HEALTHZ_TOKEN = TOKEN
    body = client.get("/healthz/ready", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    assert body["ok"] is True
    assert body["database"]["ok"] and body["database"]["vendor"] in ("sqlite", "postgresql")
    assert body["redis"]["ok"]
    assert body["schema"]["ok"] is True and body["schema"]["problems"] == [] and body["schema"]["checked_at"]
    client.force_login(operator)
    assert client.get("/healthz/ready").json()["schema"]["ok"] is True


def test_readiness_is_503_with_the_problems_when_the_schema_is_behind(client, operator, monkeypatch):
    from fsar.schema import SchemaProblem

    monkeypatch.setattr(health, "check_schema", lambda: [SchemaProblem("column", "execution_tasks", "ai_model")])
    client.force_login(operator)
    response = client.get("/healthz/ready")
    assert response.status_code == 503
    assert response.json()["schema"]["problems"] == ["missing column execution_tasks.ai_model"]


def test_readiness_shows_its_callers_what_failed(client, settings, monkeypatch):
    settings.HEALTHZ_TOKEN = TOKEN
    break_the_database(monkeypatch)
    body = client.get("/healthz/ready", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    assert body["ok"] is False and "10.0.3.7" in body["database"]["detail"]
    assert body["schema"] == {"ok": False, "detail": "database unreachable"}


def test_the_schema_check_is_cached_and_refreshed_after_migrate_and_on_a_timer(
    client, settings, monkeypatch, time_machine
):
    settings.HEALTHZ_TOKEN = TOKEN
    settings.HEALTHZ_SCHEMA_SECONDS = 300
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    calls = []
    real = health.check_schema
    monkeypatch.setattr(health, "check_schema", lambda: calls.append(1) or real())
    time_machine.move_to("2026-12-01T10:00:00Z", tick=False)
    first = client.get("/healthz/ready", **auth).json()["schema"]["checked_at"]
    assert client.get("/healthz/ready", **auth).json()["schema"]["checked_at"] == first
    assert len(calls) == 1  # the second answer came from the cache

    call_command("migrate", verbosity=0)  # post_migrate forgets it
    client.get("/healthz/ready", **auth)
    assert len(calls) == 2

    time_machine.move_to("2026-12-01T10:04:00Z", tick=False)
    client.get("/healthz/ready", **auth)
    assert len(calls) == 2
    time_machine.move_to("2026-12-01T10:10:00Z", tick=False)  # past HEALTHZ_SCHEMA_SECONDS
    client.get("/healthz/ready", **auth)
    assert len(calls) == 3
