"""`make run-indicators`: the Makefile target's command sequence (simulate_oversight,
then seed_indicator_logins) on a fresh test database gives logins that work, and
an operator sees firing alerts on /indicators/ and the dashboard; the chair sees
the rubber-stamper's alert, a plain member does not. And `make run`'s empty
/indicators/ says why and names the target."""

import re
import shlex
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from fsar.management.commands.seed_demo import DEMO_PASSWORD
from indicators.models import Alert, AlertState
from reviews.selectors import committee_chairs

pytestmark = pytest.mark.django_db


def makefile_target(name: str) -> tuple[list[str], list[str]]:
    """The recipe lines of a Makefile target and its INDICATORS_SIM arguments."""
    text = (Path(settings.BASE_DIR) / "Makefile").read_text()
    recipe = re.search(rf"^{re.escape(name)}: deps\n((?:\t.*\n)+)", text, re.M)
    assert recipe, f"no target {name}"
    sim = re.search(r"^INDICATORS_SIM \?= (.*)$", text, re.M)
    assert sim
    return [line.strip() for line in recipe.group(1).splitlines()], shlex.split(sim.group(1))


def test_the_target_recreates_its_own_database_simulates_then_gives_logins():
    recipe, sim = makefile_target("run-indicators")
    order = [
        "rm -f $(INDICATORS_DB)",
        "manage.py migrate",
        "manage.py simulate_oversight $(INDICATORS_SIM)",
        "manage.py seed_indicator_logins",
        "manage.py runserver",
    ]
    positions = [next(i for i, line in enumerate(recipe) if step in line) for step in order]
    assert positions == sorted(positions)
    assert sim[sim.index("--rubber-stamper") + 1] == "dave" and sim[sim.index("--drift") + 1].startswith("model-b:")
    text = (Path(settings.BASE_DIR) / "Makefile").read_text()
    assert "run-indicators: export DATABASE_URL = sqlite:///$(abspath $(INDICATORS_DB))" in text


def fast(sim: list[str]) -> list[str]:
    """The target's arguments on a shorter, thinner history (the test's budget):
    36 days, 40 tasks per series a day, the changes moved back so they fire by the end."""
    args = list(sim)
    args[args.index("--days") + 1] = "36"
    froms = [i for i, a in enumerate(args) if a == "--from-day"]
    for i, day in zip(froms, ("24", "26"), strict=True):
        args[i + 1] = day
    return [*args, "--tasks-per-day", "40", "--hourly-days", "0"]


@pytest.fixture
def demo(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    _, sim = makefile_target("run-indicators")
    out = StringIO()
    call_command("simulate_oversight", *fast(sim), stdout=out)
    call_command("seed_indicator_logins", stdout=out)
    return out.getvalue()


def logged_in(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=DEMO_PASSWORD), username
    return client


def test_the_demo_logs_in_and_shows_firing_alerts(demo):
    assert "Indicator demo logins (password for all: fsar-demo-2026):" in demo
    assert re.search(r"^  sim-operator +operator", demo, re.M) and re.search(r"^  alice +committee chair", demo, re.M)
    firing = list(Alert.objects.filter(state=AlertState.FIRING))
    assert any(a.kind == "drift" and "model-b" in a.title for a in firing), demo
    trust = [a for a in firing if a.kind == "trust_inflation"]
    assert trust and all("dave" in a.title for a in trust), demo
    drift_title = next(a.title for a in firing if a.kind == "drift" and "model-b" in a.title)

    operator = logged_in("sim-operator")
    page = operator.get("/indicators/").content.decode()
    assert page.count('data-state="firing"') >= 2 and drift_title in page
    dashboard = operator.get("/").content.decode()
    assert 'data-testid="dashboard-ack"' in dashboard and drift_title in dashboard

    assert [u.username for u in committee_chairs()] == ["alice"]
    assert trust[0].title in logged_in("alice").get("/indicators/").content.decode()
    member = logged_in("bob").get("/indicators/").content.decode()
    assert trust[0].title not in member and 'data-scope="reviewer"' not in member
    assert not get_user_model().objects.get(username="bob").is_staff
    assert trust[0].title not in logged_in("dave").get("/").content.decode()  # the rubber-stamper is not told


def test_the_logins_command_refuses_a_database_without_the_simulation():
    with pytest.raises(CommandError, match="simulate_oversight"):
        call_command("seed_indicator_logins", stdout=StringIO())


def test_an_empty_indicators_page_names_the_demo_target(client):
    from django.contrib.auth.models import Group

    from core.roles import OPERATORS

    user = get_user_model().objects.create_user("op-empty", password="x")
    user.groups.add(Group.objects.get_or_create(name=OPERATORS)[0])
    client.force_login(user)
    page = client.get("/indicators/").content.decode()
    assert 'data-testid="no-model-series"' in page and "make run-indicators" in page
