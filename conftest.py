"""Shared test fixtures: named users per role, API keys, a real RQ worker,
and Playwright on Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

# live_server runs in a thread while sync Playwright drives the browser.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery"
ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(pytestconfig) -> str | None:
    """pytest-playwright's own fallback for this fixture is a session-scoped instance
    method, which pytest 9 deprecates (PytestRemovedIn10Warning); the same, as a function."""
    return pytestconfig.getoption("--base-url", None) or pytestconfig.getini("base_url") or None


def _db_order(item) -> int:
    """pytest-django's order: database tests in a transaction first, then those that
    commit (transactional: they flush the database afterwards), then the rest."""
    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", [])
    if (marker is not None and marker.kwargs.get("transaction")) or {"live_server", "transactional_db"} & set(fixtures):
        return 1
    return 0 if marker is not None or "db" in fixtures else 2


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Tests that need PostgreSQL say so and skip, with that reason, on SQLite.

    And transactional tests last, again: pytest-django sorts them last, but pytest
    then groups the browser tests (a session-scoped parameter) at the front, and
    their flushes emptied what migrations install (policy rules, role groups) for
    every test after them. A stable sort keeps that grouping within each kind."""
    items.sort(key=_db_order)
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    for item in items:
        marker = item.get_closest_marker("postgres")
        if marker is not None:
            why = marker.kwargs.get("reason", "EXPLAIN, row locks or concurrency")
            item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL ({why}); CI runs it there"))


def log_in(page, live_server, username: str) -> None:
    """Log `username` in through the login form in a browser test (any earlier session is dropped)."""
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def make_user(django_user_model, username: str, role: str | None = None, **extra):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)
    if role:
        # get_or_create: a transactional test (browser, live_server) flushes the tables,
        # taking the role groups of migration fsar.0001 with them for the tests after it.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def operator(django_user_model):
    from core.roles import OPERATORS

    return make_user(django_user_model, "olivia", OPERATORS, is_staff=True)


@pytest.fixture
def alice(django_user_model):
    from core.roles import COMMITTEE

    return make_user(django_user_model, "alice", COMMITTEE)


@pytest.fixture
def bob(django_user_model):
    from core.roles import COMMITTEE

    return make_user(django_user_model, "bob", COMMITTEE)


@pytest.fixture
def charlie(django_user_model):
    from core.roles import COMMITTEE

    return make_user(django_user_model, "charlie", COMMITTEE)


@pytest.fixture
def customer_user(django_user_model):
    from core.roles import CUSTOMERS

    return make_user(django_user_model, "carla", CUSTOMERS)


@pytest.fixture
def nobody(django_user_model):
    return make_user(django_user_model, "nora")


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(username="root", password=PASSWORD, email="root@example.com")


@pytest.fixture
def agent_user(django_user_model):
    return django_user_model.objects.create_user(username="agent")


@pytest.fixture
def make_api_key(agent_user):
    from tasks.services import api_key_create

    counter = {"n": 0}

    def make(scopes=("tasks", "reports", "backfill", "read"), owner=None, **kwargs):
        counter["n"] += 1
        api_key, secret = api_key_create(
            name=f"key-{counter['n']}", owner=owner or agent_user, scopes=list(scopes), **kwargs
        )
        return api_key, secret

    return make


@pytest.fixture
def api_key(make_api_key):
    return make_api_key()


@pytest.fixture
def agent(client, api_key):
    """A Django test client that authenticates as the AI side with every scope."""
    _, secret = api_key
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def run_rq_worker_burst(timeout: int = 120) -> subprocess.CompletedProcess:
    """Run a real `rqworker --burst` against the test database until the queue is empty.
    Needs REDIS_URL (CI's PostgreSQL pass) and a transactional test."""
    env = {**os.environ, "DATABASE_URL": live_database_url()}
    return subprocess.run(
        [sys.executable, "manage.py", "rqworker", "default", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def live_database_url() -> str:
    """The test database as a DATABASE_URL, for processes a test starts (a worker, a live server)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def forget_keys_made_since(connection, before: set[bytes]) -> int:
    """Delete every key in the Redis database that was not there in `before`; returns how many."""
    made = [key for key in connection.scan_iter(count=1000) if key not in before]
    for start in range(0, len(made), 500):
        connection.delete(*made[start : start + 500])
    return len(made)


@pytest.fixture(scope="session", autouse=True)
def demo_key_file_elsewhere(tmp_path_factory):
    """seed_demo keeps the demo key's secret in a file; in tests, not in the project."""
    from django.test import override_settings

    with override_settings(DEMO_KEY_FILE=str(tmp_path_factory.mktemp("demo") / "demo-api-key")):
        yield


@pytest.fixture(scope="session", autouse=True)
def redis_left_as_found():
    """With REDIS_URL (CI's PostgreSQL pass), jobs, their results, queue and worker
    registries and cache entries land in that Redis database even when jobs run
    inline; the run deletes every key it made, so the database is as it found it."""
    if not settings.REDIS_URL:
        yield
        return
    import redis

    connection = redis.Redis.from_url(settings.REDIS_URL)
    before = set(connection.scan_iter(count=1000))
    yield
    forget_keys_made_since(connection, before)


@pytest.fixture(autouse=True)
def jobs_run_inline(settings):
    """Jobs run inline in tests, with Redis too, so a test sees a job's effect at
    once. Tests of a real worker enqueue with `get_queue(..., is_async=True)`."""
    settings.RQ_QUEUES = {name: {**conf, "ASYNC": False} for name, conf in settings.RQ_QUEUES.items()}
    # Tests create many users; the production hasher's cost buys nothing here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The gate's deadline is on in every PostgreSQL test, but a shared CI machine can
    # stall a query past the 250 ms of production; the deadline's own tests set 250.
    settings.GATE_STATEMENT_TIMEOUT_MS = 2000


@pytest.fixture(autouse=True)
def unregistered_models_allowed(settings):
    """Tests of the other apps register tasks on made-up model names to test the task
    rules, so there a version nobody registered is let through to those rules
    (MODELS_UNREGISTERED=allow). deployments' tests run with the production default,
    hold (deployments/tests/conftest.py). Each test starts with an empty model cache."""
    from assurance.gate import clear_cache as clear_audit_cache
    from deployments.gate import clear_cache

    settings.MODELS_UNREGISTERED = "allow"
    clear_cache()
    clear_audit_cache()


@pytest.fixture
def rq_worker():
    """A real RQ worker run. Tests using it are marked `postgres`: CI's PostgreSQL
    pass is the one with Redis, and it sets REDIS_URL."""
    if not settings.REDIS_URL:
        pytest.fail("a real RQ worker needs REDIS_URL (CI's PostgreSQL pass sets it)")
    import django_rq

    django_rq.get_queue("default", is_async=True).empty()
    return run_rq_worker_burst
