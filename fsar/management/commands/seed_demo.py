"""Demo users with printed logins, an API key, and about 20,000 tasks."""

import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from billing.demo import seed_demo_billing
from core.roles import COMMITTEE, CUSTOMERS, OPERATORS
from deployments.demo import seed_demo_models, seed_demo_rollouts
from reviews.demo import seed_demo_reviews
from tasks.demo import seed_demo_tasks
from tasks.models import ApiKey
from tasks.services import api_key_create, api_key_revoke

DEMO_PASSWORD = "fsar-demo-2026"
DEMO_USERS = [
    # username, role, is_staff
    ("operator", OPERATORS, True),
    ("alice", COMMITTEE, False),
    ("bob", COMMITTEE, False),
    ("charlie", COMMITTEE, False),
    ("customer", CUSTOMERS, False),
]
AGENT_KEY_PREFIX = "demo-agent"


def default_key_file() -> Path:
    """Where `make run` keeps the demo key's secret: settings.DEMO_KEY_FILE (the tests point
    it into a temporary directory), else .demo-api-key in the project (gitignored)."""
    return Path(getattr(settings, "DEMO_KEY_FILE", None) or Path(settings.BASE_DIR) / ".demo-api-key")


def reusable_demo_key(key_file: Path):
    """The demo key whose secret `key_file` holds, if it is still an active demo key
    of this database (a key is stored only as a hash, so its secret is kept there)."""
    from tasks.auth import find_active_key

    try:
        secret = key_file.read_text().strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None, None
    api_key = find_active_key(secret) if secret else None
    if api_key is None or not api_key.name.startswith(AGENT_KEY_PREFIX):
        return None, None
    return api_key, secret


def remember_secret(key_file: Path, secret: str) -> None:
    """Write the demo secret readable by its owner only (the file is gitignored)."""
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(secret + "\n")


class Command(BaseCommand):
    help = (
        "Create demo users, an API key and demo tasks. Safe to rerun: the demo key is reused while it is "
        "active (its secret is kept in .demo-api-key); a new one replaces and revokes the previous ones."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=20_000)
        parser.add_argument("--new-key", action="store_true", help="Revoke the demo key and print a new one.")
        parser.add_argument("--key-file", type=Path, default=None, help="Where the demo key's secret is kept.")

    def handle(self, *args, tasks: int, new_key: bool = False, key_file: Path | None = None, **options) -> None:
        key_file = key_file or default_key_file()
        with transaction.atomic():
            for username, role, is_staff in DEMO_USERS:
                user, _ = get_user_model().objects.get_or_create(username=username)
                user.is_staff = is_staff
                user.email = user.email or f"{username}@fsar.example"  # notifications show on the console
                user.set_password(DEMO_PASSWORD)
                user.save()
                user.groups.add(Group.objects.get_or_create(name=role)[0])
            agent, _ = get_user_model().objects.get_or_create(username="agent")
            agent.set_unusable_password()
            agent.save()
            demo_key, secret = (None, None) if new_key else reusable_demo_key(key_file)
            reused = demo_key is not None
            if not reused:
                for old in ApiKey.objects.filter(name__startswith=AGENT_KEY_PREFIX, revoked_at__isnull=True):
                    api_key_revoke(api_key_id=old.pk, reason="replaced by a new demo key")
                name = f"{AGENT_KEY_PREFIX}-{timezone.now():%Y%m%d%H%M%S%f}"
                demo_key, secret = api_key_create(name=name, owner=agent, scopes=list(ApiKey.Scope.values))
        if not reused:
            # After the commit; were it lost, the next run finds no active key for it and makes a new one.
            remember_secret(key_file, secret)
        added = seed_demo_tasks(count=tasks, now=timezone.now())
        self.stdout.write(f"Demo tasks added: {added} (existing demo tasks are kept).")
        billing_user = get_user_model().objects.get(username="customer")
        if seed_demo_billing(now=timezone.now(), customer_user=billing_user):
            self.stdout.write("Demo billing added: 3 customers (customer logs in as Acme), offerings, usage, invoices.")
        alice = get_user_model().objects.get(username="alice")
        bob = get_user_model().objects.get(username="bob")
        # Before the reviews demo: its held tasks run on these models, and must wait on their reports.
        approved = seed_demo_models(api_key=demo_key, members=[alice, bob])
        self.stdout.write(
            f"Demo model versions: {approved} approved by alice and bob, and gpt-5.2-preview pending review "
            "with tasks held on it."
        )
        operator = get_user_model().objects.get(username="operator")
        self.stdout.write(
            "Demo rollouts: " + seed_demo_rollouts(api_key=demo_key, members=[alice, bob], operator=operator) + "."
        )
        if seed_demo_reviews(api_key=demo_key, first_member=alice, operator=operator):
            self.stdout.write(
                "Demo reviews added: the seed report, a blocking and a severity-50 report, held tasks, "
                "and a proposed policy change."
            )
        self.stdout.write("")
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, role, _ in DEMO_USERS:
            self.stdout.write(f"  {username:<10} {role}")
        self.stdout.write("")
        again = " (the same as last time; --new-key replaces it)" if reused else ""
        self.stdout.write(f"API key {demo_key.name!r} for the AI side (all scopes){again}:")
        self.stdout.write(f"  Authorization: Bearer {secret}")
