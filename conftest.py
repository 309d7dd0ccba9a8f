"""Shared test fixtures: named users per role, API keys, a real RQ worker,
Playwright on Debian's Chromium, and the reviews fixtures the other apps' tests use.
What tests call (log in, make a user, write a report) is in fsar/testing.py.

Isolation: a test in a transaction sees the database as migrations left it
(role groups, default policy and model rules). Transactional tests (live server,
browser, concurrency) are marked `django_db(transaction=True,
serialized_rollback=True)`: each starts from that migrated state, whatever ran
before it, and pytest-django runs them after the others (their flush empties the
tables), as Django's test runner does."""

from __future__ import annotations

import os

import pytest
import time_machine
from django.conf import settings

from fsar.testing import APPROVE, CHROMIUM, CHROMIUM_ARGS, NOW, PASSWORD, make_user, run_rq_worker_burst

# `--dist loadgroup` keeps each xdist_group on one worker (pytest 9.2 needs this plugin: see it).
pytest_plugins = ["fsar.tests.xdist_groups"]

# live_server runs in a thread while sync Playwright drives the browser.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """The migrated state that serialized_rollback restores (Django keeps it on the
    connection object), kept on the connection class as well: once Playwright has
    started, the test code runs in another context, where django.db.connections
    hands out a new connection object without it, and a browser test would then
    start from the empty tables the previous transactional test left."""
    from django.db import connections

    for connection in connections.all():
        snapshot = getattr(connection, "_test_serialized_contents", None)
        if snapshot is not None:
            type(connection)._test_serialized_contents = snapshot


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(pytestconfig) -> str | None:
    """pytest-playwright's own fallback for this fixture is a session-scoped instance
    method, which pytest 9 deprecates (PytestRemovedIn10Warning); the same, as a function."""
    return pytestconfig.getoption("--base-url", None) or pytestconfig.getini("base_url") or None


def pytest_collection_modifyitems(config, items):
    """Tests that need PostgreSQL say so and skip, with that reason, on SQLite."""
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    for item in items:
        marker = item.get_closest_marker("postgres")
        if marker is not None:
            why = marker.kwargs.get("reason", "EXPLAIN, row locks or concurrency")
            item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL ({why}); CI runs it there"))


@pytest.fixture
def frozen_clock():
    """The clock stopped at fsar.testing.NOW for the test (and the fixtures listed after
    it): every date the test and the code under test read is the same one, never a
    midnight apart. `frozen_clock.shift(timedelta)` moves it."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def noon_today():
    """For browser tests (a live server, timeouts): the clock runs, from 12:00 UTC today,
    so a test that reads the date twice reads the same day. Today's date, not a fixed
    one, so the cookies the browser keeps by its own clock are not already expired."""
    from django.utils import timezone

    at = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    with time_machine.travel(at, tick=True):
        yield at


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

    from fsar.testing import forget_keys_made_since

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


@pytest.fixture(autouse=True)
def fresh_rule_cache():
    """Each test sees the gate's rules in its own database, never a previous test's cache."""
    from reviews import policy

    policy.clear_cache()
    yield
    policy.clear_cache()


@pytest.fixture
def post_report(agent):
    """POST a report to the proposals API as the AI side."""

    def post(text: str, content_type: str = "text/markdown"):
        return agent.post("/api/v1/proposals", data=text.encode(), content_type=content_type)

    return post


# The callbacks' receivers in tests are named *.example and resolve (here, without DNS) to
# TEST-NET-1, a documentation network nothing routes to, allowed as an on-premise agent's
# would be; tests of the address rules set their own networks and names.
TEST_RECEIVERS = "192.0.2.0/24"


@pytest.fixture(autouse=True)
def callback_receivers_resolve(settings, monkeypatch):
    import ipaddress

    from reviews import callback_urls

    real = callback_urls.resolve

    def resolve(host: str, port: int):
        if host.endswith(".example"):
            return [ipaddress.ip_address("192.0.2.10")]
        return real(host, port)

    monkeypatch.setattr(callback_urls, "resolve", resolve)
    settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = [TEST_RECEIVERS]


@pytest.fixture
def approve_version(alice, bob):
    """Two committee members approve a version's case (its quorum under the default rules)."""
    from reviews import services

    def approve(case_id: int, members=None) -> None:
        for member in members or (alice, bob):
            services.vote_cast(case_id=case_id, member=member, choice="approve", rationale=APPROVE)

    return approve
