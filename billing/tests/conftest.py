"""Billing fixtures: two customers with their users, two offerings, tasks that
finish through the real task services (so billing's finish write, tasks.signals.finish_writes, rates them),
and a fake Stripe on `responses`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import responses
import time_machine

from billing import services
from billing.models import ServiceOffering
from billing.tests.fakestripe import FakeStripe
from core.roles import CUSTOMERS
from fsar.testing import make_user
from tasks.models import TaskType
from tasks.services import Actor, task_finish, task_register, task_start

NOV = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def acme_user(customer_user):
    return customer_user


@pytest.fixture
def globex_user(django_user_model):
    return make_user(django_user_model, "gary", CUSTOMERS)


@pytest.fixture
def acme(acme_user):
    return services.customer_create(customer_ref="cust_acme", name="Acme Corp", users=[acme_user])


@pytest.fixture
def globex(globex_user):
    return services.customer_create(customer_ref="cust_globex", name="Globex", users=[globex_user])


@pytest.fixture
def per_task_offering(db):
    # 12.345 cents per task: a sub-cent price, so rounding is exercised.
    return services.offering_create(
        name="Idea implementation",
        unit=ServiceOffering.Unit.TASK,
        unit_price_micros=123_450,
        task_types=[TaskType.IMPLEMENT_IDEA, TaskType.IDEA_IMPLEMENTATION],
    )


@pytest.fixture
def token_offering(db):
    # 0.2 cents per 1,000 tokens.
    return services.offering_create(
        name="Self improvement",
        unit=ServiceOffering.Unit.THOUSAND_TOKENS,
        unit_price_micros=2_000,
        task_types=[TaskType.SELF_IMPROVEMENT],
    )


@pytest.fixture
def offerings(per_task_offering, token_offering):
    return per_task_offering, token_offering


@pytest.fixture
def finish_task(api_key):
    """Run a task through register → start → finish as the AI side would."""
    key, _ = api_key
    actor = Actor.for_key(key)
    counter = {"n": 0}

    def finish(
        customer_ref="cust_acme",
        task_type=TaskType.IMPLEMENT_IDEA,
        tokens=1000,
        cost_micros=500,
        outcome="succeeded",
        when=NOV,
    ):
        counter["n"] += 1
        with time_machine.travel(when, tick=False):
            task, _ = task_register(
                actor=actor, external_id=f"t-{counter['n']}", task_type=task_type, customer_ref=customer_ref
            )
            task_start(task_id=task.pk, actor=actor)
            return task_finish(task_id=task.pk, actor=actor, outcome=outcome, tokens=tokens, cost_micros=cost_micros)

    return finish


@pytest.fixture
def stripe_on(settings):
    settings.STRIPE_API_KEY = "sk_test_fsar"
    settings.STRIPE_API_BASE = ""
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    return settings


@pytest.fixture
def fake_stripe(stripe_on):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeStripe(rsps)


@pytest.fixture(autouse=True)
def no_drain_scheduled():
    """The "drain scheduled" flag lives in Redis, which outlives a test."""
    from billing.webhooks import drain_flag_free

    drain_flag_free()
    yield
    drain_flag_free()
